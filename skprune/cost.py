"""Counting the inference cost of a network: multiply-adds and parameter bytes per layer.

Density counts weights; what a prediction costs is counted here. A weight of
LeNet-5's first convolution is used 676 times per image (once per output
position), one of its first dense layer once: its two convolutions hold 1.5 %
of the weights but 70 % of the multiply-adds. Only what would still run after
compaction (:meth:`~skprune.SparseNetClassifier.sparsify`) is counted:

* a unit or channel is **live** when it has an incoming weight and its output
  is read by the next layer (:func:`live_units`); a unit with no incoming weight
  outputs a constant that compaction folds into the next layer's bias;
* a layer costs ``live outputs × live inputs × kernel × output positions``
  multiply-adds per sample (a convolution's FLOP count as in Molchanov et al.
  2017, eq. 8, with one multiply-add per term);
* a linear layer that the deployed form keeps sparse (a ``csr`` rule, e.g.
  :func:`skprune.sparsify.use_csr`) costs its number of non-zero weights.

Units are removed only from the chains that compaction analyses (the built-in
``MLP`` and ``LeNet5``, where each layer feeds the next alone). In any other
module every layer is counted whole, sparse linear layers by their non-zeros:
that is what its deployed form runs. The counts are exact, pure functions of
the weights; ``bench_cost.py`` (``examples/benchmarks``) checks how well they
rank measured latency.
"""

from typing import NamedTuple

import torch
from torch import nn

from .models import MLP, LeNet5

__all__ = [
    "LayerCost",
    "is_chain",
    "trace_layers",
    "live_units",
    "count_cost",
    "total_cost",
    "form_cost",
]

#: Layers whose multiply-adds are counted.
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Modules whose weighted layers form a chain that compaction analyses.
_CHAINS = (MLP, LeNet5)


def is_chain(module):
    """Whether compaction removes units of ``module``: a built-in ``MLP`` or ``LeNet5``.

    Their weighted layers form a chain, each feeding the next alone.

    Examples
    --------
    >>> from skprune.models import MLP, VGGLike
    >>> is_chain(MLP(4, 2)), is_chain(VGGLike())
    (True, False)
    """
    return type(module) in _CHAINS


class LayerCost(NamedTuple):
    """The cost of one layer per sample.

    ``flops``: multiply-adds; ``params``: weights and biases that run;
    ``nbytes``: the bytes those take; ``activations``: output values written
    (a memory pass of the layer's output).
    """

    flops: int
    params: int
    nbytes: int
    activations: int


@torch.no_grad()
def trace_layers(module, input_shape):
    """The weighted layers in the order a forward pass calls them, with their output positions.

    One sample of zeros of ``input_shape`` goes through ``module`` (in eval
    mode, restored afterwards: batch-norm statistics do not move).

    Returns
    -------
    list of (str, torch.nn.Module, int)
        ``(name, layer, positions)``: ``positions`` is the number of places the
        layer's weights are applied (output height × width for a 2-d convolution,
        1 for a linear layer on flat input).

    Examples
    --------
    >>> from skprune.models import LeNet5
    >>> [(name, p) for name, _, p in trace_layers(LeNet5(), (1, 28, 28))]
    [('conv1', 676), ('conv2', 121), ('layer1', 1), ('layer2', 1), ('layer3', 1)]
    """
    names = {layer: name for name, layer in module.named_modules()}
    seen, handles = {}, []

    def record(layer, args, out):
        if layer not in seen:
            spatial = out.shape[2:] if not isinstance(layer, nn.Linear) else out.shape[1:-1]
            seen[layer] = int(torch.tensor(spatial).prod()) if len(spatial) else 1

    for layer in names:
        if isinstance(layer, _WEIGHTED):
            handles.append(layer.register_forward_hook(record))
    modes = {sub: sub.training for sub in module.modules()}
    first = next(module.parameters(), None)
    x = torch.zeros(1, *input_shape, device=getattr(first, "device", None))
    try:
        module.eval()(x.to(first.dtype) if first is not None else x)
    finally:
        for handle in handles:
            handle.remove()
        for sub, mode in modes.items():
            sub.training = mode
    return [(names[layer], layer, positions) for layer, positions in seen.items()]


def _rows(weight):
    """Whether each output unit/channel has a non-zero weight."""
    return weight.flatten(1).ne(0).any(1)


def _cols(weight):
    """Whether each input unit/channel has a non-zero weight."""
    return weight.transpose(0, 1).flatten(1).ne(0).any(1)


def live_units(weights, chain=True):
    """Live outputs and inputs of each layer of a chain (``weights[i]`` feeds ``weights[i+1]``).

    A unit is live when it has an incoming weight and the next layer reads it
    (compaction removes the others, :func:`skprune.sparsify.compact_chain`); an
    input is live when it has a weight and its unit lives. The last layer keeps
    every output (the logits). A dense layer after a convolution reads each
    channel as a block of ``in_features / channels`` columns (a flattened map).
    With ``chain=False`` each layer is taken alone: every output and input lives.

    Returns
    -------
    list of (bool tensor, bool tensor)
        ``(live outputs, live inputs)`` per layer.

    Examples
    --------
    >>> W1 = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])  # unit 1: no input
    >>> W2 = torch.tensor([[1.0, 1.0, 0.0]])                     # unit 2: not read
    >>> [(o.tolist(), i.tolist()) for o, i in live_units([W1, W2])]
    [([True, False, False], [True, False]), ([True], [True, False, False])]
    """
    if not chain:
        return [(torch.ones(len(w), dtype=torch.bool), _all_in(w)) for w in weights]
    weights = [w.detach().cpu() for w in weights]
    outs = [torch.ones(len(w), dtype=torch.bool) for w in weights]
    ins = [_cols(w) for w in weights]
    changed = True
    while changed:
        changed = False
        for i in range(len(weights) - 1):
            # fed by a live input, and read by the next layer
            alive = outs[i] & _rows(weights[i][:, ins[i]]) & _blocks(ins[i + 1], len(outs[i]))
            read = ins[i + 1] & alive.repeat_interleave(len(ins[i + 1]) // len(outs[i]))
            if not (torch.equal(alive, outs[i]) and torch.equal(read, ins[i + 1])):
                outs[i], ins[i + 1], changed = alive, read, True
    return list(zip(outs, ins))


def _all_in(weight):
    return torch.ones(weight.shape[1], dtype=torch.bool)


def _blocks(cols, n_units):
    """Whether any column of each unit's block is read (blocks of ``len(cols) / n_units``)."""
    return cols.reshape(n_units, -1).any(1)


def _layer_cost(weight, bias, live_out, live_in, positions, csr, itemsize):
    """:class:`LayerCost` of one layer, given its live outputs and inputs."""
    device = weight.device
    sub = weight[live_out.to(device)][:, live_in.to(device)]
    n_out = int(live_out.sum())
    n_bias = n_out if bias is not None else 0
    sparse = csr is not None and sub.dim() == 2 and sub.numel() > 0 and csr(sub)
    if sparse:
        nnz = int(torch.count_nonzero(sub))
        nbytes = nnz * (itemsize + 8) + (n_out + 1) * 8 + n_bias * itemsize
        return LayerCost(nnz * positions, nnz + n_bias, nbytes, n_out * positions)
    n_weights = sub.numel()
    params = n_weights + n_bias
    return LayerCost(n_weights * positions, params, params * itemsize, n_out * positions)


@torch.no_grad()
def count_cost(module, input_shape, structured="auto", csr=None, itemsize=4):
    """The cost per sample of each weighted layer of ``module``, as compaction would run it.

    Parameters
    ----------
    module : torch.nn.Module
        A trained network; its weights are read, not changed.
    input_shape : tuple of int
        The shape of one sample (``(1, 28, 28)``, or ``(784,)``).
    structured : "auto" or bool, default="auto"
        Remove dead units and channels (:func:`live_units`): ``"auto"`` for the
        chains compaction analyses (the built-in ``MLP`` and ``LeNet5``).
    csr : callable or None, default=None
        ``csr(weight) -> bool``: whether the deployed form stores a linear
        layer's live weights sparse (then it costs their non-zeros). None:
        every layer dense.
    itemsize : int, default=4
        Bytes per stored value (4: float32); a CSR index takes 8.

    Returns
    -------
    dict
        Layer name -> :class:`LayerCost`, in the order the forward pass calls them.

    Examples
    --------
    >>> from skprune.models import LeNet5
    >>> net = LeNet5()
    >>> sum(c.flops for c in count_cost(net, (1, 28, 28)).values())
    199968
    >>> with torch.no_grad():
    ...     _ = net.conv2.weight[8:].zero_()  # half the channels of conv2 removed
    >>> cost = count_cost(net, (1, 28, 28))
    >>> cost["conv2"].flops, cost["layer1"].flops
    (52272, 24000)
    """
    traced = trace_layers(module, input_shape)
    if structured == "auto":
        structured = is_chain(module)
    weights = [layer.weight.detach() for _, layer, _ in traced]
    live = live_units(weights, chain=bool(structured))
    return {
        name: _layer_cost(w, layer.bias, out, inp, positions, csr, itemsize)
        for (name, layer, positions), w, (out, inp) in zip(traced, weights, live)
    }


def total_cost(costs):
    """The :class:`LayerCost` of a whole network: the sum of its layers'.

    Examples
    --------
    >>> total_cost({"a": LayerCost(10, 2, 8, 3), "b": LayerCost(5, 1, 4, 1)})
    LayerCost(flops=15, params=3, nbytes=12, activations=4)
    """
    return LayerCost(*(sum(c[i] for c in costs.values()) for i in range(4)))


def form_cost(ops, input_shape, names=None):
    """The cost of the compacted inference form: its operations, counted as they run.

    ``ops`` are the operations of an inference form (``"conv"``, ``"linear"``,
    ``"select"``, ``"flatten"``), each with its ``weight`` (dense or CSR) and
    ``bias``; an operation that states its own ``flops`` and ``nbytes`` is
    taken at its word. Weighted operations are named by ``names`` in order
    when there are as many, else ``"op<i>"``.

    Examples
    --------
    >>> from types import SimpleNamespace as Op
    >>> conv = Op(kind="conv", pool=2, weight=torch.ones(2, 1, 3, 3), bias=torch.ones(2))
    >>> fc = Op(kind="linear", weight=torch.ones(3, 338), bias=torch.ones(3))
    >>> cost = form_cost([conv, Op(kind="flatten"), fc], (1, 28, 28), ["conv1", "fc"])
    >>> cost["conv1"].flops, cost["fc"].flops
    (12168, 1014)
    """
    shape, costs = tuple(input_shape), []
    for op in ops:
        if getattr(op, "weight", None) is None:
            shape = (int(torch.tensor(shape).prod()),) if op.kind == "flatten" else shape
            continue
        cost, shape = _op_cost(op, shape)
        costs.append(cost)
    if names is None or len(names) != len(costs):
        names = [f"op{i}" for i in range(len(costs))]
    return dict(zip(names, costs))


def _op_cost(op, shape):
    """``(LayerCost, output shape)`` of one weighted operation on input ``shape``."""
    weight, bias = op.weight, op.bias
    nbytes = getattr(op, "nbytes", None)
    if nbytes is None:
        nbytes = sum(_tensor_bytes(t) for t in (weight, bias) if t is not None)
    params = _tensor_params(weight) + (0 if bias is None else bias.numel())
    if op.kind == "conv":
        spatial = [s - k + 1 for s, k in zip(shape[1:], weight.shape[2:])]
        positions = int(torch.tensor(spatial).prod())
        flops = _tensor_params(weight) * positions
        pool = getattr(op, "pool", 0) or 1
        out = (weight.shape[0], *(s // pool for s in spatial))
        activations = weight.shape[0] * positions
    else:
        flops, out, activations = _tensor_params(weight), (weight.shape[0],), weight.shape[0]
    stated = getattr(op, "flops", None)
    flops = flops if stated is None else stated
    return LayerCost(int(flops), int(params), int(nbytes), int(activations)), out


def _tensor_params(t):
    return int(t._nnz()) if t.layout == torch.sparse_csr else t.numel()


def _tensor_bytes(t):
    if t.layout == torch.sparse_csr:
        parts = (t.values(), t.crow_indices(), t.col_indices())
        return sum(p.numel() * p.element_size() for p in parts)
    return t.numel() * t.element_size()
