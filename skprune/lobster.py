"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _lobster

sys.modules[__name__] = _lobster
