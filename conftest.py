"""Collection rules for the whole repository (doctests of the package included)."""

import importlib.util
from pathlib import Path

# The old flat module paths that now only re-export a subpackage's module
# ("Moved to skprune.X; this path keeps working."): their doctests are
# collected from the module they point to.
collect_ignore = [
    str(path.relative_to(Path(__file__).parent))
    for path in sorted((Path(__file__).parent / "skprune").glob("*.py"))
    if "this path keeps working" in path.read_text().partition("\n")[0]
]

# skprune.onnx needs the optional 'onnx' extra; without it, its doctests are not collected
# (tests/test_onnx.py skips itself in the same case).
if not importlib.util.find_spec("skl2onnx"):
    collect_ignore.append("skprune/deploy/_onnx.py")
