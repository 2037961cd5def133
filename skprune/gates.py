"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _gates

sys.modules[__name__] = _gates
