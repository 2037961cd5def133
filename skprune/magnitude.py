"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _magnitude

sys.modules[__name__] = _magnitude
