"""Moved to skprune.model_selection; this path keeps working."""

import sys

from .model_selection import _strategies

sys.modules[__name__] = _strategies
