"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _schedules

sys.modules[__name__] = _schedules
