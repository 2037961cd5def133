"""Train K copies of a network at once: the whole λ path in one stacked model.

A small network leaves the machine idle: most of a training step is per-op
overhead that every separately trained copy pays again. The engine trains K
copies of a :class:`~skprune.SparseNetClassifier` or
:class:`~skprune.SparseNetRegressor` — each with its own λ, initial
weights (from its own seed), batch order, optimiser state and pruning — as one
stacked model (:mod:`skprune._stacked`), so that one kernel does the work of K.

Each copy equals, to float tolerance on the CPU, the separate fit
``clone(estimator).set_params(lam=λ).fit(X, y)``:

* its seed is drawn from its ``random_state`` as ``fit`` draws it, and its
  network is built and initialised by the estimator's own ``_build_net`` under
  that seed, so that the initial weights are the same;
* its batches come from its own ``torch.Generator`` seeded with that seed, one
  ``randperm`` per epoch, as :class:`~skprune._net.TensorBatches` draws them;
* the loss is ``(1 − λ_k)·E_k + λ_k·Ω``, with E the cross-entropy or the
  mean squared error (their gradients in closed form,
  :func:`~skprune._stacked.error_grad`) and Ω's gradient ``regularizer.grad``
  (elementwise), the optimiser is the same torch optimiser run on the stacked
  tensors (its update is elementwise, fused Adam included), and threshold
  pruning acts at the same points (before training, after every batch or
  epoch, after training);
* it starts with ``fit``'s own checks (``BaseSparseNet._checked_fit``), and
  after every epoch its net's own ``DivergenceCheck`` looks at it, as skorch's
  loop calls that callback.

Copies may train on different rows (cross-validation folds): each has its own
index tensor into the shared ``X``. Copies that take the same number of
batches per epoch share a stack; a shorter last batch is padded and its
padding rows get weight 0 in E. Copies whose number of batches differs, or
whose settings other than ``lam`` and ``random_state`` differ, train in
separate stacks. Settings the engine does not serve
(:func:`unstackable_reason`, the one guard) fall back to a plain ``fit``
through skorch's loop; ``training_loop_`` says which loop trained a fit.
"""

import math
from copy import deepcopy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples
from skorch.callbacks import Callback
from torch import nn

from ..models import BUILTIN_MODULES
from ..parts._optim import SMGD, MAdam, MRMSProp
from ..parts._pruning import Pruner, ThresholdPruning
from ..parts._regularizers import Regularizer
from ..parts._schedules import make_lr_schedule
from ._atomic import all_or_nothing, unfinished_restored
from ._data import cuda_indices
from ._folds import is_rows, stack_folds
from ._stack_hooks import STACK_HOOKS, missing_stack_hooks
from ._stack_loop import train_stack
from ._stacked import error_grad, global_rng_state, needs_equal_rows, unstackable
from ._stopping import stopping_callbacks
from ._threads import flush_denormals, seeded_rng, step_work, torch_threads

__all__ = [
    "lambda_path",
    "fit_stacked",
    "train_stackable",
    "fit_candidates",
    "train_net",
    "fit_net",
    "unstackable_reason",
]

_OPTIMIZERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop)


def unstackable_reason(estimator, parts=None, module=None):
    """Why the engine cannot train ``estimator`` (a sentence), or None if it can.

    The one guard: ``fit``, :func:`lambda_path`, :func:`fit_stacked` and the
    vectorised search train through the engine exactly when it returns None
    (``fit`` also leaves ``partial_fit`` and ``warm_start`` continuations to
    skorch's loop); ``training_loop_`` says which loop ran.

    Served: :class:`~skprune.SparseNetClassifier` and
    :class:`~skprune.SparseNetRegressor` with a regularizer that enters the
    loss with an analytic ``grad`` (ℓ1, ℓ2, ℓ0, ℓ2+ℓ0 and subclasses that
    implement ``grad``) or None; threshold pruning (``"auto"``, ``"batch"``,
    ``"epoch"``, ``"after"``) or None; the optimizer SGD, Adam, RMSprop, SMGD,
    MAdam or MRMSProp; ``lr_schedule``, ``validation_fraction``,
    ``early_stopping``, ``class_weight`` and sample weights; no extra
    callbacks; a module whose only layers that draw random numbers in training
    are ``nn.Dropout`` (batch norm stacks too). ``parts`` and
    ``module`` are the fit's built parts and built module, when known (else
    the parts are built, and a module named by a string or an instance is
    built on the ``meta`` device, from the estimator's settings).

    Examples
    --------
    >>> from skprune import SparseNetClassifier
    >>> unstackable_reason(SparseNetClassifier()) is None
    True
    >>> import torch
    >>> unstackable_reason(SparseNetClassifier(optimizer=torch.optim.Adagrad))
    'optimizer Adagrad is not SGD, Adam, RMSprop, SMGD, MAdam or MRMSProp'
    """
    if error_grad(getattr(estimator, "_criterion", None)) is None:
        return f"{type(estimator).__name__} is trained on neither the cross-entropy nor the MSE"
    regularizer, pruner, (optimizer, _) = parts or estimator._build_parts("cpu")
    return (
        _optimizer_reason(estimator, optimizer)
        or _regularizer_reason(estimator, regularizer)
        or _pruner_reason(estimator, pruner)
        or _settings_reason(estimator)
        or _module_reason(estimator, module)
    )


def _optimizer_reason(estimator, optimizer):
    # The multi-objective ones by class: their stacked step (a λ* per copy) is their own.
    if issubclass(optimizer, _OPTIMIZERS) or optimizer in (SMGD, MAdam, MRMSProp):
        return None
    spec = estimator.optimizer
    label = f"optimizer={spec!r}" if isinstance(spec, str) else f"optimizer {optimizer.__name__}"
    return f"{label} is not SGD, Adam, RMSprop, SMGD, MAdam or MRMSProp"


def _regularizer_reason(estimator, reg):
    """What ``reg`` lacks to train stacked: ∂Ω/∂w in closed form, stack hooks for its hooks."""
    if reg is None:
        return None
    what = _part_lacks(reg, Regularizer)
    if what is None and reg.in_loss and not reg.analytic and not hasattr(reg, "stack_penalty"):
        what = "it has no analytic gradient; implement grad(w), ∂Ω/∂w of one tensor"
    return None if what is None else f"regularizer {reg!r} is not stackable: {what}"


def _pruner_reason(estimator, pruner):
    if pruner is None:
        return None
    what = _part_lacks(pruner, Pruner)
    if what is None and isinstance(pruner, ThresholdPruning):
        if type(pruner)._prune is not ThresholdPruning._prune:
            what = "it overrides _prune, which its stack hooks do not call"
    return None if what is None else f"pruning {pruner!r} is not stackable: {what}"


def _part_lacks(part, base):
    """Which skorch hooks ``part`` overrides without the stack hooks that stand in for them."""
    missing = missing_stack_hooks(part, base)
    if not missing:
        return None
    hooks = [h for h, s in STACK_HOOKS.items() if s in missing]
    return (
        f"it overrides {', '.join(hooks)} but does not define {', '.join(missing)} "
        "(see skprune.training._stack_hooks)"
    )


def _settings_reason(estimator):
    checks = {
        "callbacks": not estimator.callbacks,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        return f"{bad[0]}={getattr(estimator, bad[0])!r} is set"
    stopping = [cb for name, cb in stopping_callbacks(estimator) if name == "early_stopping"]
    for callback in (*make_lr_schedule(estimator), *stopping):
        what = _part_lacks(callback, Callback)
        if what is not None:
            return f"{callback!r} is not stackable: {what}"
    return None


def _module_reason(estimator, module):
    """Why the module (built, or probed from the settings) cannot be stacked, or None."""
    module = _probe_module(estimator) if module is None else module
    reason = None if module is None else unstackable(module)
    if reason is None:
        return None
    spec = estimator.module
    name = repr(spec) if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__)
    return f"module={name}: {reason}"


def _probe_module(estimator):
    """The estimator's module built on the ``meta`` device (no memory), or None if unknown."""
    spec = estimator.module
    if isinstance(spec, nn.Module):
        return spec
    kwargs = estimator._prefixed_params("module")
    try:
        if isinstance(spec, str):
            spec, kwargs = BUILTIN_MODULES[spec](*_probe_sizes(estimator), **kwargs)
        with torch.device("meta"):
            return spec(**kwargs)
    except Exception:  # a module the settings alone cannot build: decided when fit builds it
        return None


def _probe_sizes(estimator):
    """``(n_features, n_outputs, image shape)`` of the data seen, else of 3×32×32 images."""
    if not hasattr(estimator, "n_features_in_"):
        return 3 * 32 * 32, 2, None
    shape = estimator._input_shape
    return estimator.n_features_in_, estimator._n_outputs, shape if len(shape) == 3 else None


@dataclass
class _Copy:
    """One copy of a stack: its estimator, net, λ, seed and training rows."""

    estimator: object
    net: object
    rows: torch.Tensor
    y: torch.Tensor
    lam: float
    seed: int
    pruner: object
    #: The FloatingPointError of the epoch where this copy diverged (DivergenceCheck), or None.
    error: Exception = None
    #: torch's global generator state where the separate fit starts training (Stack.rngs).
    rng_state: torch.Tensor = None
    #: Held-out rows (``validation_fraction > 0``; else None), indices into ``valid_X``,
    #: and their targets: the rows ``estimator._split`` holds out with the copy's seed.
    valid_rows: torch.Tensor = None
    valid_y: torch.Tensor = None
    #: The tensor ``valid_rows`` index into; None: the stack's ``X`` (as ``rows``).
    valid_X: object = None
    #: Each training row's weight in E (sample_weight × class_weight), or None: all equal.
    weight: torch.Tensor = None
    #: Where the copy's random draws in training come from (the hard-concrete gates' noise):
    #: a generator in the state torch's global one has when its separate fit starts training.
    rng: torch.Generator = None

    def __post_init__(self):
        # What skorch's fit records for a classifier: the scale of DivergenceCheck's bound.
        if self.net.error_key == "ce":
            self.net.classes_inferred_ = np.unique(self.y.cpu().numpy())
        self.divergence = dict(self.net.callbacks_)["divergence"]


def lambda_path(estimator, X, y, lams):
    """Fit ``estimator`` at every λ of ``lams``, all trained at once.

    In the shape of :func:`sklearn.linear_model.lasso_path`: one fitted
    estimator per λ, each equal (to float tolerance on the CPU) to
    ``clone(estimator).set_params(lam=λ).fit(X, y)`` with the same
    ``random_state``, but trained as one stacked model (see
    :mod:`skprune.engine`). Settings the engine does not serve fall back to
    separate fits.

    Parameters
    ----------
    estimator : SparseNetClassifier, SparseNetRegressor or Pipeline
        Unfitted template; cloned, not changed. A pipeline's last step is
        the network whose ``lam`` is set; its earlier steps are fitted once,
        and each fitted pipeline gets its own copy of them.
    X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n, C, H, W)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    lams : iterable of float
        The λ values, each in [0, 1).

    Returns
    -------
    estimators : list of estimators
        Fitted, in the order of ``lams``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skprune import SparseNetClassifier, lambda_path
    >>> X, y = load_digits(return_X_y=True)
    >>> path = lambda_path(SparseNetClassifier(max_epochs=2, random_state=0),
    ...                    X[:200] / 16, y[:200], [1e-4, 1e-2])
    >>> path[0].density_ > path[1].density_
    True
    """
    last = estimator.steps[-1] if isinstance(estimator, Pipeline) else (None, estimator)
    if "lam" not in last[1].get_params(deep=False):
        raise TypeError(
            "lambda_path needs a SparseNetClassifier or SparseNetRegressor, or a Pipeline "
            f"ending in one; got {type(last[1]).__name__}, which has no parameter lam."
        )
    param = f"{last[0]}__lam" if last[0] else "lam"
    estimators = [clone(estimator).set_params(**{param: float(lam)}) for lam in lams]
    return fit_stacked(estimators, X, y)


@all_or_nothing  # any exception (Ctrl-C too) puts every estimator back as it was
def fit_stacked(estimators, X, y, rows=None):
    """Fit every estimator in place, stacking those the engine can train together.

    Parameters
    ----------
    estimators : list of SparseNetClassifier or SparseNetRegressor, or of pipelines
        Unfitted; they may differ in ``lam`` and ``random_state`` within a stack
        (estimators differing in anything else train in separate stacks);
        pipelines ending in one, of the same steps (see :func:`train_stackable`).
    X, y : array-like
        The data; every estimator trains on ``X[rows[k]]``, ``y[rows[k]]``.
    rows : list of (array of int or None) or None, default=None
        Training rows of each estimator (e.g. the training folds of a
        cross-validation); None trains on every row.

    Returns
    -------
    estimators : list
        The same objects, fitted; after any exception, all as they were before.
    """
    rows = [None] * len(estimators) if rows is None else list(rows)
    done = train_stackable(estimators, X, y, rows)
    for est, r, ok in zip(estimators, rows, done):
        if not ok:
            # Settings the engine does not serve, or a copy that diverged: its
            # own fit (raising FloatingPointError, as the separate fit would).
            est.fit(*_rows(X, y, r))
    return estimators


@unfinished_restored
@torch_threads()  # threads by each stack's work, denormals flushed: see skprune._threads
@flush_denormals()
def train_stackable(estimators, X, y, rows):
    """Fit, in stacks, the estimators the engine serves; the others are left as they are.

    Returns one bool per estimator: True if it is fitted, False if the engine
    does not serve its settings or its copy diverged (left as it was: fit it yourself).
    Pipelines (all or none of ``estimators``) have their earlier steps fitted
    once per distinct set of rows, as ``Pipeline.fit`` fits them, and their
    last steps stacked on the transformed rows.
    """
    if estimators and isinstance(estimators[0], Pipeline):
        return _train_pipelines(estimators, X, y, rows)
    copies = {}
    for i, (est, r) in enumerate(zip(estimators, rows)):
        copy = _prepare(est, X, y, r)
        if copy is not None:
            copies[i] = copy
    done = [False] * len(estimators)
    if not copies:
        return done
    X_all = _full_tensor(next(iter(copies.values())), X)
    diverged = set()
    for group in _groups(list(copies.values())):
        diverged.update(id(group[k]) for k in train_stack(group, X_all))
    for i, c in copies.items():
        if id(c) not in diverged:
            _finish(c.estimator)
            done[i] = True
    return done


def _train_pipelines(pipelines, X, y, rows):
    """:func:`train_stackable` for pipelines; a fold whose earlier steps fail, or
    whose transformed ``X`` is neither an array nor a sparse matrix (a DataFrame),
    is left to the pipelines' own fits."""
    rows = [np.arange(_num_samples(X)) if r is None else r for r in rows]
    folds = [np.asarray(r).tobytes() for r in rows]
    blocks = {}  # fold -> (its fitted earlier steps, its transformed X, its y) or None
    for pipe, r, fold in zip(pipelines, rows, folds):
        if fold in blocks:
            continue
        X_fold, y_fold = _safe_indexing(X, r), _safe_indexing(y, r)
        steps = clone(pipe[:-1])
        try:  # as Pipeline.fit transforms for its last step
            Xt = steps.fit_transform(X_fold, y_fold)
        except Exception:  # raised again by the pipelines' own fits, where error_score applies
            Xt = None
        blocks[fold] = (steps, Xt, np.asarray(y_fold)) if is_rows(Xt) else None
    done = [False] * len(pipelines)
    for X_all, y_all, at in stack_folds({f: b[1:] for f, b in blocks.items() if b is not None}):
        served = [k for k, fold in enumerate(folds) if fold in at]
        nets, net_rows = [pipelines[k][-1] for k in served], [at[folds[k]] for k in served]
        for k, ok in zip(served, train_stackable(nets, X_all, y_all, net_rows)):
            if ok:  # the pipeline's own copy of its fold's fitted steps, then its network
                steps = deepcopy(blocks[folds[k]][0])
                pipelines[k].steps = [*steps.steps, pipelines[k].steps[-1]]
                done[k] = True
    return done


def fit_candidates(estimator, X, y, candidates, folds):
    """Fit every (candidate, fold) pair at once: what a vectorised search round trains.

    Parameters
    ----------
    estimator : SparseNetClassifier or SparseNetRegressor
        Unfitted template; cloned for every pair.
    X, y : array-like
    candidates : list of dict
        Parameter settings (``{"lam": 1e-3}``), as ``evaluate_candidates`` gets them.
    folds : list of (train, test) index arrays
        As ``cv.split(X, y)`` yields them; only ``train`` is used.

    Returns
    -------
    estimators : list
        Fitted, in ``BaseSearchCV``'s order: candidate by candidate, and
        within a candidate fold by fold.
    """
    pairs = [(params, train) for params in candidates for train, _ in folds]
    estimators = [clone(estimator).set_params(**params) for params, _ in pairs]
    return fit_stacked(estimators, X, y, [train for _, train in pairs])


def train_net(estimator, net, X, y, weight=None, epochs=None):
    """Train ``net`` as ``fit`` does: through the engine where it serves, else skorch's loop.

    ``weight`` are per-sample weights (or None) and ``epochs`` the number of
    epochs (None: ``max_epochs``), as ``SparseNet.partial_fit`` takes them.
    Returns True if the engine trained it, False if skorch's loop did.
    """
    if fit_net(estimator, net, X, y, weight, epochs):
        return True
    net.train_sample_weight = weight
    with torch_threads(step_work(net.module_, X, min(estimator.batch_size, len(X)))):
        net.partial_fit(X, y, epochs=epochs)
    net.train_sample_weight = None  # not kept in the fitted estimator
    return False


def fit_net(estimator, net, X, y, weight=None, epochs=None):
    """Train ``net`` (initialised by ``estimator._build_net``) on tensors ``X``, ``y``.

    The single fit through the engine (K = 1), for ``fit`` to call in place of
    ``net.partial_fit(X, y)``. Returns False, training nothing, when the engine
    does not serve it: :func:`unstackable_reason` (sample weights included),
    or a continuation (a number of ``epochs``: ``partial_fit``; a net that has
    trained before: ``warm_start``). With ``verbose`` it prints skorch's table
    of the epochs; at the end of the epoch where training diverged it raises
    ``FloatingPointError``, as skorch's loop does.
    """
    if epochs is not None or len(net.history):
        return False
    parts = _net_parts(net)
    if unstackable_reason(estimator, parts, net.module_):
        return False
    rows = torch.arange(len(X), device=X.device)
    copy = _Copy(estimator, net, rows, y, float(estimator.lam), net.seed, parts[1])
    copy.rng_state = global_rng_state(X.device)  # fit trains under seeded_rng: its state now
    copy.weight = weight
    valid = getattr(net.train_split, "keywords", {}).get("valid_ds")
    if valid is not None:  # fit's held-out rows (predefined_split), a tensor of their own
        copy.valid_X, copy.valid_y = valid.X, valid.y
        copy.valid_rows = torch.arange(len(valid.y), device=valid.y.device)
    copy.rng = _global_rng(X.device)  # fit runs this under its seeded global generator
    train_stack([copy], X)
    if copy.error is not None:
        raise copy.error
    return True


# -- the estimator's own fit, split in the parts the engine reuses ------------
#
# These are the only places that reach into the estimators' fit.


def _rows(X, y, rows):
    if rows is None:
        return X, y
    return _safe_indexing(X, rows), _safe_indexing(y, rows)


def _prepare(est, X, y, rows):
    """Check, seed and build ``est.net_`` as ``fit`` does; None if unstackable."""
    est._validate_params()  # what fit's _fit_context runs; the rest is fit's own start
    Xv, yv, weight, device, parts = est._checked_fit(*_rows(X, y, rows), None)
    if unstackable_reason(est, parts):
        return None  # decided before the seed is drawn: est.fit draws it afresh
    seed = est._fit_seed()
    # The split of fit itself, with positions riding along as the rows' weights.
    positions = np.arange(len(yv), dtype=np.float64)
    (X_train, y_train, train_pos), valid = est._split(Xv, yv, positions, seed, device)
    with seeded_rng(seed, cuda_indices(device)):
        est._checked_net(device, parts, seed, valid, X_train)
        rng_state = global_rng_state(device)
        rng = _global_rng(device)
    if unstackable_reason(est, parts, est.net_.module_):
        return None
    index = torch.arange(len(yv)) if rows is None else torch.as_tensor(np.asarray(rows))
    train_pos = train_pos.cpu().long()
    copy = _Copy(est, est.net_, index[train_pos].to(device), y_train, est.lam, seed, parts[1])
    copy.rng_state = rng_state
    copy.rng = rng
    if weight is not None:  # the class and sample weights of the training rows
        copy.weight = torch.as_tensor(weight[train_pos.numpy()]).to(device)
    if valid is not None:
        held_out = torch.ones(len(yv), dtype=torch.bool)
        held_out[train_pos] = False
        valid_pos = held_out.nonzero().squeeze(1)  # the held-out rows, in the data's order
        copy.valid_rows = index[valid_pos].to(device)
        copy.valid_y = torch.as_tensor(yv[valid_pos.numpy()]).to(device)
    return copy


def _global_rng(device):
    """A generator that continues, from here, torch's global generator of ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        source = torch.cuda.default_generators[index]
    else:
        source = torch.default_generator
    rng = torch.Generator(device=device)
    rng.set_state(source.get_state())
    return rng


def _net_parts(net):
    """``(regularizer, pruner, (optimizer class, None))`` of an initialised net."""
    callbacks = dict(net.callbacks_)
    return net.regularizer, callbacks.get("pruning"), (type(net.optimizer_), None)


def _full_tensor(copy, X):
    """All of ``X`` as the float32 tensor, on the copies' device, they index into.

    A fitted copy validates it as it validates data to predict: same checks,
    same dtype and sample shape as its own training rows.
    """
    return copy.estimator._validate_predict_data(X).to(copy.rows.device)


def _groups(copies):
    """Copies that can share a stack: same settings but λ and seed, same batch count."""
    groups = {}
    for c in copies:
        est = c.estimator
        params = est.get_params(deep=False)
        params.pop("lam")
        params.pop("random_state")
        n_batches = math.ceil(len(c.rows) / est.batch_size)
        key = (
            type(est),
            repr(sorted((k, _setting(v)) for k, v in params.items())),
            _target_shape(est),
            est._input_shape,
            str(c.rows.device),
            n_batches,
            len(c.rows) if needs_equal_rows(c.net.module_) else None,
        )
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def _setting(value):
    """A parameter as its settings: a part instance (each clone its own object) by its
    class and parameters, not by its default ``repr`` (an address)."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value).__qualname__, sorted(value.get_params(deep=False).items())
    return value


def _target_shape(est):
    """What a copy's output layer is sized by: the classes, or the number of targets."""
    classes = getattr(est, "classes_", None)
    return tuple(classes.tolist()) if classes is not None else est.n_outputs_


def _finish(est):
    est._record_fit("stacked")
