"""Compaction of user modules with Torch-Pruning's ``DependencyGraph``.

The dependency graph (Fang et al., "DepGraph: Towards Any Structural
Pruning", CVPR 2023) knows which channels are coupled: a convolution's output
channel, its batch norm, a residual sum's other branch, and every layer that
reads them (a flattened linear layer reads H·W features per channel). For
each output channel of a ``Conv2d`` or ``Linear`` whose weights are all zero,
the group of coupled channels is removed when

* every layer of the group that produces the channel has zero weights for it
  (so the channel is a function of biases and batch-norm statistics alone),
  and
* the channel, where each reading layer reads it, is the same for every
  sample of three probe batches (a residual branch from the input would not
  be).

What the channel added to a reading layer (a per-position map behind a
zero-padded convolution) is added back as a fixed shift of that layer's
output. The compacted copy is then checked against the module on the probes;
any difference beyond float64 rounding keeps the module exact (the caller
warns). Channels are never removed from the layers that produce the module's
output.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._compact_vgg import CannotCompact

__all__ = ["compact_graph"]

_LAYERS = (nn.Conv2d, nn.Linear)


def _torch_pruning():
    try:
        import torch_pruning
    except ImportError as exc:
        raise CannotCompact(
            "user modules are compacted with torch-pruning's dependency graph: "
            "pip install 'skprune[structured]'"
        ) from exc
    return torch_pruning


class ShiftedLayer(nn.Module):
    """``layer(x) + shift``: what removed constant input channels contributed."""

    def __init__(self, layer, shift):
        super().__init__()
        self.layer = layer
        self.register_buffer("shift", shift)

    def forward(self, x):
        return self.layer(x) + self.shift


def _probes(input_shape, dtype, device):
    g = torch.Generator().manual_seed(0)
    scales = (1.0, 4.0, 0.25)
    return [
        ((torch.rand(5, *input_shape, generator=g, dtype=dtype) - 0.3) * s).to(device)
        for s in scales
    ]


def _record_inputs(model, probes):
    """Per layer, its inputs on each probe batch; and the layers whose output is the model's."""
    seen, outputs = {}, {}

    def pre(layer, args):
        seen.setdefault(layer, []).append(args[0])

    def post(layer, args, out):
        outputs[layer] = out

    handles = [m.register_forward_pre_hook(pre) for m in model.modules() if isinstance(m, _LAYERS)]
    handles += [m.register_forward_hook(post) for m in model.modules() if isinstance(m, _LAYERS)]
    results = []
    try:
        for x in probes:
            results.append(model(x))
    finally:
        for h in handles:
            h.remove()
    last = results[-1]
    final = {m for m, out in outputs.items() if out.data_ptr() == last.data_ptr()}
    return seen, final, results


def _is_producer(dg, dep):
    m = dep.target.module
    return isinstance(m, _LAYERS) and dg.is_out_channel_pruning_fn(dep.handler)


def _is_reader(dg, dep):
    m = dep.target.module
    return isinstance(m, _LAYERS) and dg.is_in_channel_pruning_fn(dep.handler)


def _constant_channel(dg, group, seen):
    """Whether the channel of a one-channel ``group`` is input-independent everywhere it is read."""
    for dep, idxs in group:
        m = dep.target.module
        if _is_producer(dg, dep) and m.weight[list(idxs)].any():
            return False
        if _is_reader(dg, dep):
            for x in seen.get(m, []):
                part = x[:, list(idxs)]
                if not torch.equal(part, seen[m][0][:1, list(idxs)].expand_as(part)):
                    return False
    return True


def _contribution(layer, x, idxs):
    """What input channels ``idxs`` of the constant input ``x`` add to ``layer``'s output."""
    masked = torch.zeros_like(x[:1])
    masked[:, idxs] = x[:1, idxs]
    if isinstance(layer, nn.Linear):
        return F.linear(masked, layer.weight)[0]
    return layer._conv_forward(masked, layer.weight, None)[0]


def _plan(dg, model, seen, final, tp):
    """The removable channels per producing layer, and per reading layer what they add."""
    removable, shifts, done = {}, {}, set()  # done: (layer, output channel) removed
    for layer in (m for m in model.modules() if isinstance(m, _LAYERS)):
        if layer in final:
            continue
        fn = _out_fn(tp, layer)
        dead = (~layer.weight.flatten(1).any(dim=1)).nonzero().flatten().tolist()
        for c in dead:
            if (layer, c) in done:
                continue
            group = dg.get_pruning_group(layer, fn, idxs=[c])
            members = [dep.target.module for dep, _ in group if _is_producer(dg, dep)]
            if final & set(members) or not _constant_channel(dg, group, seen):
                continue
            for dep, idxs in group:
                if _is_producer(dg, dep):
                    done.update((dep.target.module, i) for i in idxs)
                if _is_reader(dg, dep):
                    m = dep.target.module
                    shifts.setdefault(m, []).extend(idxs)
            removable.setdefault(layer, []).append(c)
    return removable, shifts, done


def _wrap(model, layer, shift):
    places = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if child is layer
    ]
    for parent, name in places:
        setattr(parent, name, ShiftedLayer(layer, shift))


@torch.no_grad()
def compact_graph(model, input_shape):
    """Compact ``model`` (a float64 copy the caller owns) in place; returns it.

    Raises :class:`CannotCompact` when torch-pruning is absent, the graph
    cannot be traced, or the compacted copy does not compute what the module
    did.
    """
    tp = _torch_pruning()
    weight = next(model.parameters())
    probes = _probes(input_shape, weight.dtype, weight.device)
    seen, final, expected = _record_inputs(model, probes)
    try:
        dg = _trace(tp, model, probes[0])
    except Exception as exc:  # tracing a user's forward can fail in many ways
        raise CannotCompact(f"torch-pruning could not trace it ({exc})") from exc
    removable, readers, removed = _plan(dg, model, seen, final, tp)
    shifts = {}
    for m, idxs in readers.items():
        kept = [i for i in range(_n_out(m)) if (m, i) not in removed]
        shifts[m] = _contribution(m, seen[m][0], sorted(set(idxs)))[kept]
    for layer, channels in removable.items():
        dg.get_pruning_group(layer, _out_fn(tp, layer), idxs=channels).prune()
    for layer, shift in shifts.items():
        _wrap(model, layer, shift)
    _check_same(model, probes, expected)
    return model


def _trace(tp, model, x):
    """The dependency graph, traced through autograd (so with gradients, for once)."""
    with torch.enable_grad():
        model.requires_grad_(True)
        try:
            return tp.DependencyGraph().build_dependency(model, example_inputs=x)
        finally:
            model.requires_grad_(False)


def _out_fn(tp, layer):
    conv = isinstance(layer, nn.Conv2d)
    return tp.prune_conv_out_channels if conv else tp.prune_linear_out_channels


def _n_out(layer):
    return layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features


def _check_same(model, probes, expected):
    for x, want in zip(probes, expected):
        got = model(x)
        scale = 1.0 + want.abs().max()
        if got.shape != want.shape or (got - want).abs().max() > 1e-9 * scale:
            raise CannotCompact("its compacted copy does not compute the same function")
