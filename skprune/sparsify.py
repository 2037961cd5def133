"""Moved to skprune.deploy; this path keeps working."""

import sys

from .deploy import _sparsify

sys.modules[__name__] = _sparsify
