"""skprune: sparse neural networks in scikit-learn."""

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
    "__version__",
]
