"""Moved to skprune.training; this path keeps working."""

import sys

from .training import _engine

sys.modules[__name__] = _engine
