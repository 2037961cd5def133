"""``SparseNetSelector``: the inputs a sparse network reads, as a scikit-learn selector."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone, is_classifier
from sklearn.feature_selection import SelectorMixin
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ..estimators import SparseNetClassifier, SparseNetRegressor
from ..estimators._base import BaseSparseNet
from ..training._engine import fit_stacked

__all__ = ["SparseNetSelector", "top_k", "n_to_select"]


def top_k(scores, k):
    """Mask of the ``k`` largest ``scores`` (ties to the lower index): exactly ``k`` True.

    Examples
    --------
    >>> top_k(np.array([0.5, 0.0, 2.0, 0.5]), 2).tolist()
    [True, False, True, False]
    """
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(-np.asarray(scores), kind="stable")[:k]] = True
    return mask


def n_to_select(n_features_to_select, n_features):
    """``k`` from an int, a share in (0, 1] or None (half, as ``RFE``), at most ``n_features``.

    Examples
    --------
    >>> n_to_select(0.25, 10), n_to_select(None, 5), n_to_select(3, 8)
    (2, 2, 3)
    """
    if n_features_to_select is None:
        return max(1, n_features // 2)
    if isinstance(n_features_to_select, Integral):
        if n_features_to_select > n_features:
            raise ValueError(
                "The 'n_features_to_select' parameter of SparseNetSelector must be at most "
                f"the number of features, {n_features}. Got {n_features_to_select} instead."
            )
        return int(n_features_to_select)
    return max(1, int(round(n_features_to_select * n_features)))


class SparseNetSelector(SelectorMixin, MetaEstimatorMixin, BaseEstimator):
    """Select the ``k`` inputs a sparse network reads most.

    Trains a network whose first layer is pruned by the group ℓ1 penalty on
    its input columns (:class:`~skprune.parts.InputGroupL1`, LassoNet's
    penalty), then keeps the ``k`` inputs of largest
    :attr:`~skprune.SparseNetClassifier.feature_importances_`: exactly ``k``,
    whatever λ pruned. With ``cv``, the network is also trained on every
    training fold (all in one stacked loop) and the inputs kept are those
    selected in most folds (stability selection; ties go to the larger
    importance on all the data).

    Parameters
    ----------
    n_features_to_select : int, float in (0, 1] or None, default=None
        ``k``, or the share of the inputs to keep; None keeps half.
    estimator : SparseNetClassifier, SparseNetRegressor or None, default=None
        The network to train (cloned); None builds one from the parameters
        below: a classifier for class labels, a regressor for continuous
        targets, with ``regularizer="input_group_l1"`` on its first layer.
        Any estimator with ``feature_importances_`` after ``fit`` works (it is
        then fitted on its own, not stacked).
    lam : float in [0, 1), default=1e-3
        λ of the default network (ignored with ``estimator``).
    hidden_layer_sizes : tuple of int, default=(32,)
        Hidden widths of the default network.
    max_epochs : int >= 1, default=30
        Epochs of the default network.
    cv : int, cross-validation generator, iterable or None, default=None
        Folds for stability selection (scikit-learn's ``cv``); None trains once.
    random_state : int, RandomState instance or None, default=None
        Seeds the default network.

    Attributes
    ----------
    estimator_ : estimator
        The network trained on all the data.
    feature_importances_ : ndarray of shape (n_features_in_,)
        ``estimator_.feature_importances_``.
    selection_frequency_ : ndarray of shape (n_features_in_,)
        Share of the CV folds in which each input was among the ``k`` kept;
        without ``cv`` the 0/1 selection of the one fit.
    support_ : ndarray of bool, shape (n_features_in_,)
        The inputs kept; ``support_.sum() == n_features_``.
    n_features_ : int
        ``k``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` was a DataFrame with string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import scale
    >>> X, y = load_wine(return_X_y=True)
    >>> selector = SparseNetSelector(5, random_state=0).fit(scale(X), y)
    >>> selector.transform(X).shape
    (178, 5)
    """

    _parameter_constraints = {
        "n_features_to_select": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="right"),
            None,
        ],
        "estimator": [HasMethods(["fit"]), None],
        "lam": [Interval(Real, 0, 1, closed="left")],
        "hidden_layer_sizes": [tuple, list],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_features_to_select=None,
        *,
        estimator=None,
        lam=1e-3,
        hidden_layer_sizes=(32,),
        max_epochs=30,
        cv=None,
        random_state=None,
    ):
        self.n_features_to_select = n_features_to_select
        self.estimator = estimator
        self.lam = lam
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_epochs = max_epochs
        self.cv = cv
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Train the network(s) on ``X`` (n, d) and ``y``, and keep ``k`` inputs.

        Returns
        -------
        self : SparseNetSelector
        """
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_features=1)
        k = n_to_select(self.n_features_to_select, self.n_features_in_)
        network = self._network(y)
        folds = [] if self.cv is None else self._folds(network, X, y)
        fitted = _fit_all([clone(network) for _ in range(len(folds) + 1)], X, y, [None, *folds])
        self.estimator_ = fitted[0]
        self.feature_importances_ = np.asarray(self.estimator_.feature_importances_, float)
        chosen = [top_k(m.feature_importances_, k) for m in fitted[1:]] or [
            top_k(self.feature_importances_, k)
        ]
        self.selection_frequency_ = np.mean(chosen, axis=0)
        order = np.lexsort((-self.feature_importances_, -self.selection_frequency_))
        self.support_ = np.zeros(self.n_features_in_, dtype=bool)
        self.support_[order[:k]] = True
        self.n_features_ = k
        return self

    def _network(self, y):
        if self.estimator is not None:
            return clone(self.estimator)
        regression = type_of_target(y) in ("continuous", "continuous-multioutput")
        cls = SparseNetRegressor if regression else SparseNetClassifier
        return cls(
            regularizer="input_group_l1",
            regularized_layers=["layer1"],
            lam=self.lam,
            max_epochs=self.max_epochs,
            random_state=self.random_state,
            module__hidden_layer_sizes=tuple(self.hidden_layer_sizes),
        )

    def _folds(self, network, X, y):
        cv = check_cv(self.cv, y, classifier=is_classifier(network))
        return [train for train, _ in cv.split(X, y)]

    def _get_support_mask(self):
        check_is_fitted(self)
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def _fit_all(estimators, X, y, rows):
    """Fit each estimator on ``X[rows[i]]``: stacked when they are skprune networks."""
    if isinstance(estimators[0], BaseSparseNet):
        return fit_stacked(estimators, X, y, rows)
    for est, r in zip(estimators, rows):
        est.fit(X if r is None else X[r], y if r is None else y[r])
    return estimators
