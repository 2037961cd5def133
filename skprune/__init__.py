"""skprune: sparse neural networks in scikit-learn."""

from .estimators import SparseNetClassifier, SparseNetRegressor
from .persistence import load, save
from .search import ParetoSearchCV

__version__ = "0.1.0"

__all__ = [
    "SparseNetClassifier",
    "SparseNetRegressor",
    "ParetoSearchCV",
    "save",
    "load",
    "__version__",
]
