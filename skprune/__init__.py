"""skprune: sparse neural networks in scikit-learn."""

from .engine import lambda_path
from .estimators import SparseNetClassifier, SparseNetRegressor
from .search import ParetoSearchCV

__version__ = "0.1.0"

__all__ = [
    "SparseNetClassifier",
    "SparseNetRegressor",
    "ParetoSearchCV",
    "lambda_path",
    "__version__",
]
