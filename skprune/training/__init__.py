"""The training loop: K stacked copies, K = 1 for a plain fit."""

from ._engine import lambda_path
from ._threads import get_torch_threads, set_torch_threads

__all__ = [
    "lambda_path",
    "get_torch_threads",
    "set_torch_threads",
]
