"""``SparseNetClassifier``: a scikit-learn classifier training sparse networks."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import PrintLog
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from . import _inference
from . import sparsify as _sparsify
from ._net import SparseNet, SparsityHistory
from ._validation import resolve_device
from .models import BUILTIN_MODULES
from .optim import OPTIMIZERS, LambdaHistory, lambda_history, make_optimizer
from .pruning import PRUNERS, make_pruning_callbacks
from .regularizers import REGULARIZERS, make_regularizer
from .schedules import LR_SCHEDULES, make_lr_schedule

__all__ = ["SparseNetClassifier"]

#: History entries holding one value per layer or group: too wide for the log.
_DICT_HISTORY_KEYS = ["layer_density", "n_nonzero", "expected_density", "multiplier"]

#: Prefixes of the routed parameters ``<prefix>__<name>``, as in skorch.
_PREFIXES = ("module", "optimizer", "regularizer", "callbacks")


class SparseNetClassifier(ClassifierMixin, BaseEstimator):
    """Neural network classifier trained for accuracy *and* sparsity.

    Trains a PyTorch network (through skorch) on the weighted sum of the mean
    batch cross-entropy E and a complexity objective Ω of the regularised
    weights (Reiners et al., eq. 7)::

        (1 − lam) · E + lam · Ω

    and prunes weights while or after it trains. After ``fit`` it reports how
    sparse the network is (``density_``, ``layer_density_``).

    Parameters
    ----------
    module : str, torch.nn.Module class or instance, default="mlp"
        ``"mlp"`` (sized from the data; ``module__hidden_layer_sizes``, default
        ``(100,)``), ``"lenet300"`` (784-300-100-10), ``"lenet5"`` (Reiners
        Table 1a) or ``"vgg"`` (Table 1b); or any module returning logits.
        Its arguments pass as ``module__name=value``.
    regularizer : {"l1", "l2", "l0", "l2_l0", "lobster", "hard_concrete"}, object or None, \
            default="l1"
        Ω; ``"l1"`` is ``Σ|w|`` (Reiners eq. 4), ``"l2"`` ``½Σw²``, ``"l0"`` the
        smooth ℓ0 ``Σ 1−exp(−β|w|)`` (Oliveira eq. 11), ``"l2_l0"`` their sum
        (eq. 15), ``"lobster"`` LOBSTER's sensitivity shrinkage (eq. 4),
        ``"hard_concrete"`` hard-concrete L0 gates (Gallego-Posada et al.): with
        ``target_density`` a constraint solved by a Lagrangian (``lam`` is then
        unused), else the penalty ``λ·E‖z‖₀``. An object following the protocol
        of :mod:`skprune.regularizers` also works; its parameters pass as
        ``regularizer__name=value``.
    lam : float in [0, 1), default=1e-4
        λ, the weight of Ω in ``(1 − λ)·E + λ·Ω``. Ω is summed, not averaged,
        so λ means what it means in the paper.
    pruning : {"auto", "batch", "epoch", "after", "global", "layerwise", "random", \
            "lobster"} or None, default="auto"
        ``"auto"``: ``"batch"``, or None for a regularizer that prunes itself
        (``"hard_concrete"``).
        Soft threshold pruning with ``threshold`` after every batch, after
        every epoch, or once after training (Reiners §4); every mode also
        prunes once before training and once after the last step.
        ``"global"``, ``"layerwise"``, ``"random"``: after ``max_epochs``,
        prune to ``target_density`` and fine-tune ``finetune_epochs`` more
        (Oliveira §4.1). ``"lobster"``: LOBSTER's learning and pruning stages
        (§4), with ``patience`` and ``loss_tolerance``.
    threshold : float >= 0, default=1e-3
        τ: weights with ``|w| <= τ`` are set to zero when pruning.
    target_density : float in (0, 1], dict or None, default=None
        ε, the share of regularised weights to keep: the constraint level of
        ``regularizer="hard_concrete"`` and the goal of magnitude pruning
        (``"global"``, ``"layerwise"``, ``"random"``). A dict maps layer names
        (as in ``layer_density_``) to their own level.
    finetune_epochs : int >= 0, default=3
        Epochs of training with the pruning mask held after magnitude pruning.
    loss_tolerance : float >= 0, default=0.05
        LOBSTER's TWT: the pruning stage keeps the validation loss within
        ``(1 + loss_tolerance)`` times its value before pruning.
    patience : int >= 1, default=5
        LOBSTER's PWE: epochs without improvement of the validation loss that
        end a learning stage.
    optimizer : str or torch optimizer class, default="adam"
        ``"sgd"``, ``"adam"``, ``"rmsprop"``, ``"smgd"``, ``"madam"`` or
        ``"mrmsprop"``, or a :class:`torch.optim.Optimizer` subclass. Its options
        pass as ``optimizer__name=value`` (e.g. ``optimizer__momentum``).
        ``"smgd"``, ``"madam"`` and ``"mrmsprop"`` are the multi-objective
        optimisers of Reiners §3.2 (:mod:`skprune.optim`): they ignore ``lam``
        and pick at every step the λ of the steepest common descent direction
        of E and Ω (eq. 15), recorded in ``lambda_history_``.
    lr : float > 0, default=1e-3
        Learning rate (the starting rate under ``lr_schedule``).
    lr_schedule : {"sigmoid"} or None, default=None
        ``"sigmoid"``: the rate falls smoothly from ``lr`` to ``lr_final``,
        dropping around 75 % of ``max_epochs`` (Reiners §6.1); the rate of
        each epoch is recorded in ``history_`` as ``lr``.
    lr_final : float > 0 or None, default=None
        The final rate of ``lr_schedule``, at most ``lr``; None means ``lr / 10``.
    batch_size : int >= 1, default=32
    max_epochs : int >= 1, default=30
    validation_fraction : float in [0, 1), default=0.0
        Share of the training data held out inside ``fit`` (stratified) and
        scored every epoch as ``valid_loss`` / ``valid_acc``.
    regularized_layers : {"dense", "all"} or list of str, default="dense"
        The layers whose weights are regularised and pruned: every
        ``nn.Linear`` (as in the papers), linear and convolutional layers, or
        those sub-module names.
    device : str, default="auto"
        ``"auto"`` picks CUDA when available, else ``"cpu"``; or ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ...
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, batch order and the validation
        split. Equal seeds give identical results on the CPU.
    verbose : int, default=0
        Print one line per epoch when > 0.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks, appended after skprune's own.
    **kwargs
        Routed parameters ``module__*``, ``optimizer__*``, ``regularizer__*``
        and ``callbacks__*``; searchable with ``GridSearchCV``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``.
    n_features_in_ : int
        Number of features after flattening (784 for 28×28 images).
    feature_names_in_ : ndarray of str
        Present when ``X`` had string column names.
    net_ : skorch.NeuralNetClassifier
        The fitted skorch net; ``net_.module_`` is the trained network.
    history_ : skorch.History
        Per epoch: ``train_loss`` (the weighted sum), ``ce`` (E), ``penalty``
        (Ω), ``density``, ``n_nonzero``, ``layer_density``, and ``valid_loss``
        / ``valid_acc`` with a validation split; ``lr`` with ``lr_schedule``;
        ``lambda`` (the epoch's mean λ*) with a multi-objective optimizer; the
        pruning modes' events (``event_prune``; ``lobster_threshold``,
        ``event_lobster_prune``).
    density_ : float
        Share of non-zero regularised weights, counted on ``net_.module_``.
    sparsity_ : float
        ``1 − density_``.
    n_nonzero_ : int
        Number of non-zero regularised weights.
    n_weights_ : int
        Number of regularised weights.
    layer_density_ : dict
        Regularised layer name -> its share of non-zero weights.
    objectives_ : tuple of float
        The biobjective point (E, Ω): the mean training cross-entropy of the
        last epoch and the regulariser of the final weights.
    lambda_history_ : ndarray of shape (n_steps,)
        With a multi-objective optimizer only: the λ* chosen at every
        optimiser step (Reiners Fig. 8).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skprune import SparseNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SparseNetClassifier(lam=1e-3, max_epochs=5, random_state=0)
    >>> clf.fit(X / 16, y).density_ < 1
    True
    """

    _parameter_constraints = {
        "module": [StrOptions(BUILTIN_MODULES.keys()), type, nn.Module],
        "regularizer": [StrOptions(REGULARIZERS.keys()), HasMethods(["penalty"]), None],
        "lam": [Interval(Real, 0, 1, closed="left")],
        "pruning": [StrOptions({"auto", *PRUNERS}), None],
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
                f"SparseNetClassifier got unknown parameters {unknown or self._routed}; "
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
        """Train the network on ``X`` (n, d) or (n, C, H, W) and labels ``y``.

        Returns
        -------
        self : SparseNetClassifier
        """
        self._check_routed_params()
        X, y = self._validate_fit_data(X, y)
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        # Moved to the device once: batches are then slices there, not copies.
        train, valid = (
            part and tuple(t.to(device) for t in part) for part in self._split(X, y, seed)
        )
        with torch.random.fork_rng(devices=_cuda_indices(device)):
            torch.manual_seed(seed)
            self.net_ = self._build_net(device, len(self.classes_), seed, valid).initialize()
            self._check_layer_names()
            self.net_.partial_fit(*train)
        self.history_ = self.net_.history
        self._record_sparsity()
        self._record_lambda_history()
        return self

    def _validate_fit_data(self, X, y):
        X, self._input_shape = _flatten_images(X)
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                "SparseNetClassifier needs samples of at least 2 classes in y; "
                f"got 1 class ({self.classes_[0]!r})."
            )
        return X, encoder.transform(y).astype(np.int64)

    def _split(self, X, y, seed):
        """Training and validation ``(X, y)`` tensors (validation may be None)."""
        if not self.validation_fraction:
            return (self._to_tensor(X), torch.as_tensor(y)), None
        stratify = y if np.bincount(y).min() >= 2 else None
        X_tr, X_va, y_tr, y_va = train_test_split(
            X,
            y,
            test_size=self.validation_fraction,
            stratify=stratify,
            random_state=seed,
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

    def _build_net(self, device, n_classes, seed, valid):
        module, module_kwargs = self._resolve_module(n_classes)
        optimizer, optimizer_kwargs = make_optimizer(self, torch.device(device))
        regularizer = make_regularizer(self)
        pruning = make_pruning_callbacks(self, regularizer)
        callbacks = [
            *([("regularizer", regularizer)] if hasattr(regularizer, "on_batch_end") else []),
            *((f"pruning_{i}", cb) for i, cb in enumerate(pruning)),
            *(("lr_schedule", cb) for cb in make_lr_schedule(self)),
            *([("lambda", LambdaHistory())] if getattr(optimizer, "multiobjective", False) else []),
            ("sparsity", SparsityHistory()),
            *((f"user_{i}", copy.deepcopy(cb)) for i, cb in enumerate(self.callbacks or [])),
            ("print_log", PrintLog(keys_ignored=_DICT_HISTORY_KEYS)),
        ]
        net = SparseNet(
            module,
            criterion=nn.CrossEntropyLoss,
            optimizer=optimizer,
            lr=self.lr,
            max_epochs=self.max_epochs + sum(getattr(cb, "extra_epochs", 0) for cb in pruning),
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
        return net

    def _check_layer_names(self):
        """Dict-valued ``target_density`` must name regularised layers."""
        if not isinstance(self.target_density, dict):
            return
        names = [name for name, _ in self.net_.regularized_named_]
        unknown = sorted(set(self.target_density) - set(names))
        if unknown:
            raise ValueError(
                f"The 'target_density' parameter names layers {unknown} that are not "
                f"regularised layers of the module; those are {names}."
            )
        bad = {k: v for k, v in self.target_density.items() if not 0 < v <= 1}
        if bad:
            raise ValueError(
                f"The 'target_density' parameter must map layers to floats in (0, 1]. Got {bad}."
            )

    def _resolve_module(self, n_classes):
        """The module (class or a copy of the instance) and its keyword arguments."""
        kwargs = self._prefixed_params("module")
        if isinstance(self.module, str):
            image_shape = self._input_shape if len(self._input_shape) == 3 else None
            factory = BUILTIN_MODULES[self.module]
            return factory(self.n_features_in_, n_classes, image_shape, **kwargs)
        if isinstance(self.module, nn.Module):
            return copy.deepcopy(self.module), kwargs
        return self.module, kwargs

    def _record_sparsity(self):
        summary = self.net_.sparsity_summary()
        self.n_nonzero_, self.n_weights_ = summary["n_nonzero"], summary["n_weights"]
        self.density_ = summary["density"]
        self.sparsity_ = 1.0 - self.density_
        self.layer_density_ = summary["layer_density"]
        self.objectives_ = (float(self.history_[-1, "ce"]), summary["penalty"])
        if self.n_weights_ and not self.n_nonzero_:
            warnings.warn(
                f"Every regularised weight is zero: the network collapsed at lam={self.lam}"
                f" with threshold={self.threshold}. Lower lam or threshold, or use "
                "ParetoSearchCV to find the knee of the trade-off.",
                UserWarning,
                stacklevel=4,
            )

    def _record_lambda_history(self):
        lambdas = lambda_history(self.net_.optimizer_)
        if lambdas is not None:
            self.lambda_history_ = lambdas
        elif hasattr(self, "lambda_history_"):
            del self.lambda_history_

    # -- prediction ----------------------------------------------------------

    def _validate_predict_data(self, X):
        check_is_fitted(self)
        X, _ = _flatten_images(X)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._to_tensor(X)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), rows summing to 1.

        Computed in float64 by a form of the network made once (compacted
        after :meth:`sparsify`), so that a sample's probabilities do not
        depend on the other samples passed with it.
        """
        return _inference.predict_proba(self, X)

    def sparsify(self):
        """Predict through the compacted network: dead units removed, CSR layers.

        In place; ``density_``, ``layer_density_`` and ``history_`` still
        describe the trained network, and ``fit`` starts from it again. See
        :mod:`skprune.sparsify` for what is compacted.

        Returns
        -------
        self : SparseNetClassifier
        """
        return _sparsify.sparsify(self)

    def densify(self):
        """Predict through the trained network again (undoes :meth:`sparsify`).

        Returns
        -------
        self : SparseNetClassifier
        """
        return _sparsify.densify(self)

    @property
    def coef_(self):
        """After :meth:`sparsify` only: the first regularised layer's weights as
        a ``scipy.sparse`` CSR matrix (units × inputs), as ``SGDClassifier``."""
        return _sparsify.sparse_coef(self)

    def predict(self, X):
        """Predicted class labels (of the type seen in ``fit``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


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
