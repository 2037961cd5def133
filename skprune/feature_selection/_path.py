"""The feature path: at which λ each input stops being read (LassoNet's importance)."""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch

from ..training import lambda_path

__all__ = ["feature_path", "drop_lambdas", "select_on_path"]


def drop_lambdas(lambdas, active):
    """The λ from which each input stays inactive: ``inf`` if active at the largest λ.

    ``lambdas`` increase; ``active`` is (n_lambdas, n_features) of bool.
    An input inactive all along drops out at ``lambdas[0]``.

    Examples
    --------
    >>> active = np.array([[1, 1, 0], [1, 0, 1], [1, 0, 0]], dtype=bool)
    >>> drop_lambdas(np.array([0.1, 0.2, 0.3]), active).tolist()
    [inf, 0.2, 0.3]
    """
    from_end = np.argmax(active[::-1], axis=0)
    last_active = np.where(active.any(axis=0), len(lambdas) - 1 - from_end, -1)
    drop = np.full(active.shape[1], np.inf)
    stays_out = last_active < len(lambdas) - 1
    drop[stays_out] = np.asarray(lambdas, float)[last_active[stays_out] + 1]
    return drop


def select_on_path(lambdas, importances, k):
    """Mask of exactly ``k`` inputs ranked along a path of λ.

    The inputs that drop out last come first (:func:`drop_lambdas`, LassoNet's
    order); inputs dropping at the same λ are ranked by their importance at
    the largest λ whose network still reads at least ``k`` inputs (the
    smallest λ if none does). Ties go to the lower index.

    Parameters
    ----------
    lambdas : ndarray of shape (n_lambdas,), increasing
    importances : ndarray of shape (n_lambdas, n_features)
        ``feature_importances_`` of the network fitted at each λ.
    k : int
        How many inputs to keep.

    Returns
    -------
    mask : ndarray of bool, shape (n_features,)
        Exactly ``k`` True.
    index : int
        The index into ``lambdas`` of the λ whose importances broke the ties.

    Examples
    --------
    >>> imp = np.array([[3.0, 2.0, 1.0, 0.5], [2.0, 0.0, 1.5, 0.0], [0.0, 0.0, 1.0, 0.0]])
    >>> mask, index = select_on_path(np.array([0.1, 0.2, 0.3]), imp, 2)
    >>> mask.tolist(), index
    ([True, False, True, False], 1)
    """
    active = importances > 0
    enough = np.flatnonzero(active.sum(axis=1) >= k)
    index = int(enough[-1]) if len(enough) else 0
    # lexsort sorts by its last key first: the drop λ, then the importance at `index`.
    order = np.lexsort((-importances[index], -drop_lambdas(lambdas, active)))
    mask = np.zeros(importances.shape[1], dtype=bool)
    mask[order[:k]] = True
    return mask, index


def feature_path(estimator, X, y, lams):
    """The inputs a network reads along a path of λ, all trained at once.

    Fits ``estimator`` at every λ of ``lams`` with :func:`~skprune.lambda_path`
    (one stacked loop) and reads each fit's ``feature_importances_``. The λ
    at which an input drops out for good is LassoNet's measure of its
    importance (Lemhadri et al. 2021, §3.3): the later, the more the network
    needs it. Use ``regularizer="input_group_l1"`` on the first layer for
    inputs to drop out as wholes.

    Parameters
    ----------
    estimator : SparseNetClassifier, SparseNetRegressor or Pipeline ending in one
        Unfitted template (cloned, not changed).
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    lams : iterable of float
        λ values in [0, 1); sorted increasing here.

    Returns
    -------
    path : Bunch
        ``lambdas`` (n_lambdas,), increasing; ``importances`` (n_lambdas,
        n_features); ``n_selected`` (n_lambdas,), the inputs read at each λ;
        ``drop_lambda`` (n_features,), the λ from which each input is read
        no more (``inf`` if still read at the largest λ); ``estimators``, the
        fitted estimators.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import scale
    >>> from skprune import SparseNetClassifier
    >>> X, y = load_wine(return_X_y=True)
    >>> net = SparseNetClassifier(regularizer="input_group_l1", regularized_layers=["layer1"],
    ...                           max_epochs=20, random_state=0)
    >>> path = feature_path(net, scale(X), y, [1e-3, 0.05, 0.3])
    >>> path.importances.shape, bool(path.n_selected[0] >= path.n_selected[-1])
    ((3, 13), True)
    """
    lambdas = np.sort(np.asarray(list(lams), dtype=float))
    estimators = lambda_path(estimator, X, y, lambdas)
    importances = np.stack([_network(e).feature_importances_ for e in estimators])
    active = importances > 0
    return Bunch(
        lambdas=lambdas,
        importances=importances,
        n_selected=active.sum(axis=1),
        drop_lambda=drop_lambdas(lambdas, active),
        estimators=estimators,
    )


def _network(estimator):
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator
