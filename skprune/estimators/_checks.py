"""The checks that relate parameters to each other, to the data or to the module.

All of them run at the top of ``fit``, before the first training step, except
:class:`DivergenceCheck`, which watches the training itself.
"""

import math
from numbers import Integral

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils._param_validation import Interval
from skorch.callbacks import Callback

from ..parts._optim import MultiObjectiveOptimizer
from ._user_warnings import warn_user

__all__ = ["check_params", "check_parts", "check_module", "check_split", "DivergenceCheck"]


def check_params(estimator):
    """What ``_parameter_constraints`` lets through: ``True`` for an integer parameter.

    scikit-learn's ``Interval(Integral, ...)`` accepts bools (``bool`` is an
    ``int``), so ``batch_size=True`` would train on batches of one sample.
    """
    for name, constraints in estimator._parameter_constraints.items():
        value = getattr(estimator, name, None)
        integral = any(isinstance(c, Interval) and c.type is Integral for c in constraints)
        if integral and isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"The {name!r} parameter of {type(estimator).__name__} must be an int, "
                f"not a bool. Got {value!r} instead."
            )


def check_parts(estimator, regularizer, pruner, optimizer, part_defaults):
    """Regularizer, pruner and optimiser against each other and the estimator.

    Also warns about a part-specific parameter (``part_defaults``: name ->
    default) that no chosen part reads, instead of ignoring it silently.
    """
    for part in (regularizer, pruner):
        if part is not None:
            part.validate(estimator)
    if issubclass(optimizer, MultiObjectiveOptimizer) and (
        regularizer is None or not regularizer.in_loss
    ):
        raise ValueError(
            f"The multi-objective optimizer {optimizer.__name__} needs a regularizer that "
            f"enters the loss as its second objective; got regularizer={estimator.regularizer!r}."
        )
    used = set()
    for part, spec in ((regularizer, estimator.regularizer), (pruner, estimator.pruning)):
        if part is not None and isinstance(spec, str):
            used.update(part.estimator_params)
    for name, default in part_defaults.items():
        value = getattr(estimator, name)
        if name not in used and value != default:
            warn_user(
                f"The '{name}' parameter ({value!r}) is ignored with "
                f"regularizer={estimator.regularizer!r} and pruning={estimator.pruning!r}."
            )


def check_module(estimator, net, X, parts):
    """The module against the data and the parts, with one forward pass on two samples."""
    regularizer, pruner, _ = parts
    named = net.regularized_named_
    no_weight = [
        name
        for name, layer in named
        if not isinstance(getattr(layer, "weight", None), torch.Tensor)
    ]
    if no_weight:
        raise ValueError(
            f"The 'regularized_layers' parameter names layers {no_weight} that have no "
            "weight tensor to regularise or prune; name Linear or convolutional layers."
        )
    if (regularizer is not None or pruner is not None) and not named:
        raise ValueError(
            f"The module has no layers to regularise or prune: regularized_layers="
            f"{estimator.regularized_layers!r} selects none of {_layer_names(net)}. Use "
            "regularized_layers='all' or a list of layer names, or regularizer=None and "
            "pruning=None."
        )
    _check_layer_names(estimator, [name for name, _ in named])
    _check_output(estimator, net, X)
    _check_callback_names(estimator, net)


def _check_callback_names(estimator, net):
    """Routed ``callbacks__<name>[__<param>]`` must name a callback of the net.

    skorch ignores a name that is no callback, so a misspelt one would be
    dropped silently.
    """
    names = [n for n, _ in net.get_default_callbacks()] + [n for n, _ in net.callbacks or []]
    unknown = sorted(
        f"callbacks__{key}"
        for key in estimator._prefixed_params("callbacks")
        if key.partition("__")[0] not in names
    )
    if unknown:
        raise ValueError(
            f"The parameters {unknown} of {type(estimator).__name__} name no callback; "
            f"callbacks__<name>__<param> needs one of {sorted(names)} (the estimator's "
            "own callbacks are named user_0, user_1, ...)."
        )


def _layer_names(net):
    return [name for name, _ in net.module_.named_modules() if name]


def _check_layer_names(estimator, names):
    """A dict-valued ``target_density`` must name regularised layers with levels in (0, 1]."""
    if not isinstance(estimator.target_density, dict):
        return
    unknown = sorted(set(estimator.target_density) - set(names))
    if unknown:
        raise ValueError(
            f"The 'target_density' parameter names layers {unknown} that are not "
            f"regularised layers of the module; those are {names}."
        )
    bad = {k: v for k, v in estimator.target_density.items() if not 0 < v <= 1}
    if bad:
        raise ValueError(
            f"The 'target_density' parameter must map layers to floats in (0, 1]. Got {bad}."
        )


@torch.no_grad()
def _check_output(estimator, net, X):
    module, was_training = net.module_, net.module_.training
    module.eval()
    try:
        out = module(X[:2].to(net.device))
    finally:
        module.train(was_training)
    out = out[0] if isinstance(out, tuple) else out
    expected = (len(X[:2]), estimator._n_outputs)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"The module must return a tensor of shape (n_samples, {estimator._n_outputs}) "
            f"({estimator._outputs_meaning}); on 2 samples it returned {shape}."
        )


def check_split(estimator, y):
    """The ``stratify`` argument of the validation split, checked against ``y``."""
    n, fraction = len(y), estimator.validation_fraction
    n_valid = math.ceil(fraction * n)
    if n_valid < 1 or n - n_valid < 1:
        raise ValueError(
            f"The 'validation_fraction' parameter ({fraction!r}) leaves {n_valid} of {n} "
            "samples for validation; it must leave at least one for each part."
        )
    if not is_classifier(estimator):
        return None
    counts = np.bincount(y)
    n_classes = np.count_nonzero(counts)
    if n_valid < n_classes or n - n_valid < n_classes:
        raise ValueError(
            f"The 'validation_fraction' parameter ({fraction!r}) leaves {n_valid} of {n} "
            f"samples for validation, fewer than the {n_classes} classes; raise it or pass "
            "more data."
        )
    if counts[counts > 0].min() < 2:
        warn_user(
            "A class has a single sample, so the validation split (validation_fraction="
            f"{fraction!r}) cannot be stratified; it is drawn at random."
        )
        return None
    return y


class DivergenceCheck(Callback):
    """Stops training with ``FloatingPointError`` once it has diverged.

    Diverged means: the loss or a weight is not finite, or (for a classifier)
    the mean training cross-entropy of the epoch is above ``100·ln K``, a
    hundred times that of guessing uniformly among the K classes. An oversized
    ``lr`` can keep every number finite while the network predicts nothing.
    """

    def on_epoch_end(self, net, **kwargs):
        self.check(net)

    def check(self, net, weights_finite=None):
        """Raise ``FloatingPointError`` if training has diverged by ``net.history[-1]``.

        The one definition of divergence: skorch's loop calls it through
        :meth:`on_epoch_end`, the stacked engine for every copy after every
        epoch. ``weights_finite`` says whether every weight is finite, for a
        caller whose weights are not (yet) in ``net.module_`` (a copy of the
        stack); None looks at ``net.module_``.
        """
        reason = _divergence(net, weights_finite)
        if reason:
            raise FloatingPointError(
                f"Training diverged at epoch {len(net.history)}: {reason} (lr={net.lr!r}, "
                f"lam={net.lam!r}). Lower lr, or lam, or scale the inputs."
            )


def _divergence(net, weights_finite=None):
    """Why training has diverged, or None."""
    loss = net.history[-1, "train_loss"]
    if not math.isfinite(loss):
        return f"the training loss is {loss}"
    if weights_finite is None:
        weights_finite = all(bool(torch.isfinite(p).all()) for p in net.module_.parameters())
    if not weights_finite:
        return "a weight is not finite"
    classes = getattr(net, "classes_inferred_", None)
    if classes is None or len(classes) < 2 or "ce" not in net.history[-1]:
        return None  # a regressor: no scale to compare the loss with
    ce, bound = float(net.history[-1, "ce"]), 100.0 * math.log(len(classes))
    if ce > bound:
        return f"the training cross-entropy is {ce:.3g}, over 100·ln K = {bound:.3g}"
    return None
