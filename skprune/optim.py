"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _optim

sys.modules[__name__] = _optim
