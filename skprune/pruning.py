"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _pruning

sys.modules[__name__] = _pruning
