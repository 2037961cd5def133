"""Deployment: sparsify (compaction, cost counting), persistence and ONNX export."""

from ._persistence import load, save
from ._sparsify import densify, sparsify

__all__ = [
    "load",
    "save",
    "densify",
    "sparsify",
]
