"""Folds transformed by a pipeline's earlier steps, stacked for :mod:`skprune.engine`.

The engine trains the last steps of many pipelines on one ``X``: the rows of
every fold's transformed data, one fold after another. Folds stack together
only when their samples have the same shape: a ``OneHotEncoder`` fitted on a
fold that lacks a category has one column fewer.
"""

import numpy as np
from scipy import sparse

__all__ = ["is_rows", "stack_folds"]


def is_rows(X):
    """Whether ``X`` is transformed data the engine stacks: an array or a sparse matrix."""
    return type(X) is np.ndarray or sparse.issparse(X)


def stack_folds(folds):
    """``(X, y, rows)`` per sample shape: the folds of that shape, stacked.

    Parameters
    ----------
    folds : dict
        Fold key -> ``(X, y)`` of the fold, transformed.

    Returns
    -------
    stacks : list of (X, y, dict)
        ``X`` and ``y`` of the folds of one sample shape, one after another
        (``X`` CSR if any of them is sparse), and the rows of each fold's key
        in them.

    Examples
    --------
    >>> stacks = stack_folds({"a": (np.ones((2, 3)), [0, 1]), "b": (np.ones((1, 3)), [1]),
    ...                       "c": (sparse.eye(2, format="csc"), [0, 1])})
    >>> [(type(X).__name__, X.shape, y.tolist()) for X, y, _ in stacks]
    [('ndarray', (3, 3), [0, 1, 1]), ('csr_matrix', (2, 2), [0, 1])]
    >>> {key: r.tolist() for key, r in stacks[0][2].items()}
    {'a': [0, 1], 'b': [2]}
    """
    by_shape = {}
    for key, (X, y) in folds.items():
        by_shape.setdefault(X.shape[1:], []).append((key, X, y))
    stacks = []
    for group in by_shape.values():
        blocks = [X for _, X, _ in group]
        if any(sparse.issparse(X) for X in blocks):
            X = sparse.vstack([sparse.csr_matrix(X) for X in blocks], format="csr")
        else:
            X = np.concatenate(blocks)
        starts = np.cumsum([0] + [b.shape[0] for b in blocks])
        rows = {key: np.arange(a, b) for (key, _, _), a, b in zip(group, starts, starts[1:])}
        stacks.append((X, np.concatenate([np.asarray(y) for _, _, y in group]), rows))
    return stacks
