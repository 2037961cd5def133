"""skprune: sparse neural networks in scikit-learn."""

from ._threads import get_torch_threads, set_torch_threads
from .engine import lambda_path
from .estimators import SparseNetClassifier, SparseNetRegressor
from .persistence import load, save
from .search import ParetoSearchCV

__version__ = "0.1.0"

__all__ = [
    "SparseNetClassifier",
    "SparseNetRegressor",
    "ParetoSearchCV",
    "lambda_path",
    "save",
    "load",
    "set_torch_threads",
    "get_torch_threads",
    "__version__",
]
