"""Magnitude and random pruning to a target density, then fine-tuning.

After training, keep the share ε (``target_density``) of the regularised
weights and set the others to zero (de Resende Oliveira et al. §4.1):

* **global** magnitude pruning keeps the ``round(ε·N)`` largest ``|w|`` of the
  whole network, so layers end up with different densities;
* **layerwise** magnitude pruning keeps the ``round(ε_l·N_l)`` largest ``|w|``
  of each layer ``l``, so every layer has (almost exactly) density ε_l;
* **random** pruning keeps ``round(ε_l·N_l)`` weights of each layer drawn
  uniformly, regardless of magnitude: the baseline of Oliveira Fig. 2–3.

The network then trains ``finetune_epochs`` more epochs with the mask held: the
mask is re-applied after every optimiser step, so pruned weights stay exactly
zero whatever momentum or Adam moments they carry.
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._pruning import Pruner

__all__ = [
    "global_magnitude_masks",
    "layerwise_magnitude_masks",
    "random_masks",
    "MASKS",
    "MagnitudePruning",
]


def _keep_count(density, numel):
    return min(numel, max(0, round(float(density) * numel)))


def _top_mask(scores, k):
    """Boolean mask of the ``k`` largest entries of the flat tensor ``scores``."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k:
        mask[torch.topk(scores.flatten(), k, sorted=False).indices] = True
    return mask


def _per_layer(weights, density):
    """Each weight's density: ``density`` is a float or a list, one per tensor."""
    return list(density) if isinstance(density, (list, tuple)) else [density] * len(weights)


@torch.no_grad()
def global_magnitude_masks(weights, density):
    """Masks keeping the ``round(density·N)`` largest ``|w|`` over all tensors.

    Examples
    --------
    >>> w1, w2 = torch.tensor([0.1, -3.0, 0.2]), torch.tensor([[1.0, -0.05]])
    >>> [m.tolist() for m in global_magnitude_masks([w1, w2], 0.4)]
    [[False, True, False], [[True, False]]]
    """
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    mask = _top_mask(flat, _keep_count(density, flat.numel()))
    sizes = [w.numel() for w in weights]
    return [m.reshape(w.shape) for m, w in zip(mask.split(sizes), weights)]


@torch.no_grad()
def layerwise_magnitude_masks(weights, density):
    """Masks keeping the ``round(density_l·N_l)`` largest ``|w|`` of each tensor.

    ``density`` is one float for all tensors or a list with one per tensor.

    Examples
    --------
    >>> w1, w2 = torch.tensor([0.1, -3.0, 0.2, 0.0]), torch.tensor([1.0, -0.05])
    >>> [m.tolist() for m in layerwise_magnitude_masks([w1, w2], 0.5)]
    [[False, True, True, False], [True, False]]
    """
    masks = []
    for w, d in zip(weights, _per_layer(weights, density)):
        scores = w.detach().abs()
        masks.append(_top_mask(scores, _keep_count(d, w.numel())).reshape(w.shape))
    return masks


@torch.no_grad()
def random_masks(weights, density, generator=None):
    """Masks keeping ``round(density_l·N_l)`` weights of each tensor at random.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> [int(m.sum()) for m in random_masks([torch.ones(10), torch.ones(4)], 0.5, g)]
    [5, 2]
    """
    masks = []
    for w, d in zip(weights, _per_layer(weights, density)):
        scores = torch.rand(w.numel(), generator=generator).to(w.device)
        masks.append(_top_mask(scores, _keep_count(d, w.numel())).reshape(w.shape))
    return masks


#: method name -> masks(weights, density, generator)
MASKS = {
    "global": lambda weights, density, generator: global_magnitude_masks(weights, density),
    "layerwise": lambda weights, density, generator: layerwise_magnitude_masks(weights, density),
    "random": random_masks,
}


class MagnitudePruning(Pruner):
    """Prune to ``target_density`` after training, then fine-tune with the mask held.

    The estimator trains ``max_epochs + finetune_epochs`` epochs in all: the
    callback prunes at the end of epoch ``prune_after`` (by default the
    estimator's ``max_epochs``) and the ``finetune_epochs`` that follow train
    with the mask held. With ``prune_after=0`` it prunes before the first step.

    Parameters
    ----------
    method : {"global", "layerwise", "random"}, default="global"
    target_density : float or dict or None, default=None
        ε, or layer name -> ε_l (``"layerwise"`` and ``"random"``; layers not
        named keep all their weights). Required.
    finetune_epochs : int, default=3
        Epochs of training with the mask held after pruning.
    prune_after : int or None, default=None
        Epochs of training before pruning; None: all but the fine-tuning ones.
    seed : int or None, default=None
        Seeds the draw of ``"random"`` pruning (the net's seed when None).

    History keys: ``event_prune`` (the density right after pruning) on the
    epoch that pruned.
    """

    estimator_params = ("target_density", "finetune_epochs")
    incremental = False
    owns_schedule = True
    _parameter_constraints = {
        "method": [StrOptions({"global", "layerwise", "random"})],
        "target_density": [Interval(Real, 0, 1, closed="right"), dict, None],
        "finetune_epochs": [Interval(Integral, 0, None, closed="left")],
        "prune_after": [Interval(Integral, 0, None, closed="left"), None],
        "seed": [Interval(Integral, None, None, closed="neither"), None],
    }

    def __init__(
        self, method="global", target_density=None, finetune_epochs=3, prune_after=None, seed=None
    ):
        self.method = method
        self.target_density = target_density
        self.finetune_epochs = finetune_epochs
        self.prune_after = prune_after
        self.seed = seed

    @property
    def extra_epochs(self):
        """Epochs the estimator adds to ``max_epochs`` for fine-tuning."""
        return self.finetune_epochs

    def validate(self, estimator=None):
        super().validate(estimator)
        if self.target_density is None:
            raise ValueError(
                f"pruning={self.method!r} prunes to the 'target_density' parameter, which is "
                "None; set target_density to a float in (0, 1] (e.g. 0.05)."
            )
        if self.method == "global" and isinstance(self.target_density, dict):
            raise ValueError(
                "pruning='global' needs one float 'target_density' for the whole network; "
                f"got the per-layer dict {self.target_density!r}. Use pruning='layerwise' "
                "for per-layer levels."
            )
        return self

    def initialize(self):
        self.epochs_ = 0
        return super().initialize()

    def on_train_begin(self, net, **kwargs):
        self.epochs_ = 0
        self.prune_after_ = (
            net.max_epochs - self.finetune_epochs if self.prune_after is None else self.prune_after
        )
        if self.prune_after_ == 0 and self.masks_ is None:
            self._prune(net)

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1
        if self.epochs_ == self.prune_after_ and self.masks_ is None:
            net.history.record("event_prune", self._prune(net))

    def _densities(self, net):
        if not isinstance(self.target_density, dict):
            return self.target_density
        return [self.target_density.get(name, 1.0) for name, _ in net.named_regularized_weights()]

    def _prune(self, net):
        seed = self.seed if self.seed is not None else net.seed
        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        masks = MASKS[self.method](net.regularized_weights(), self._densities(net), generator)
        self.set_masks(net, masks)
        kept = sum(int(m.sum()) for m in masks)
        return kept / max(1, sum(m.numel() for m in masks))
