"""skprune: sparse neural networks in scikit-learn."""

from .deploy import load, save
from .estimators import SparseNetClassifier, SparseNetRegressor
from .feature_selection import SparseNetSelector
from .model_selection import ParetoSearchCV
from .training import get_torch_threads, lambda_path, set_torch_threads

__version__ = "0.1.0"

__all__ = [
    "SparseNetClassifier",
    "SparseNetRegressor",
    "SparseNetSelector",
    "ParetoSearchCV",
    "lambda_path",
    "save",
    "load",
    "set_torch_threads",
    "get_torch_threads",
    "__version__",
]
