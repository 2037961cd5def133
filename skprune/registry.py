"""Moved to skprune.parts; this path keeps working."""

import sys

from .parts import _registry

sys.modules[__name__] = _registry
