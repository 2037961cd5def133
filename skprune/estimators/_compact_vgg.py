"""Compaction of :class:`~skprune.models.VGGLike`: dead channels removed, batch norm folded.

Each block of ``features`` is a convolution, an activation, a batch norm in
inference mode (``y = a·x + s`` per channel, ``a = γ/√(σ²+ε)``,
``s = β − μ·a``), and, at the end of a block, 2×2 max pooling and dropout
(the identity in inference). A convolution's output channel is

* *constant* when its weights are all zero or its batch-norm scale ``a`` is
  zero: it is ``v = a·act(b) + s`` everywhere, whatever the input;
* *unread* when no kept channel of the next convolution (or, for the last,
  no weight of ``layer1``) reads it.

Both are removed. A constant channel read by the next convolution is folded
into it as a per-position bias: with zero padding the constant map's
contribution ``conv(v·1, W[:, c])`` differs at the borders, so it is a
(C, H, W) map rather than a bias. Max pooling keeps a constant map constant;
``layer1`` gets ``v`` times the sum of the weights that read the channel added
to its bias. The batch norm stays a per-channel affine step after the
activation: folding it into the next convolution would be wrong at the
zero-padded borders and, for a negative scale, through max pooling.
"""

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ._deployed import InferenceNet, Op

__all__ = ["CannotCompact", "compact_vgg", "parse_blocks"]


class CannotCompact(Exception):
    """A module that compaction cannot read; its message says why."""


_ACTS = {nn.ReLU: "relu", nn.ELU: "elu"}


class _Conv:
    """One convolution of the chain and what follows it, in float64."""

    def __init__(self, conv):
        self.weight = conv.weight.detach().double()
        n_out = len(self.weight)
        bias = conv.bias
        self.bias = bias.detach().double() if bias is not None else self.weight.new_zeros(n_out)
        self.padding, self.act, self.pool, self.pool_kind = conv.padding[0], None, 0, "avg"
        self.scale = self.shift = None

    def constant(self):
        """The value of each channel whose output does not depend on the input (NaN otherwise)."""
        act = {"relu": torch.relu, "elu": F.elu, None: lambda v: v}[self.act]
        value = act(self.bias)
        if self.scale is not None:
            value = self.scale * value + self.shift
        dead = ~self.weight.flatten(1).any(dim=1)
        if self.scale is not None:
            dead |= self.scale == 0
        return torch.where(dead, value, torch.full_like(value, float("nan")))


def _conv_supported(layer):
    return (
        layer.groups == 1
        and layer.dilation == (1, 1)
        and layer.stride == (1, 1)
        and layer.padding_mode == "zeros"
        and isinstance(layer.padding, tuple)
        and len(set(layer.padding)) == 1
    )


def _pool_supported(layer):
    size = layer.kernel_size if isinstance(layer.kernel_size, int) else None
    stride = layer.stride if isinstance(layer.stride, int) else None
    plain = getattr(layer, "dilation", 1) == 1 and not getattr(layer, "ceil_mode", False)
    return size is not None and stride == size and layer.padding == 0 and plain


def _batch_norm(layer, conv):
    """Set ``conv``'s affine step from an inference batch norm; False if it has none."""
    if layer.running_var is None:  # batch statistics even in inference
        return False
    scale = layer.weight.detach().double() if layer.affine else 1.0
    shift = layer.bias.detach().double() if layer.affine else 0.0
    a = scale / torch.sqrt(layer.running_var.double() + layer.eps)
    conv.scale = a * torch.ones_like(conv.bias)
    conv.shift = shift - layer.running_mean.double() * a
    return True


def _add(blocks, layer):
    """Add ``layer`` to the parsed chain; False when it does not fit the pattern."""
    if isinstance(layer, nn.Conv2d) and _conv_supported(layer):
        blocks.append(_Conv(layer))
        return True
    if not blocks or blocks[-1].pool:
        return isinstance(layer, nn.Dropout) and bool(blocks)
    last = blocks[-1]
    if type(layer) in _ACTS and last.act is None and last.scale is None:
        ok = not isinstance(layer, nn.ELU) or layer.alpha == 1.0
        last.act = _ACTS[type(layer)]
        return ok
    if isinstance(layer, nn.BatchNorm2d) and last.scale is None and last.act is not None:
        return _batch_norm(layer, last)
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) and _pool_supported(layer):
        last.pool = layer.kernel_size
        last.pool_kind = "max" if isinstance(layer, nn.MaxPool2d) else "avg"
        return True
    return isinstance(layer, nn.Dropout)


def parse_blocks(features):
    """``features`` (an ``nn.Sequential``) as a list of convolutions.

    Raises :class:`CannotCompact` when a layer does not fit the pattern
    convolution, activation, batch norm, pooling, dropout, or carries hooks.
    """
    blocks = []
    for i, layer in enumerate(features):
        if layer._forward_hooks or layer._forward_pre_hooks or not _add(blocks, layer):
            raise CannotCompact(
                f"features[{i}] ({layer!r}) does not fit the pattern convolution, "
                "ReLU or ELU, batch norm, pooling, dropout, or has hooks"
            )
    if not blocks:
        raise CannotCompact("features holds no convolution")
    return blocks


def _kept_channels(blocks, head):
    """Per convolution, the channels kept (neither constant nor unread), last to first."""
    keep = [None] * len(blocks)
    read = head.any(dim=(0, 2))  # layer1 reads the channel somewhere
    for k in reversed(range(len(blocks))):
        keep[k] = read & torch.isnan(blocks[k].constant())
        read = blocks[k].weight[keep[k]].any(dim=(0, 2, 3))
    return keep


def _fold_into_conv(prev, keep_prev, nxt, keep_next, size):
    """Weight and bias map of ``nxt`` once ``prev``'s constant channels are removed."""
    weight = nxt.weight[keep_next]
    value = prev.constant()
    folded = ~torch.isnan(value) & weight.flatten(2).any(dim=(0, 2))
    bias_map = None
    if folded.any():
        maps = value[folded][:, None, None].expand(-1, *size)[None]
        bias_map = F.conv2d(maps, weight[:, folded], padding=nxt.padding)[0]
    return weight[:, keep_prev], bias_map


def _conv_op(conv, keep, weight, bias_map):
    affine = {} if conv.scale is None else {"scale": conv.scale[keep], "shift": conv.shift[keep]}
    return Op(
        "conv",
        act=conv.act,
        pool=conv.pool,
        pool_kind=conv.pool_kind,
        padding=conv.padding,
        weight=weight.contiguous(),
        bias=conv.bias[keep],
        bias_map=bias_map,
        **affine,
    )


def _out_size(conv, size):
    kernel = conv.weight.shape[2:]
    size = [s + 2 * conv.padding - k + 1 for s, k in zip(size, kernel)]
    return tuple(s // conv.pool for s in size) if conv.pool else tuple(size)


def compact_vgg(module, linear_ops, constant_ops, dtype):
    """The :class:`InferenceNet` of a :class:`~skprune.models.VGGLike`.

    Raises :class:`CannotCompact` when ``module.features`` does not fit the
    pattern (see :func:`parse_blocks`): the caller then keeps the module
    exact. ``linear_ops(weights, biases)`` and ``constant_ops(bias)`` make the
    dense part.
    """
    blocks = parse_blocks(module.features)
    head_w = module.layer1.weight.detach().double()
    head_b = module.layer1.bias.detach().double().clone()
    n_maps = len(blocks[-1].weight)
    head = head_w.reshape(len(head_w), n_maps, -1)
    keep = _kept_channels(blocks, head)
    if not all(k.any() for k in keep):
        return _constant(module, constant_ops, dtype)
    ops, size = [], module.input_shape[1:]
    for k, conv in enumerate(blocks):
        weight, bias_map = conv.weight[keep[k]], None
        if k:
            weight, bias_map = _fold_into_conv(blocks[k - 1], keep[k - 1], conv, keep[k], size)
        ops.append(_conv_op(conv, keep[k], weight, bias_map))
        size = _out_size(conv, size)
    value = blocks[-1].constant()
    folded = ~torch.isnan(value)
    head_b += (head[:, folded].sum(dim=2) * value[folded]).sum(dim=1)
    weights = [head[:, keep[-1]].flatten(1)]
    ops = [*ops, Op("flatten"), *linear_ops(weights, [head_b])]
    return InferenceNet(module.input_shape, ops, dtype)


@torch.no_grad()
def _constant(module, constant_ops, dtype):
    """Every path to the output is cut: the output on a blank image is the output."""
    weight = module.layer1.weight
    x = torch.zeros(1, *module.input_shape, dtype=torch.float64, device=weight.device)
    out = copy.deepcopy(module).double().eval()(x)
    return InferenceNet(module.input_shape, [Op("flatten"), *constant_ops(out[0])], dtype)
