"""What :class:`~skprune.SparseNetClassifier` and :class:`~skprune.SparseNetRegressor` share.

:class:`BaseSparseNet` holds the parameters, the routed ``prefix__name``
parameters, the fit skeleton and the sparsity record. A subclass says what its
targets are (:meth:`BaseSparseNet._encode_targets`), which skorch net trains
(``_net_class``) and how it predicts.
"""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ..models import BUILTIN_MODULES
from ..parts._optim import LambdaHistory, MultiObjectiveOptimizer, lambda_history
from ..parts._pruning import Pruner
from ..parts._registry import OPTIMIZERS, PRUNERS, REGULARIZERS, build_part, optimizer_and_kwargs
from ..parts._regularizers import Regularizer
from ..parts._schedules import LR_SCHEDULES, make_lr_schedule, resolve_lr
from ..training._atomic import fitted_attributes
from ..training._data import combined_weights, cuda_indices, flatten_images, part_defaults
from ..training._engine import train_net
from ..training._net import PrintLog, SparsityHistory
from ..training._sparse_input import SparseInputMixin, as_rows
from ..training._stopping import check_stopping, stopping_callbacks
from ..training._threads import seeded_rng
from ..training._validation import resolve_device
from ._checks import DivergenceCheck, check_module, check_params, check_parts, check_split
from ._cost import CostMixin
from ._importances import FeatureImportancesMixin
from ._publish import train_aside
from ._routing import RoutedParams
from ._sparsify import SparsifyMixin
from ._user_warnings import CollapseWarning, warn_user

__all__ = ["BaseSparseNet"]

#: History entries holding one value per layer or group: too wide for the log.
_DICT_HISTORY_KEYS = ["layer_density", "n_nonzero", "expected_density", "multiplier"]


class BaseSparseNet(
    SparseInputMixin,
    SparsifyMixin,
    CostMixin,
    FeatureImportancesMixin,
    RoutedParams,
    BaseEstimator,
):
    """Base class of the sparse network estimators (see :class:`~skprune.SparseNetClassifier`)."""

    _parameter_constraints = {
        "module": [StrOptions(BUILTIN_MODULES.keys()), type, nn.Module],
        "regularizer": [StrOptions(REGULARIZERS.keys()), Regularizer, None],
        "lam": [Interval(Real, 0, 1, closed="left")],
        "pruning": [StrOptions({"auto", *PRUNERS}), Pruner, None],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "target_density": [Interval(Real, 0, 1, closed="right"), dict, None],
        "finetune_epochs": [Interval(Integral, 0, None, closed="left")],
        "loss_tolerance": [Interval(Real, 0, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions(OPTIMIZERS.keys()), type],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "lr_schedule": [StrOptions(LR_SCHEDULES.keys()), None],
        "lr_final": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "regularized_layers": [StrOptions({"dense", "all"}), list],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        module="mlp",
        *,
        regularizer="l1",
        lam=1e-4,
        pruning="auto",
        threshold=1e-3,
        target_density=None,
        finetune_epochs=3,
        loss_tolerance=0.05,
        patience=5,
        optimizer="adam",
        lr="auto",
        lr_schedule=None,
        lr_final=None,
        batch_size=32,
        max_epochs=30,
        validation_fraction=0.0,
        regularized_layers="dense",
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        early_stopping=False,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        **kwargs,
    ):
        self.module = module
        self.regularizer = regularizer
        self.lam = lam
        self.pruning = pruning
        self.threshold = threshold
        self.target_density = target_density
        self.finetune_epochs = finetune_epochs
        self.loss_tolerance = loss_tolerance
        self.patience = patience
        self.optimizer = optimizer
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.lr_final = lr_final
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.regularized_layers = regularized_layers
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self._set_routed_params(kwargs)

    # -- fitting -------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X`` (n, d) or (n, C, H, W) and targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, C, H, W)
            A sparse matrix is densified one batch of rows at a time, never whole.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights: E becomes each batch's weighted mean loss
            ``Σ wᵢℓᵢ / Σ wᵢ``. Equal weights train exactly as no weights.

        Returns
        -------
        self : estimator
            With ``warm_start`` and a fitted estimator, training continues
            from the fitted weights, masks and optimiser state. A copy is
            trained and published when training ends (:mod:`skprune._publish`):
            meanwhile predictions use the previous fit (``NotFittedError``
            before the first), and if training fails or is interrupted the
            estimator is left as it was.
        """
        if self.warm_start and hasattr(self, "net_"):
            return self._continue(X, y, sample_weight, None)
        return train_aside(self, "_start", X, y, sample_weight, None)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One pass (epoch) over ``X`` and ``y``, continuing the fitted network.

        The regularizer and threshold pruning act as in ``fit``; modes that
        need the end of training (magnitude pruning, LOBSTER, ``"after"``) and
        ``early_stopping`` raise ``ValueError``. A classifier needs ``classes``
        (every label it will ever see) on the first call. As ``fit``, it
        trains a copy (of the network: ~1 ms for LeNet-300-100) and publishes it.
        ``X`` may be a sparse matrix, as in ``fit``.

        Returns
        -------
        self : estimator
        """
        if hasattr(self, "net_"):
            return self._continue(X, y, sample_weight, 1)
        self._validate_params()
        return train_aside(self, "_start", X, y, sample_weight, 1, classes)

    def _start(self, X, y, sample_weight, epochs, classes=None):
        """A new training: checks, parts and net, then ``epochs`` epochs (None: all)."""
        X, y, weight, device, parts = self._checked_fit(
            X, y, sample_weight, classes, incremental=epochs is not None
        )
        seed = self._fit_seed()
        train, valid = self._split(X, y, weight, seed, device)
        with seeded_rng(seed, cuda_indices(device)):
            self._checked_net(device, parts, seed, valid, train[0])
            return self._run(train, epochs)

    def _checked_fit(self, X, y, sample_weight, classes=None, incremental=False):
        """The checks before training and the parts: ``(X, y, weight, device, parts)``.

        Every new fit starts here, ``fit`` and the engine's copies alike, after
        ``_validate_params``: the parameters against each other and the data.
        """
        self._forget_fit()
        self._check_routed_params()
        check_params(self)
        X, y, weight = self._validate_fit_data(X, y, sample_weight, classes, reset=True)
        device = resolve_device(self.device)
        return X, y, weight, device, self._build_parts(device, incremental=incremental)

    def _fit_seed(self):  # a new fit's seed; the engine's copies draw theirs here too
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _checked_net(self, device, parts, seed, valid, X_train):
        """``net_`` built, initialised and checked (call under ``seeded_rng(seed, …)``)."""
        self.net_ = self._build_net(device, parts, seed, valid).initialize()
        check_module(self, self.net_, X_train, parts)

    def _continue(self, X, y, sample_weight, epochs):
        """More epochs of the fitted network, its masks and optimiser state."""
        X, y, weight = self._validate_fit_data(X, y, sample_weight, reset=False)
        return train_aside(self, "_more_epochs", X, y, weight, epochs, keep_fit=True)

    def _more_epochs(self, X, y, weight, epochs):
        seed = self.net_.seed + len(self.history_)  # a new validation split each call
        train, valid = self._split(X, y, weight, seed, self.net_.device)
        if valid is not None:
            self.net_.train_split = predefined_split(Dataset(*valid))
        return self._run(train, epochs)

    def _run(self, train, epochs):
        stacked = train_net(self, self.net_, *train, epochs)  # the engine (K = 1) or skorch's
        return self._record_fit("stacked" if stacked else "skorch")

    def _record_fit(self, loop):
        """The fitted attributes of the trained ``net_``; ``loop`` is what trained it.

        The same for ``fit`` and for the engine's copies.
        """
        self.history_ = self.net_.history
        self.training_loop_ = loop
        self._record_sparsity()
        self._record_lambda_history()
        self._record_iterations()
        return self

    def _forget_fit(self):
        """Remove the fitted attributes (those ending in ``_``)."""
        for name in fitted_attributes(self):
            delattr(self, name)

    def _validate_fit_data(self, X, y, sample_weight, classes=None, reset=True):
        """``(X, encoded y, sample weights or None)``; ``reset=False`` checks against the fit."""
        X, shape = flatten_images(X)
        if reset:
            self._input_shape = shape
        else:
            self._check_image_shape(shape)
        X, y = validate_data(
            self, X, y, dtype=np.float32, accept_sparse="csr", reset=reset, **self._y_validation
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float32, ensure_non_negative=True
            )
        y = self._encode_targets(y, classes, reset, sample_weight)
        return X, y, combined_weights(sample_weight, self._target_weights(y))

    def _build_parts(self, device, incremental=False):
        """Regularizer, pruner and optimiser, checked against each other before training."""
        regularizer = (
            None if self.regularizer is None else build_part(self, "regularizer", self.regularizer)
        )
        pruner = self._resolve_pruning(regularizer)
        optimizer = optimizer_and_kwargs(self, device)
        check_parts(self, regularizer, pruner, optimizer[0], part_defaults(type(self)))
        check_stopping(self, pruner, incremental)
        make_lr_schedule(self)  # checks lr_final against lr
        return regularizer, pruner, optimizer

    def _resolve_pruning(self, regularizer):
        """``pruning="auto"``: none for a regularizer that prunes itself, else ``"batch"``."""
        pruning = self.pruning
        if pruning == "auto":
            pruning = None if regularizer is not None and regularizer.prunes_itself else "batch"
        return None if pruning is None else build_part(self, "pruning", pruning)

    def _split(self, X, y, weight, seed, device):
        """Training ``(X, y, weight)`` and validation ``(X, y)`` tensors on ``device``.

        Moved to the device once: batches are then slices there, not copies.
        Validation is None without ``validation_fraction``; weights are None
        when all are equal.
        """
        to = self._to_tensor
        if not self.validation_fraction:
            train, valid = (X, y, weight), None
        else:
            stratify = check_split(self, y)
            parts = [X, y] if weight is None else [X, y, weight]
            parts = train_test_split(
                *parts, test_size=self.validation_fraction, stratify=stratify, random_state=seed
            )
            train = (parts[0], parts[2], parts[4] if weight is not None else None)
            valid = (parts[1], parts[3])
        X_tr, y_tr, w_tr = train
        train = (to(X_tr), torch.as_tensor(y_tr), None if w_tr is None else torch.as_tensor(w_tr))
        train = tuple(t if t is None else t.to(device) for t in train)
        if valid is not None:
            valid = (to(valid[0]).to(device), torch.as_tensor(valid[1]).to(device))
        return train, valid

    def _to_tensor(self, X):
        """float32 tensor (sparse ``X``: SparseRows) in the shape the module was fitted on."""
        return as_rows(X, self._input_shape)

    def _build_net(self, device, parts, seed, valid):
        regularizer, pruner, (optimizer, optimizer_kwargs) = parts
        module, module_kwargs = self._resolve_module()
        callbacks = [
            *stopping_callbacks(self),
            *([("regularizer", regularizer)] if regularizer is not None else []),
            *([("pruning", pruner)] if pruner is not None else []),
            *(("lr_schedule", cb) for cb in make_lr_schedule(self)),
            *(
                [("lambda", LambdaHistory())]
                if issubclass(optimizer, MultiObjectiveOptimizer)
                else []
            ),
            ("sparsity", SparsityHistory()),
            ("divergence", DivergenceCheck()),
            *((f"user_{i}", copy.deepcopy(cb)) for i, cb in enumerate(self.callbacks or [])),
            ("print_log", PrintLog(keys_ignored=_DICT_HISTORY_KEYS)),
        ]
        return self._net_class(
            module,
            criterion=self._criterion,
            optimizer=optimizer,
            lr=resolve_lr(self),
            max_epochs=self.max_epochs + (pruner.extra_epochs if pruner is not None else 0),
            batch_size=self.batch_size,
            train_split=predefined_split(Dataset(*valid)) if valid else None,
            callbacks=callbacks,
            device=device,
            verbose=self.verbose,
            regularizer=regularizer,
            lam=self.lam,
            regularized_layers=self.regularized_layers,
            seed=seed,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
            **{f"optimizer__{k}": v for k, v in optimizer_kwargs.items()},
            **{f"callbacks__{k}": v for k, v in self._prefixed_params("callbacks").items()},
        )

    def _target_weights(self, y):
        """Per-sample weights that the targets imply (a classifier's ``class_weight``)."""
        return None

    def _resolve_module(self):
        """The module (class or a copy of the instance) and its keyword arguments."""
        kwargs = self._prefixed_params("module")
        if isinstance(self.module, str):
            image_shape = self._input_shape if len(self._input_shape) == 3 else None
            factory = BUILTIN_MODULES[self.module]
            return factory(self.n_features_in_, self._n_outputs, image_shape, **kwargs)
        if isinstance(self.module, nn.Module):
            return copy.deepcopy(self.module), kwargs
        return self.module, kwargs

    def _record_sparsity(self):
        summary = self.net_.sparsity_summary()
        self.n_nonzero_, self.n_weights_ = summary["n_nonzero"], summary["n_weights"]
        self.density_ = summary["density"]
        self.sparsity_ = 1.0 - self.density_
        self.layer_density_ = summary["layer_density"]
        self.objectives_ = (float(self.history_[-1, self._loss_key]), summary["penalty"])
        if self.n_weights_ and not self.n_nonzero_:
            warn_user(  # at the user's line, from fit or from the engine alike
                f"Every regularised weight is zero: the network collapsed at lam={self.lam}"
                f" with threshold={self.threshold}. Lower lam or threshold, or use "
                "ParetoSearchCV to find the knee of the trade-off.",
                CollapseWarning,
            )

    def _record_iterations(self):
        """``n_iter_``, ``loss_curve_`` and the early-stopping scores, as ``MLPClassifier``."""
        self.n_iter_ = len(self.history_)
        self.loss_curve_ = [float(v) for v in self.history_[:, "train_loss"]]
        stopping = dict(self.net_.callbacks_).get("early_stopping")
        self.validation_scores_ = None if stopping is None else list(stopping.scores_)
        self.best_validation_score_ = None if stopping is None else stopping.best_score_

    def _record_lambda_history(self):
        lambdas = lambda_history(self.net_.optimizer_)
        if lambdas is not None:
            self.lambda_history_ = lambdas

    # -- prediction ----------------------------------------------------------

    def _check_image_shape(self, shape):
        """Images must have the shape seen in ``fit`` (flat rows of its size pass)."""
        if len(shape) > 1 and tuple(shape) != tuple(self._input_shape):
            raise ValueError(
                f"X has samples of shape {tuple(shape)}, but {type(self).__name__} was "
                f"fitted on samples of shape {tuple(self._input_shape)}."
            )

    def _validate_predict_data(self, X):
        check_is_fitted(self)
        X, shape = flatten_images(X)
        self._check_image_shape(shape)
        X = validate_data(self, X, dtype=np.float32, accept_sparse="csr", reset=False)
        return self._to_tensor(X)
