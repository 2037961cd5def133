r"""Magnitude pruning of whole channels and units to a multiply-add target.

After training, the filters (output channels of a convolution, output units
of a linear layer) with the smallest ℓ1 norm of their weights are removed,
as in Li et al. 2017 ("Pruning Filters for Efficient ConvNets", §3.1: the
sum of a filter's absolute kernel weights, :math:`s_j = \sum |K_j|`). To rank
filters of different layers against each other, each norm is divided by
the mean norm of its layer; filters are removed in that order (keeping at
least one per layer, and every output of the last) until the compacted
network costs at most ``target_flops`` times the multiply-adds of the dense
one (:mod:`skprune.cost`). The network then fine-tunes with the mask held,
as :class:`~skprune.parts.MagnitudePruning` does.
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from ..cost import count_cost, is_chain, trace_layers
from ._magnitude import MagnitudePruning
from ._pruning import Pruner, apply_masks_

__all__ = ["ChannelPruning", "filter_scores", "channel_masks"]


def filter_scores(weights):
    """Each filter's ℓ1 norm over the mean of its layer's (Li et al. §3.1), concatenated.

    Examples
    --------
    >>> filter_scores([torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.tensor([[3.0, 6.0]])])
    tensor([1., 1., 1.])
    """
    scores = []
    for w in weights:
        norms = w.detach().abs().flatten(1).sum(1)
        scores.append(norms / norms.mean().clamp_min(torch.finfo(norms.dtype).tiny))
    return torch.cat(scores)


def _row_masks(weights, removed):
    """Row masks of ``weights`` with the flat filter indices ``removed`` set False."""
    flat = torch.ones(sum(len(w) for w in weights), dtype=torch.bool)
    flat[removed] = False
    rows = flat.split([len(w) for w in weights])
    return [
        r.to(w.device).reshape(-1, *[1] * (w.dim() - 1)).expand_as(w) for r, w in zip(rows, weights)
    ]


def _removable(weights, order):
    """``order`` without the filters that must stay: the last layer's, and one per layer."""
    sizes = [len(w) for w in weights]
    last = sum(sizes[:-1])
    kept, seen, out = set(), set(), []
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    for layer, start in enumerate(starts[:-1]):  # keep the best filter of each layer
        scores = order[(order >= start) & (order < start + sizes[layer])]
        kept.add(int(scores[-1]))
    for i in order.tolist():
        if i < last and i not in kept and i not in seen:
            seen.add(i)
            out.append(i)
    return torch.tensor(out, dtype=torch.long)


@torch.no_grad()
def channel_masks(module, input_shape, target_flops):
    """Masks of the regularised chain removing the lowest-scored filters to ``target_flops``.

    ``module`` is a chain (:func:`skprune.cost.is_chain`); ``target_flops`` the
    share of its dense multiply-adds to keep. Returns one mask per weighted
    layer, in forward order: the fewest removals whose count reaches the
    target (binary search: the count falls as filters are removed).

    Examples
    --------
    >>> from skprune.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> masks = channel_masks(MLP(10, 2, (8, 8)), (10,), 0.5)  # 160 multiply-adds dense
    >>> [int(m.any(1).sum()) for m in masks]  # 4·10 + 6·4 + 2·6 = 76 <= 80
    [4, 6, 2]
    """
    traced = trace_layers(module, input_shape)
    weights = [layer.weight for _, layer, _ in traced]
    dense = sum(w.numel() * p for w, (_, _, p) in zip(weights, traced))
    order = _removable(weights, torch.argsort(filter_scores(weights), descending=True).flip(0))
    saved = [w.detach().clone() for w in weights]

    def flops_after(k):
        for w, s, m in zip(weights, saved, _row_masks(weights, order[:k])):
            w.copy_(s * m)
        return sum(c.flops for c in count_cost(module, input_shape, structured=True).values())

    low, high = 0, len(order)
    try:
        while low < high:
            mid = (low + high) // 2
            if flops_after(mid) <= target_flops * dense:
                high = mid
            else:
                low = mid + 1
    finally:
        for w, s in zip(weights, saved):
            w.copy_(s)
    return _row_masks(weights, order[:low])


class ChannelPruning(MagnitudePruning):
    """Prune whole channels and units to ``target_flops`` after training, then fine-tune.

    ``pruning="channel"``. See :mod:`skprune.parts._channel_pruning`. The
    estimator trains ``max_epochs + finetune_epochs`` epochs: the filters are
    removed at the end of epoch ``prune_after`` (by default ``max_epochs``)
    and the mask is held after every step of the fine-tuning. Every weighted
    layer of a built-in ``"mlp"``, ``"lenet300"`` or ``"lenet5"`` module takes
    part, whatever ``regularized_layers`` says; other modules are refused (their
    channels cannot be counted as removed). It trains through skorch's loop,
    not the stacked engine: ``lambda_path`` fits each λ separately.

    Parameters
    ----------
    target_flops : float in (0, 1] or None, default=None
        The share of the dense network's multiply-adds to keep. Required.
    finetune_epochs : int, default=3
    prune_after : int or None, default=None

    History keys: ``event_prune`` (the share of the dense multiply-adds left).
    """

    estimator_params = ("finetune_epochs",)
    _parameter_constraints = {
        "target_flops": [Interval(Real, 0, 1, closed="right"), None],
        "finetune_epochs": [Interval(Integral, 0, None, closed="left")],
        "prune_after": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, target_flops=None, finetune_epochs=3, prune_after=None):
        self.target_flops = target_flops
        self.finetune_epochs = finetune_epochs
        self.prune_after = prune_after

    def validate(self, estimator=None):
        Pruner.validate(self, estimator)
        if self.target_flops is None:
            raise ValueError(
                "pruning='channel' prunes to the 'target_flops' parameter (pruning__target_flops),"
                " which is None; set it to the share of the dense multiply-adds to keep, a float "
                "in (0, 1] (e.g. 0.3)."
            )
        return self

    def on_train_begin(self, net, **kwargs):
        if not is_chain(net.module_):
            raise ValueError(
                f"pruning='channel' removes channels of the built-in 'mlp', 'lenet300' and "
                f"'lenet5' modules only; got a {type(net.module_).__name__}."
            )
        super().on_train_begin(net, **kwargs)

    def _prune(self, net):
        module = net.module_
        shape = tuple(getattr(module, "input_shape", None) or (module.layer1.in_features,))
        masks = channel_masks(module, shape, self.target_flops)
        traced = trace_layers(module, shape)
        self.layer_names_ = [name for name, _, _ in traced]
        self.masks_ = masks
        self.hold_masks(net)
        dense = sum(layer.weight.numel() * p for _, layer, p in traced)
        left = sum(c.flops for c in count_cost(module, shape, structured=True).values())
        return left / dense

    def hold_masks(self, net):
        """Hold the masks on every weighted layer (not only the regularised ones)."""
        if self.masks_ is not None:
            layers = [net.module_.get_submodule(name) for name in self.layer_names_]
            apply_masks_([layer.weight for layer in layers], self.masks_)
