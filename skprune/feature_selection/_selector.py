"""``SparseNetSelector``: the inputs a sparse network reads, as a scikit-learn selector."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone, is_classifier
from sklearn.feature_selection import SelectorMixin
from sklearn.feature_selection._base import _get_feature_importances
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ..estimators import SparseNetClassifier, SparseNetRegressor
from ..estimators._base import BaseSparseNet
from ..estimators._user_warnings import CollapseWarning
from ..training._engine import fit_stacked
from ._path import select_on_path

__all__ = ["SparseNetSelector", "n_to_select"]

#: λ of the default network's path: from barely pruned to most inputs gone on
#: standardised tabular data and on MNIST's pixels (docs/user_guide/feature_selection.rst).
DEFAULT_LAMBDAS = (1e-3, 3e-3, 1e-2, 2e-2, 4e-2, 8e-2, 0.15, 0.3)


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

    Trains the network along a path of λ in one stacked loop
    (:func:`~skprune.lambda_path`), its first layer pruned by the group ℓ1
    penalty on its input columns (:class:`~skprune.parts.InputGroupL1`,
    LassoNet's penalty, Lemhadri et al. 2021, eq. 4), and keeps exactly
    ``k`` inputs: those that drop out of the path last (LassoNet's order),
    ties broken by :attr:`~skprune.SparseNetClassifier.feature_importances_`
    at the largest λ that still reads ``k`` inputs
    (:func:`~skprune.feature_selection.select_on_path`). With ``cv``, the
    path is also trained on every training fold, in the same stacked loop,
    and the inputs kept are those selected in most folds (stability
    selection; ties go to the ranking on all the data).

    Parameters
    ----------
    n_features_to_select : int, float in (0, 1] or None, default=None
        ``k``, or the share of the inputs to keep; None keeps half.
    estimator : estimator or None, default=None
        The network to train (cloned). None builds a
        :class:`~skprune.SparseNetClassifier` for class labels, a
        :class:`~skprune.SparseNetRegressor` for continuous targets, with
        ``regularizer="input_group_l1"`` on its first layer and the two
        parameters below. A skprune network (or a pipeline ending in one) is
        trained along ``lambdas`` (by default at its own ``lam``); any other
        estimator is fitted once per fold and ranked by its
        ``feature_importances_`` or ``coef_``, as
        :class:`~sklearn.feature_selection.SelectFromModel` does.
    lambdas : array-like of float in [0, 1) or None, default=None
        The λ path. None: ``(1e-3, 3e-3, 1e-2, 2e-2, 4e-2, 8e-2, 0.15, 0.3)``
        for the default network, the estimator's own ``lam`` for a given one.
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
        The network trained on all the data at ``lambda_``.
    lambda_ : float or None
        The λ whose importances ranked the inputs (None for an estimator
        outside skprune).
    feature_importances_ : ndarray of shape (n_features,)
        ``estimator_.feature_importances_``.
    selection_frequency_ : ndarray of shape (n_features,)
        Share of the CV folds in which each input was among the ``k`` kept;
        without ``cv`` the 0/1 selection of the one path.
    support_ : ndarray of bool, shape (n_features,)
        The inputs kept; ``support_.sum() == n_features_``.
    n_features_ : int
        ``k``.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of str
        When ``X`` was a DataFrame with string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import scale
    >>> X, y = load_wine(return_X_y=True)
    >>> selector = SparseNetSelector(5, max_epochs=10, random_state=0).fit(scale(X), y)
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
        "lambdas": ["array-like", None],
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
        lambdas=None,
        hidden_layer_sizes=(32,),
        max_epochs=30,
        cv=None,
        random_state=None,
    ):
        self.n_features_to_select = n_features_to_select
        self.estimator = estimator
        self.lambdas = lambdas
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_epochs = max_epochs
        self.cv = cv
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Train the network(s) on ``X`` and ``y``, and keep ``k`` inputs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A CSR matrix trains the network on its sparse rows (as
            :class:`~skprune.SparseNetClassifier` does); ``transform`` keeps
            it sparse.
        y : array-like of shape (n_samples,)
            Class labels, or continuous targets for a regressor.

        Returns
        -------
        self : SparseNetSelector
        """
        X, y = validate_data(
            self, X, y, accept_sparse="csr", dtype=np.float32, ensure_min_features=1
        )
        k = n_to_select(self.n_features_to_select, self.n_features_in_)
        network = self._network(y)
        rows = [None] if self.cv is None else [None, *self._folds(network, X, y)]
        if _lam_param(network) is None:
            masks, fitted, lam = _select_plain(network, X, y, rows, k)
        else:
            masks, fitted, lam = _select_on_paths(network, X, y, rows, self._lambdas(network), k)
        self.estimator_ = fitted
        self.lambda_ = lam
        self.feature_importances_ = _importances(fitted)
        self.selection_frequency_ = np.mean(masks[1:] or masks[:1], axis=0)
        # lexsort sorts by its last key first: folds' votes, then the ranking on all data.
        order = np.lexsort((~masks[0], -self.selection_frequency_))
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
            max_epochs=self.max_epochs,
            random_state=self.random_state,
            module__hidden_layer_sizes=tuple(self.hidden_layer_sizes),
        )

    def _lambdas(self, network):
        if self.lambdas is not None:
            lams = np.sort(np.asarray(self.lambdas, dtype=float).ravel())
            if len(lams) == 0 or lams[0] < 0 or lams[-1] >= 1:
                raise ValueError(
                    "The 'lambdas' parameter of SparseNetSelector must be a non-empty list of "
                    f"floats in [0, 1). Got {self.lambdas!r} instead."
                )
            return lams
        if self.estimator is None:
            return np.array(DEFAULT_LAMBDAS)
        return np.array([network.get_params()[_lam_param(network)]], dtype=float)

    def _folds(self, network, X, y):
        cv = check_cv(self.cv, y, classifier=is_classifier(network))
        return [train for train, _ in cv.split(X, y)]

    def _get_support_mask(self):
        check_is_fitted(self)
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.sparse = True
        return tags


def _lam_param(estimator):
    """``"lam"`` or ``"<last step>__lam"`` for a skprune network or a pipeline ending in one."""
    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        return f"{name}__lam" if isinstance(last, BaseSparseNet) else None
    return "lam" if isinstance(estimator, BaseSparseNet) else None


def _importances(estimator):
    if isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    return np.asarray(_get_feature_importances(estimator, "auto"), dtype=float)


def _select_on_paths(network, X, y, rows, lams, k):
    """One path of λ per row set, all in one stacked loop: masks, all-data network, its λ."""
    param = _lam_param(network)
    grid = [clone(network).set_params(**{param: float(lam)}) for _ in rows for lam in lams]
    with warnings.catch_warnings():
        # The path's largest λ may read no input at all: expected here, not a mistake.
        warnings.simplefilter("ignore", CollapseWarning)
        fit_stacked(grid, X, y, [r for r in rows for _ in lams])
    masks, indices = [], []
    for start in range(0, len(grid), len(lams)):
        importances = np.stack([_importances(e) for e in grid[start : start + len(lams)]])
        mask, index = select_on_path(lams, importances, k)
        masks.append(mask)
        indices.append(index)
    return masks, grid[indices[0]], float(lams[indices[0]])


def _select_plain(estimator, X, y, rows, k):
    """Fit a copy per row set and keep its ``k`` largest importances (ties to the lower index).

    Returns the masks, the copy fitted on all rows, and None for its λ.
    """
    masks, fitted = [], []
    for r in rows:
        est = clone(estimator).fit(X if r is None else X[r], y if r is None else y[r])
        order = np.argsort(-_importances(est), kind="stable")
        masks.append(np.isin(np.arange(X.shape[1]), order[:k]))
        fitted.append(est)
    return masks, fitted[0], None
