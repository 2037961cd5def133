"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _regularizers

sys.modules[__name__] = _regularizers
