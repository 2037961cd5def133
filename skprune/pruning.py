"""Pruning as skorch callbacks that act after ``optimizer.step()``.

Each pruning mode of :class:`~skprune.SparseNetClassifier` is a factory in
:data:`PRUNERS` that turns the estimator's settings into callbacks. The callbacks
reach the regularised weights through ``net.regularized_weights()``.
"""

import torch
from skorch.callbacks import Callback

__all__ = [
    "soft_threshold_",
    "ThresholdPruning",
    "PRUNERS",
    "resolve_pruning",
    "make_pruning_callbacks",
]


@torch.no_grad()
def soft_threshold_(weights, threshold):
    """Set every weight with ``|w| <= threshold`` to zero, in place (Reiners §4).

    "Soft" in the paper's sense: the weights are not frozen and may grow back.
    One ``hardshrink`` kernel per tensor, written in place: an order of magnitude
    cheaper than building a boolean mask and calling ``masked_fill_``.

    Examples
    --------
    >>> w = torch.tensor([0.5, -1e-4, 2e-3, 0.0])
    >>> soft_threshold_([w], 1e-3)
    >>> w
    tensor([0.5000, 0.0000, 0.0020, 0.0000])
    """
    for w in weights:
        torch.hardshrink(w, threshold, out=w)


class ThresholdPruning(Callback):
    """Intra-training threshold pruning with τ (Reiners §4).

    All modes prune once before training ("we already start with a sparse
    initialized weight matrix") and once after the last step; ``"batch"`` also
    prunes after every optimiser step and ``"epoch"`` after every epoch.

    Parameters
    ----------
    threshold : float
        τ; weights with ``|w| <= τ`` are set to zero.
    when : {"batch", "epoch", "after"}
    """

    def __init__(self, threshold, when="batch"):
        self.threshold = threshold
        self.when = when

    def _prune(self, net):
        soft_threshold_(net.regularized_weights(), self.threshold)

    def on_train_begin(self, net, **kwargs):
        self._prune(net)

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.when == "batch":
            self._prune(net)

    def on_epoch_end(self, net, **kwargs):
        if self.when == "epoch":
            self._prune(net)

    def on_train_end(self, net, **kwargs):
        self._prune(net)


def _threshold(when):
    def factory(estimator):
        return [ThresholdPruning(estimator.threshold, when=when)]

    return factory


def _magnitude(method):
    def factory(estimator):
        from .magnitude import MagnitudePruning

        density = estimator.target_density
        if density is None:
            raise ValueError(
                f"pruning={method!r} prunes to the 'target_density' parameter, which is "
                "None; set target_density to a float in (0, 1] (e.g. 0.05)."
            )
        if method == "global" and isinstance(density, dict):
            raise ValueError(
                "pruning='global' needs one float 'target_density' for the whole network; "
                f"got the per-layer dict {density!r}. Use pruning='layerwise' for per-layer levels."
            )
        return [
            MagnitudePruning(
                method,
                density,
                prune_after=estimator.max_epochs,
                finetune_epochs=estimator.finetune_epochs,
            )
        ]

    return factory


def _lobster(estimator):
    from .lobster import LobsterPruning

    if not estimator.validation_fraction:
        raise ValueError(
            "pruning='lobster' evaluates the validation loss every epoch, but the "
            "'validation_fraction' parameter is 0; set it > 0 (e.g. 0.1)."
        )
    return [LobsterPruning(estimator.patience, estimator.loss_tolerance)]


#: name -> factory(estimator) -> list of skorch callbacks. A callback with an
#: ``extra_epochs`` attribute makes the estimator train that many epochs more
#: than ``max_epochs`` (fine-tuning after magnitude pruning).
PRUNERS = {
    "batch": _threshold("batch"),
    "epoch": _threshold("epoch"),
    "after": _threshold("after"),
    "global": _magnitude("global"),
    "layerwise": _magnitude("layerwise"),
    "random": _magnitude("random"),
    "lobster": _lobster,
}


def resolve_pruning(pruning, regularizer):
    """The pruning mode ``"auto"`` stands for: none for a regularizer that prunes
    itself (``prunes_itself = True``, as the hard-concrete gates), else ``"batch"``.

    Examples
    --------
    >>> resolve_pruning("auto", None), resolve_pruning("epoch", None)
    ('batch', 'epoch')
    """
    if pruning != "auto":
        return pruning
    return None if getattr(regularizer, "prunes_itself", False) else "batch"


def make_pruning_callbacks(estimator, regularizer=None):
    """The callbacks that ``estimator.pruning`` names (none for ``None``)."""
    pruning = resolve_pruning(estimator.pruning, regularizer)
    if pruning is None:
        return []
    return PRUNERS[pruning](estimator)
