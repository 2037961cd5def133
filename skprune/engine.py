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
  epoch, after training).

Copies may train on different rows (cross-validation folds): each has its own
index tensor into the shared ``X``. Copies that take the same number of
batches per epoch share a stack; a shorter last batch is padded and its
padding rows get weight 0 in E. Copies whose number of batches differs, or
whose settings other than ``lam`` and ``random_state`` differ, train in
separate stacks. Settings the engine does not serve
(:func:`unstackable_reason`) fall back to a plain ``fit``.
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

from ._atomic import all_or_nothing, unfinished_restored
from ._data import cuda_indices
from ._stack_loop import train_stack
from ._stacked import error_grad, unstackable
from ._threads import flush_denormals, seeded_rng, step_work, torch_threads
from ._validation import resolve_device
from .pruning import ThresholdPruning
from .regularizers import L0, L1, L2, L2L0

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
_REGULARIZERS = (L1, L2, L0, L2L0)


def unstackable_reason(estimator, parts=None):
    """Why the engine cannot train ``estimator`` (a sentence), or None if it can.

    Served: :class:`~skprune.SparseNetClassifier` and
    :class:`~skprune.SparseNetRegressor` with the regularizer ℓ1, ℓ2,
    ℓ0, ℓ2+ℓ0 or None; threshold pruning (``"auto"``, ``"batch"``,
    ``"epoch"``, ``"after"``) or None; the optimizer SGD, Adam or RMSprop;
    no ``lr_schedule``, no validation split, no extra callbacks; a module
    without dropout or batch normalisation (checked once it is built). With
    ``verbose > 0`` a stack prints one progress line per epoch. ``parts`` are
    the estimator's built parts, when known.
    """
    if error_grad(getattr(estimator, "_criterion", None)) is None:
        return f"{type(estimator).__name__} is trained on neither the cross-entropy nor the MSE"
    regularizer, pruner, (optimizer, _) = parts or estimator._build_parts("cpu")
    if not issubclass(optimizer, _OPTIMIZERS):
        return f"optimizer={estimator.optimizer!r} is not SGD, Adam or RMSprop"
    if regularizer is not None and type(regularizer) not in _REGULARIZERS:
        return f"regularizer={estimator.regularizer!r} is not l1, l2, l0, l2_l0 or None"
    if pruner is not None and type(pruner) is not ThresholdPruning:
        return f"pruning={estimator.pruning!r} is not threshold pruning"
    checks = {
        "lr_schedule": estimator.lr_schedule is None,
        "validation_fraction": not estimator.validation_fraction,
        "callbacks": not estimator.callbacks,
        "early_stopping": not getattr(estimator, "early_stopping", False),
    }
    bad = [name for name, ok in checks.items() if not ok]
    return f"{bad[0]}={getattr(estimator, bad[0])!r} is set" if bad else None


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
    X : array-like of shape (n_samples, n_features) or (n, C, H, W)
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
    whose transformed ``X`` is not an array (a sparse matrix, a DataFrame), is
    left to the pipelines' own fits."""
    rows = [np.arange(_num_samples(X)) if r is None else r for r in rows]
    folds = [np.asarray(r).tobytes() for r in rows]
    blocks = {}  # fold -> (its fitted earlier steps, its rows in the stacked X) or None
    Xs, ys, start = [], [], 0
    for pipe, r, fold in zip(pipelines, rows, folds):
        if fold in blocks:
            continue
        X_fold, y_fold = _safe_indexing(X, r), _safe_indexing(y, r)
        steps = clone(pipe[:-1])
        try:  # as Pipeline.fit transforms for its last step
            Xt = steps.fit_transform(X_fold, y_fold)
        except Exception:  # raised again by the pipelines' own fits, where error_score applies
            Xt = None
        blocks[fold] = None
        if type(Xt) is np.ndarray:
            blocks[fold] = steps, np.arange(start, start + len(Xt))
            Xs.append(Xt), ys.append(np.asarray(y_fold))
            start += len(Xt)
    served = [k for k, fold in enumerate(folds) if blocks[fold] is not None]
    done = [False] * len(pipelines)
    if served:
        nets, net_rows = [pipelines[k][-1] for k in served], [blocks[folds[k]][1] for k in served]
        fitted = train_stackable(nets, np.concatenate(Xs), np.concatenate(ys), net_rows)
        for k, ok in zip(served, fitted):
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
    """
    if fit_net(estimator, net, X, y, weight, epochs):
        return
    net.train_sample_weight = weight
    with torch_threads(step_work(net.module_, X, min(estimator.batch_size, len(X)))):
        net.partial_fit(X, y, epochs=epochs)
    net.train_sample_weight = None  # not kept in the fitted estimator


def fit_net(estimator, net, X, y, weight=None, epochs=None):
    """Train ``net`` (initialised by ``estimator._build_net``) on tensors ``X``, ``y``.

    The single fit through the engine (K = 1), for ``fit`` to call in place of
    ``net.partial_fit(X, y)``. Returns False, training nothing, when the engine
    does not serve it: settings it does not serve, sample weights, a number of
    ``epochs`` (``partial_fit``), a net that has trained before, or ``verbose``
    (skorch's loop prints its table of the epochs).
    """
    if weight is not None or epochs is not None or len(net.history) or estimator.verbose:
        return False
    parts = _net_parts(net)
    if unstackable_reason(estimator, parts) or unstackable(net.module_):
        return False
    rows = torch.arange(len(X), device=X.device)
    copy = _Copy(estimator, net, rows, y, float(estimator.lam), net.seed, parts[1])
    train_stack([copy], X)
    if net.error_key == "ce":  # what skorch's fit loop records for a classifier
        net.classes_inferred_ = np.unique(y.cpu().numpy())
    from ._checks import DivergenceCheck

    # Non-finite numbers, or an exploded cross-entropy that stayed finite (an
    # oversized lr): FloatingPointError, as skorch's loop raises it.
    DivergenceCheck().on_epoch_end(net)
    return True


# -- the estimator's own fit, split in the parts the engine reuses ------------
#
# These are the only places that reach into the estimators' fit.


def _rows(X, y, rows):
    if rows is None:
        return X, y
    return _safe_indexing(X, rows), _safe_indexing(y, rows)


def _prepare(est, X, y, rows):
    """Validate, seed and build ``est.net_`` as ``fit`` does; None if unstackable."""
    est._validate_params()
    est._forget_fit()
    est._check_routed_params()
    Xv, yv, weight = est._validate_fit_data(*_rows(X, y, rows), None, reset=True)
    device = resolve_device(est.device)
    parts = est._build_parts(device)
    if weight is not None or unstackable_reason(est, parts):
        return None
    seed = est._fit_seed()
    (X_train, y_train, _), _ = est._split(Xv, yv, None, seed, device)
    with seeded_rng(seed, cuda_indices(device)):
        est._checked_net(device, parts, seed, None, X_train)
    if unstackable(est.net_.module_):
        return None
    index = torch.arange(len(yv)) if rows is None else torch.as_tensor(np.asarray(rows))
    return _Copy(est, est.net_, index.to(device), y_train, est.lam, seed, parts[1])


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
        params.pop("lam"), params.pop("random_state")
        n_batches = math.ceil(len(c.rows) / est.batch_size)
        key = (
            type(est),
            repr(sorted(params.items(), key=lambda kv: kv[0])),
            _target_shape(est),
            est._input_shape,
            str(c.rows.device),
            n_batches,
        )
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def _target_shape(est):
    """What a copy's output layer is sized by: the classes, or the number of targets."""
    classes = getattr(est, "classes_", None)
    return tuple(classes.tolist()) if classes is not None else est.n_outputs_


def _finish(est):
    est.history_ = est.net_.history
    est._record_sparsity()
    est._record_lambda_history()
    est._record_iterations()
