"""Deployment: sparsify (compaction, cost counting), persistence and ONNX export."""

from ..estimators._sparsify import densify, sparsify
from ._persistence import load, save

__all__ = [
    "load",
    "save",
    "densify",
    "sparsify",
]
