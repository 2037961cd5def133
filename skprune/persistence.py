"""Moved to skprune.deploy; this path keeps working."""

import sys

from .deploy import _persistence

sys.modules[__name__] = _persistence
