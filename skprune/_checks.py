"""The checks that relate parameters to each other, to the data or to the module.

All of them run at the top of ``fit``, before the first training step, except
:class:`DivergenceCheck`, which watches the training itself.
"""

import math
import warnings

import numpy as np
import torch
from sklearn.base import is_classifier
from skorch.callbacks import Callback

from .optim import MultiObjectiveOptimizer

__all__ = ["check_parts", "check_module", "check_split", "DivergenceCheck"]


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
            warnings.warn(
                f"The '{name}' parameter ({value!r}) is ignored with "
                f"regularizer={estimator.regularizer!r} and pruning={estimator.pruning!r}.",
                UserWarning,
                stacklevel=6,
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
        warnings.warn(
            "A class has a single sample, so the validation split (validation_fraction="
            f"{fraction!r}) cannot be stratified; it is drawn at random.",
            UserWarning,
            stacklevel=6,
        )
        return None
    return y


class DivergenceCheck(Callback):
    """Stops training with ``FloatingPointError`` once the loss or a weight is not finite."""

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, "train_loss"]
        finite = math.isfinite(loss) and all(
            bool(torch.isfinite(p).all()) for p in net.module_.parameters()
        )
        if not finite:
            raise FloatingPointError(
                f"Training diverged at epoch {len(net.history)}: the training loss is {loss} "
                f"or a weight is not finite (lr={net.lr!r}, lam={net.lam!r}). Lower lr, or "
                "lam, or scale the inputs."
            )
