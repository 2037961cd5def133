"""Moved to skprune.deploy; this path keeps working."""

import sys

from .deploy import _onnx

sys.modules[__name__] = _onnx
