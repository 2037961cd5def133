"""skprune: sparse neural networks in scikit-learn."""

from .estimators import SparseNetClassifier

__version__ = "0.1.0"

__all__ = ["SparseNetClassifier", "__version__"]
