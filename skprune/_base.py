"""What :class:`~skprune.SparseNetClassifier` and :class:`~skprune.SparseNetRegressor` share.

:class:`BaseSparseNet` holds the parameters, the routed ``prefix__name``
parameters, the fit skeleton and the sparsity record. A subclass says what its
targets are (:meth:`BaseSparseNet._encode_targets`), which skorch net trains
(``_net_class``) and how it predicts.
"""

import copy
import inspect
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import PrintLog
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ._checks import DivergenceCheck, check_module, check_parts, check_split
from ._net import SparsityHistory
from ._validation import resolve_device
from .engine import fit_net
from .models import BUILTIN_MODULES
from .optim import LambdaHistory, MultiObjectiveOptimizer, lambda_history
from .pruning import Pruner
from .registry import OPTIMIZERS, PRUNERS, REGULARIZERS, build_part, optimizer_and_kwargs
from .regularizers import Regularizer
from .schedules import LR_SCHEDULES, make_lr_schedule

__all__ = ["BaseSparseNet"]

#: History entries holding one value per layer or group: too wide for the log.
_DICT_HISTORY_KEYS = ["layer_density", "n_nonzero", "expected_density", "multiplier"]

#: Prefixes of the routed parameters ``<prefix>__<name>``, as in skorch.
_PREFIXES = ("module", "optimizer", "regularizer", "pruning", "callbacks")


class BaseSparseNet(BaseEstimator):
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
        "lr": [Interval(Real, 0, None, closed="neither")],
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
        lr=1e-3,
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
        self._set_routed_params(kwargs)

    # -- routed ``prefix__name`` parameters, as in skorch -------------------

    # Like any parameter, they are stored as given and checked in ``fit``.

    def _set_routed_params(self, params):
        if not hasattr(self, "_routed"):
            self._routed = []
        for key, value in params.items():
            setattr(self, key, value)
            if key not in self._routed:
                self._routed.append(key)

    def _check_routed_params(self):
        unknown = [k for k in self._routed if k.partition("__")[0] not in _PREFIXES]
        if unknown or any(not k.partition("__")[2] for k in self._routed):
            raise ValueError(
                f"{type(self).__name__} got unknown parameters {unknown or self._routed}; "
                f"routed parameters are named {[p + '__<name>' for p in _PREFIXES]}."
            )

    def _prefixed_params(self, prefix):
        """The routed parameters ``prefix__name`` as ``{name: value}``."""
        start = prefix + "__"
        return {k[len(start) :]: getattr(self, k) for k in self._routed if k.startswith(start)}

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        return {**params, **{k: getattr(self, k) for k in self._routed}}

    def set_params(self, **params):
        own = self._get_param_names()
        self._set_routed_params({k: v for k, v in params.items() if k not in own})
        return super().set_params(**{k: v for k, v in params.items() if k in own})

    # -- fitting -------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on ``X`` (n, d) or (n, C, H, W) and targets ``y``.

        Returns
        -------
        self : estimator
            The fitted estimator. If training is interrupted or fails, the
            exception propagates and the estimator is left unfitted.
        """
        try:
            return self._fit(X, y)
        except BaseException:
            self._forget_fit()
            raise

    def _fit(self, X, y):
        self._forget_fit()
        self._check_routed_params()
        X, y = self._validate_fit_data(X, y)
        device = resolve_device(self.device)
        parts = self._build_parts(device)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        # Moved to the device once: batches are then slices there, not copies.
        train, valid = (
            part and tuple(t.to(device) for t in part) for part in self._split(X, y, seed)
        )
        with torch.random.fork_rng(devices=_cuda_indices(device)):
            torch.manual_seed(seed)
            self.net_ = self._build_net(device, parts, seed, valid).initialize()
            check_module(self, self.net_, train[0], parts)
            if not fit_net(self, self.net_, *train):  # the stacked engine, K = 1
                self.net_.partial_fit(*train)
        self.history_ = self.net_.history
        self._record_sparsity()
        self._record_lambda_history()
        return self

    def _forget_fit(self):
        """Remove what a fit that did not finish has set: no half-trained model is kept."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    def _validate_fit_data(self, X, y):
        X, self._input_shape = _flatten_images(X)
        X, y = validate_data(self, X, y, dtype=np.float32, **self._y_validation)
        return X, self._encode_targets(y)

    def _build_parts(self, device):
        """Regularizer, pruner and optimiser, checked against each other before training."""
        regularizer = (
            None if self.regularizer is None else build_part(self, "regularizer", self.regularizer)
        )
        pruner = self._resolve_pruning(regularizer)
        optimizer = optimizer_and_kwargs(self, device)
        check_parts(self, regularizer, pruner, optimizer[0], _part_defaults(type(self)))
        make_lr_schedule(self)  # checks lr_final against lr
        return regularizer, pruner, optimizer

    def _resolve_pruning(self, regularizer):
        """``pruning="auto"``: none for a regularizer that prunes itself, else ``"batch"``."""
        pruning = self.pruning
        if pruning == "auto":
            pruning = None if regularizer is not None and regularizer.prunes_itself else "batch"
        return None if pruning is None else build_part(self, "pruning", pruning)

    def _split(self, X, y, seed):
        """Training and validation ``(X, y)`` tensors (validation may be None)."""
        if not self.validation_fraction:
            return (self._to_tensor(X), torch.as_tensor(y)), None
        stratify = check_split(self, y)
        X_tr, X_va, y_tr, y_va = train_test_split(
            X, y, test_size=self.validation_fraction, stratify=stratify, random_state=seed
        )
        to = self._to_tensor
        return (to(X_tr), torch.as_tensor(y_tr)), (to(X_va), torch.as_tensor(y_va))

    def _to_tensor(self, X):
        """float32 tensor in the shape the module was fitted on.

        Shares memory with ``X`` where it can (nothing writes to it); read-only
        arrays, which torch cannot wrap, are copied.
        """
        X = np.ascontiguousarray(X)
        X = torch.from_numpy(X) if X.flags.writeable else torch.tensor(X)
        return X.reshape(len(X), *self._input_shape)

    def _build_net(self, device, parts, seed, valid):
        regularizer, pruner, (optimizer, optimizer_kwargs) = parts
        module, module_kwargs = self._resolve_module()
        callbacks = [
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
            lr=self.lr,
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
            warnings.warn(
                f"Every regularised weight is zero: the network collapsed at lam={self.lam}"
                f" with threshold={self.threshold}. Lower lam or threshold, or use "
                "ParetoSearchCV to find the knee of the trade-off.",
                UserWarning,
                stacklevel=5,
            )

    def _record_lambda_history(self):
        lambdas = lambda_history(self.net_.optimizer_)
        if lambdas is not None:
            self.lambda_history_ = lambdas

    # -- prediction ----------------------------------------------------------

    def _validate_predict_data(self, X):
        check_is_fitted(self)
        X, shape = _flatten_images(X)
        if len(shape) > 1 and tuple(shape) != tuple(self._input_shape):
            raise ValueError(
                f"X has samples of shape {tuple(shape)}, but {type(self).__name__} was "
                f"fitted on samples of shape {tuple(self._input_shape)}."
            )
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._to_tensor(X)

    def _forward(self, X):
        """The network's outputs for ``X`` (already validated), float64 on the CPU."""
        return self.net_.forward_float64(self._validate_predict_data(X))


def _part_defaults(cls):
    """The estimator parameters that only some parts read, with their defaults."""
    signature = inspect.signature(cls.__init__).parameters
    names = ("threshold", "target_density", "finetune_epochs", "loss_tolerance", "patience")
    return {name: signature[name].default for name in names}


def _flatten_images(X):
    """(X as 2-D, per-sample shape): image batches (n, C, H, W) become (n, C·H·W)."""
    if not hasattr(X, "ndim"):  # lists; arrays, DataFrames and sparse matrices have it
        X = np.asarray(X)
    if X.ndim > 2:
        X = np.asarray(X)
        return X.reshape(len(X), -1), X.shape[1:]
    return X, (X.shape[1] if X.ndim == 2 else 0,)


def _cuda_indices(device):
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
