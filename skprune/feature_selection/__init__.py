"""Feature selection with sparse networks: the selector, the feature path."""

from ._path import feature_path, select_on_path
from ._selector import SparseNetSelector

__all__ = ["SparseNetSelector", "feature_path", "select_on_path"]
