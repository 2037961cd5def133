"""From and to scikit-learn's ``MLPClassifier`` and ``MLPRegressor``.

A fitted ReLU ``MLPClassifier`` or ``MLPRegressor`` is the same function as
skprune's built-in :class:`~skprune.models.MLP` with its weights: scikit-learn
stores ``coefs_[i]`` as (inputs, outputs), ``torch.nn.Linear`` as (outputs,
inputs), so each weight is transposed on the way in and out.

Two outputs differ in form, not in function:

* a binary ``MLPClassifier`` has one logistic output ``σ(z)``, skprune one
  logit per class under a softmax. The logits ``(0, z)`` give
  ``softmax(0, z)₁ = σ(z)``, and back, ``z = z₁ − z₀``;
* ``SparseNetRegressor`` predicts ``out · target_scale_ + target_mean_``. A
  regressor made by :func:`from_mlp` keeps ``y`` in its own units
  (``target_mean_ = 0``, ``target_scale_ = 1``), as the MLP was trained;
  :func:`to_mlp` folds the scale and mean into the output layer.
"""

import numpy as np
import torch
from sklearn.base import ClassifierMixin, is_classifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from ..models import MLP
from ..training._data import cuda_indices
from ..training._threads import seeded_rng
from ..training._validation import resolve_device
from ._checks import check_params

__all__ = ["MLPBridgeMixin", "from_mlp", "to_mlp"]


class MLPBridgeMixin:
    """``from_mlp`` and ``to_mlp`` for the estimators (see :mod:`skprune._mlp_bridge`)."""

    @classmethod
    def from_mlp(cls, mlp, **params):
        """A fitted estimator holding the weights of a fitted scikit-learn MLP.

        The weights, biases, classes and input features of ``mlp`` are copied
        into the built-in ``"mlp"`` module (``module__hidden_layer_sizes`` as
        in ``mlp``); the estimator predicts as ``mlp`` does at once. It has
        ``warm_start=True``, so that ``fit`` continues from these weights:
        with ``pruning="global", target_density=0.1`` it trains
        ``max_epochs``, prunes to 10 % and fine-tunes ``finetune_epochs``.

        Parameters
        ----------
        mlp : MLPClassifier or MLPRegressor
            Fitted, with ``activation="relu"`` (the built-in module's). A
            multi-label ``MLPClassifier`` is refused: skprune's classifier
            takes one label per sample.
        **params
            Parameters of the estimator, as for its constructor (``module``
            and ``module__*`` excepted: they come from ``mlp``).

        Returns
        -------
        estimator : SparseNetClassifier or SparseNetRegressor
            Fitted, with ``n_iter_ = 0`` and an empty ``history_``;
            ``objectives_`` has E = nan (no epoch has run). A regressor has
            ``target_mean_ = 0`` and ``target_scale_ = 1``: a following
            ``fit`` minimises the squared error in the units of ``y``.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.neural_network import MLPClassifier
        >>> from skprune import SparseNetClassifier
        >>> X, y = load_digits(return_X_y=True)
        >>> mlp = MLPClassifier((32,), tol=1e-2, random_state=0).fit(X / 16, y)
        >>> clf = SparseNetClassifier.from_mlp(mlp)
        >>> bool(abs(clf.predict_proba(X / 16) - mlp.predict_proba(X / 16)).max() < 1e-6)
        True
        """
        return from_mlp(cls, mlp, **params)

    def to_mlp(self):
        """The fitted network as a scikit-learn ``MLPClassifier`` / ``MLPRegressor``.

        For the built-in ``"mlp"`` (and ``"lenet300"``) module. The returned
        MLP predicts as this estimator does (on flat input) in an
        environment with only scikit-learn; pruned weights are exact zeros
        in its ``coefs_``. The trained module is read, also after
        :meth:`sparsify`. A binary classifier's two output rows become one
        logistic output (their difference); a regressor's target
        standardisation is folded into the output layer.

        Returns
        -------
        mlp : MLPClassifier or MLPRegressor
            Fitted, ``activation="relu"``, ``n_iter_ = 0``.
        """
        return to_mlp(self)


# -- from ---------------------------------------------------------------------


def from_mlp(cls, mlp, **params):
    """``cls.from_mlp(mlp, **params)``: see :meth:`MLPBridgeMixin.from_mlp`."""
    routed = sorted(k for k in params if k == "module" or k.startswith("module__"))
    if routed:
        raise ValueError(
            f"{cls.__name__}.from_mlp builds the module from the MLP; do not pass {routed}."
        )
    coefs, intercepts = _checked_mlp_weights(cls, mlp)
    sizes = tuple(int(c.shape[1]) for c in coefs[:-1])
    est = cls(**{"warm_start": True, **params, "module": "mlp"}, module__hidden_layer_sizes=sizes)
    _copy_data_attributes(est, mlp)
    _build_untrained_net(est, n_features=coefs[0].shape[0])
    if is_classifier(est) and len(est.classes_) == 2:
        coefs, intercepts = _two_logits(coefs, intercepts)
    _load_weights(est.net_.module_, coefs, intercepts)
    _record_untrained(est)
    return est


def _checked_mlp_weights(cls, mlp):
    """``mlp``'s (coefs, intercepts), after checking it fits ``cls``."""
    expected = MLPClassifier if issubclass(cls, ClassifierMixin) else MLPRegressor
    if not isinstance(mlp, expected):
        raise TypeError(
            f"{cls.__name__}.from_mlp needs a fitted {expected.__name__}; got {type(mlp).__name__}."
        )
    check_is_fitted(
        mlp,
        msg=f"This %(name)s instance is not fitted yet; fit it before {cls.__name__}.from_mlp.",
    )
    if mlp.activation != "relu":
        raise ValueError(
            f"{cls.__name__}.from_mlp got an {expected.__name__} with "
            f"activation={mlp.activation!r}; only 'relu' is supported (the activation of "
            "the built-in 'mlp' module)."
        )
    if expected is MLPClassifier and mlp._label_binarizer.y_type_ == "multilabel-indicator":
        raise ValueError(
            f"{cls.__name__}.from_mlp got a multi-label MLPClassifier (2-D y); "
            f"{cls.__name__} takes one label per sample."
        )
    return [np.asarray(c) for c in mlp.coefs_], [np.asarray(b) for b in mlp.intercepts_]


def _copy_data_attributes(est, mlp):
    """What ``fit`` would have learned from the data: features, classes or outputs."""
    est.n_features_in_ = int(mlp.n_features_in_)
    if hasattr(mlp, "feature_names_in_"):
        est.feature_names_in_ = np.asarray(mlp.feature_names_in_, dtype=object)
    est._input_shape = (est.n_features_in_,)
    if is_classifier(est):
        est.classes_ = np.asarray(mlp.classes_)
    else:
        est.n_outputs_ = int(mlp.n_outputs_)
        est._y_1d = est.n_outputs_ == 1
        est.target_mean_ = np.zeros(est.n_outputs_)
        est.target_scale_ = np.ones(est.n_outputs_)


def _build_untrained_net(est, n_features):
    """``est.net_`` built and checked as ``fit`` builds it, trained for no epoch."""
    est._validate_params()
    est._check_routed_params()
    check_params(est)
    device = resolve_device(est.device)
    parts = est._build_parts(device)
    seed = est._fit_seed()
    with seeded_rng(seed, cuda_indices(device)):
        est._checked_net(device, parts, seed, None, torch.zeros(2, n_features))


def _two_logits(coefs, intercepts):
    """One logistic output ``z`` as the two logits ``(0, z)``: ``softmax(0, z)₁ = σ(z)``."""
    (w,), (b,) = coefs[-1].T, intercepts[-1]
    last_w = np.stack([np.zeros_like(w), w], axis=1)
    last_b = np.array([0.0, b])
    return [*coefs[:-1], last_w], [*intercepts[:-1], last_b]


@torch.no_grad()
def _load_weights(module, coefs, intercepts):
    for layer, w, b in zip(_linear_layers(module), coefs, intercepts):
        layer.weight.copy_(torch.as_tensor(w.T, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(b, dtype=layer.bias.dtype))


def _record_untrained(est):
    """The fitted attributes ``fit`` records, for a network that trained no epoch."""
    est.history_ = est.net_.history
    summary = est.net_.sparsity_summary()
    est.n_nonzero_, est.n_weights_ = summary["n_nonzero"], summary["n_weights"]
    est.density_ = summary["density"]
    est.sparsity_ = 1.0 - est.density_
    est.layer_density_ = summary["layer_density"]
    est.objectives_ = (float("nan"), summary["penalty"])
    est.n_iter_, est.loss_curve_ = 0, []
    est.validation_scores_ = est.best_validation_score_ = None


# -- to -----------------------------------------------------------------------


def to_mlp(est):
    """``est.to_mlp()``: see :meth:`MLPBridgeMixin.to_mlp`."""
    check_is_fitted(est)
    module = est.net_.module_
    if type(module) is not MLP:
        raise ValueError(
            f"{type(est).__name__}.to_mlp needs the built-in 'mlp' or 'lenet300' module "
            f"(skprune.models.MLP); its module is a {type(module).__name__}."
        )
    coefs, intercepts = _read_weights(module)
    if is_classifier(est):
        if len(est.classes_) == 2:
            coefs, intercepts = _one_logit(coefs, intercepts)
        mlp = MLPClassifier(hidden_layer_sizes=_hidden_sizes(coefs), activation="relu")
        mlp.classes_ = est.classes_
        mlp._label_binarizer = LabelBinarizer().fit(est.classes_)
        mlp.out_activation_ = "logistic" if len(est.classes_) == 2 else "softmax"
    else:
        coefs[-1] = coefs[-1] * est.target_scale_
        intercepts[-1] = intercepts[-1] * est.target_scale_ + est.target_mean_
        mlp = MLPRegressor(hidden_layer_sizes=_hidden_sizes(coefs), activation="relu")
        mlp.out_activation_ = "identity"
    _set_mlp_attributes(mlp, est, coefs, intercepts)
    return mlp


def _linear_layers(module):
    return [getattr(module, f"layer{i}") for i in range(1, module.n_layers + 1)]


def _read_weights(module):
    """float64 (coefs, intercepts) in scikit-learn's (inputs, outputs) layout."""
    layers = _linear_layers(module)
    coefs = [layer.weight.detach().cpu().double().numpy().T.copy() for layer in layers]
    intercepts = [layer.bias.detach().cpu().double().numpy().copy() for layer in layers]
    return coefs, intercepts


def _one_logit(coefs, intercepts):
    """Two logits ``(z₀, z₁)`` as one logistic output ``z = z₁ − z₀``."""
    w, b = coefs[-1], intercepts[-1]
    return [*coefs[:-1], w[:, 1:] - w[:, :1]], [*intercepts[:-1], b[1:] - b[:1]]


def _hidden_sizes(coefs):
    return tuple(int(c.shape[1]) for c in coefs[:-1])


def _set_mlp_attributes(mlp, est, coefs, intercepts):
    """What ``MLP*.fit`` sets: enough to predict, and to continue with ``warm_start``."""
    mlp.coefs_, mlp.intercepts_ = coefs, intercepts
    mlp.n_features_in_ = est.n_features_in_
    if hasattr(est, "feature_names_in_"):
        mlp.feature_names_in_ = est.feature_names_in_
    mlp.n_layers_ = len(coefs) + 1
    mlp.n_outputs_ = int(coefs[-1].shape[1])
    mlp.n_iter_, mlp.t_ = 0, 0
    mlp.loss_curve_, mlp.best_loss_, mlp._no_improvement_count = [], np.inf, 0
    mlp.validation_scores_ = mlp.best_validation_score_ = None
