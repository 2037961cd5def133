"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _constrained

sys.modules[__name__] = _constrained
