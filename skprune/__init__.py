"""skprune: sparse neural networks in scikit-learn."""

from .estimators import SparseNetClassifier
from .search import ParetoSearchCV

__version__ = "0.1.0"

__all__ = ["SparseNetClassifier", "ParetoSearchCV", "__version__"]
