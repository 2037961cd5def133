"""Moved to skprune.estimators (skprune.deploy re-exports it); this path keeps working."""

import sys

from .estimators import _sparsify

sys.modules[__name__] = _sparsify
