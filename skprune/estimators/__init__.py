"""The estimators: validate, encode, build ``net_`` (a skorch net) and call the training loop."""

from ._classes import SparseNetClassifier, SparseNetRegressor

__all__ = [
    "SparseNetClassifier",
    "SparseNetRegressor",
]
