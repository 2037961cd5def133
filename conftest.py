"""Collection rules for the whole repository (doctests of the package included)."""

import importlib.util

# skprune.onnx needs the optional 'onnx' extra; without it, its doctests are not collected
# (tests/test_onnx.py skips itself in the same case).
collect_ignore = [] if importlib.util.find_spec("skl2onnx") else ["skprune/onnx.py"]
