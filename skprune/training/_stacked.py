"""K copies of a network as one stacked model, for :mod:`skprune.engine`.

Every parameter of the K copies becomes one tensor with a leading copy axis
(shape ``(K, *shape)``), so one kernel does the work of K: a ``Linear`` layer
becomes one batched matmul, a convolution one grouped convolution. Three forms:

* :class:`StackedMLP` — the built-in ``"mlp"``/``"lenet300"``: forward and
  backward written out (two batched matmuls and a sum per layer), no autograd
  graph, gradients written into preallocated buffers;
* :class:`StackedLeNet5` — the built-in ``"lenet5"``: the copies' feature
  maps side by side as the channels of one channels-last tensor, each
  convolution one grouped convolution, autograd for the backward;
* :class:`FuncStack` — any other module that ``torch.func`` can stack (user
  modules): ``vmap(functional_call)`` and autograd;
* :class:`LoopStack` — a module with dropout or batch normalisation
  (``"vgg"`` among them): each copy runs the module's own forward on its
  slices of the stacked parameters and buffers (autograd through one graph),
  its :class:`torch.nn.Dropout` layers drawing their masks from the copy's
  own generator (:func:`dropout_mask`) and its batch norms updating the
  copy's own running statistics.

Each takes a batch of shape (K, B, …), or (1, B, …) when every copy reads
the same rows, then the gradient of the loss with respect to the outputs
(known in closed form for the cross-entropy and the squared error, see
:func:`error_grad`), and leaves ``∂/∂p`` in ``p.grad`` of every stacked
parameter.
"""

import copy

import torch
from torch import nn

from ..models import MLP, LeNet5

__all__ = [
    "StackedMLP",
    "StackedLeNet5",
    "FuncStack",
    "LoopStack",
    "stack_modules",
    "dropout_mask",
    "needs_equal_rows",
    "global_rng_state",
    "copy_generators",
    "cross_entropy_grad",
    "squared_error_grad",
    "error_grad",
    "unstackable",
]

try:  # ReLU's backward in place, one kernel: a private overload of an aten op
    _THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.grad_input
except (AttributeError, RuntimeError):  # pragma: no cover - the public fallback below
    _THRESHOLD_BACKWARD = None


def _relu_backward_(grad, h):
    """Zero ``grad`` in place where ``h`` (a ReLU's output) is not positive."""
    if _THRESHOLD_BACKWARD is not None:
        _THRESHOLD_BACKWARD(grad, h, 0, grad_input=grad)
    else:
        grad.masked_fill_(h <= 0, 0)


#: Layers whose training-mode forward draws random numbers no stack reproduces per
#: copy (``nn.Dropout`` is reproduced: :func:`dropout_mask`).
_RANDOM_LAYERS = (nn.modules.dropout._DropoutNd, nn.RReLU)

#: Layers whose output depends on the other rows of the batch, or on random numbers:
#: copies of a module with one share a stack only with copies of as many rows.
_BATCH_COUPLED = (nn.Dropout, nn.modules.batchnorm._NormBase)


def unstackable(module):
    """Why ``module`` cannot be stacked (a sentence), or None if it can.

    :class:`torch.nn.Dropout` and batch normalisation stack
    (:class:`LoopStack`); other layers that draw random numbers in training
    (``Dropout2d``, ``AlphaDropout``, ``RReLU``, ...) do not: a stack would
    not draw each copy's numbers as its separate fit draws them.

    Examples
    --------
    >>> unstackable(nn.Sequential(nn.Linear(4, 2), nn.Dropout(), nn.BatchNorm1d(2))) is None
    True
    >>> print(unstackable(nn.Sequential(nn.Linear(4, 2), nn.AlphaDropout())))
    it has an AlphaDropout layer (it draws random numbers in training; a stack draws nn.Dropout's)
    """
    for layer in module.modules():
        if isinstance(layer, _RANDOM_LAYERS) and type(layer) is not nn.Dropout:
            name = type(layer).__name__
            article = "an" if name[0] in "AEIOU" else "a"
            return (
                f"it has {article} {name} layer (it draws random numbers in training; "
                "a stack draws nn.Dropout's)"
            )
    return None


def needs_equal_rows(module):
    """Whether copies of ``module`` must train on as many rows to share a stack.

    True for a module with dropout or batch normalisation: a copy with fewer
    rows would have its last batch padded, and padding rows would enter the
    batch statistics and the dropout masks' draws.

    Examples
    --------
    >>> needs_equal_rows(nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2)))
    True
    >>> needs_equal_rows(MLP(4, 2))
    False
    """
    return any(isinstance(layer, _BATCH_COUPLED) for layer in module.modules())


def dropout_mask(x, p, generator):
    """The scaled mask ``nn.Dropout(p)`` multiplies ``x`` by in training, drawn from ``generator``.

    As torch's CPU kernel makes it (``at::native::_dropout_impl``): a
    Bernoulli(1 − p) draw into ``empty_like(x)``, divided by 1 − p. From a
    generator in the state of the global one, the mask ``F.dropout`` would
    draw, bit for bit (on CUDA, ``F.dropout`` runs a fused kernel of its own
    and the masks are equal in distribution only).

    Examples
    --------
    >>> x = torch.ones(2, 3)
    >>> _ = torch.manual_seed(0)
    >>> expected = nn.functional.dropout(x, 0.5)
    >>> torch.equal(x * dropout_mask(x, 0.5, torch.Generator().manual_seed(0)), expected)
    True
    """
    if p == 1:
        return torch.zeros_like(x)
    return torch.empty_like(x).bernoulli_(1 - p, generator=generator).div_(1 - p)


def global_rng_state(device):
    """The state of torch's global generator that a fit on ``device`` draws dropout masks from.

    Taken where a fit's training starts (its network initialised under its
    seed), it is what the fit's copy of a stack starts its own generator from.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def copy_generators(states, device):
    """One ``torch.Generator`` on ``device`` per state of :func:`global_rng_state`, or None.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> g, = copy_generators([global_rng_state("cpu")], "cpu")
    >>> torch.equal(torch.rand(3), torch.rand(3, generator=g))
    True
    """
    if any(state is None for state in states):
        return None
    return [torch.Generator(device).set_state(state) for state in states]


def cross_entropy_grad(logits, y, scale):
    """Per-row cross-entropy and its gradient with respect to the logits.

    The logits are class-major, (K, C, B): torch's CPU ``log_softmax`` over a
    short last axis is an order of magnitude slower than over a middle one.
    For copy k and row i of weight ``scale[k, i]`` (``(1 − λ_k)/n_k`` for the
    rows of its batch, 0 for padding),
    ``∂((1 − λ_k)·E_k)/∂z_ki = scale_ki · (softmax(z_ki) − onehot(y_ki))``.

    Parameters
    ----------
    logits : tensor of shape (K, C, B)
    y : int64 tensor of shape (K, B)
    scale : tensor of shape (K, 1) or (K, B)

    Returns
    -------
    ce : tensor of shape (K, B)
        The row cross-entropies (the caller weights and sums them).
    grad : tensor of shape (K, C, B)

    Examples
    --------
    >>> z = torch.tensor([[[0.0], [0.0]]])
    >>> ce, grad = cross_entropy_grad(z, torch.tensor([[1]]), torch.tensor([[1.0]]))
    >>> round(float(ce), 4), grad.flatten().tolist()
    (0.6931, [0.5, -0.5])
    """
    logp = torch.log_softmax(logits, dim=1)
    target = y.unsqueeze(1)
    ce = logp.gather(1, target).squeeze(1).neg_()
    grad = logp.exp_()
    grad.scatter_add_(1, target, torch.full_like(target, -1.0, dtype=grad.dtype))
    grad.mul_(scale.unsqueeze(1))
    return ce, grad


def squared_error_grad(outputs, y, scale):
    """Per-row squared error and its gradient with respect to the outputs.

    The regressor's E is :class:`torch.nn.MSELoss`: the mean over the rows
    and the C output columns. For copy k and row i of weight ``scale[k, i]``
    (as in :func:`cross_entropy_grad`),
    ``∂((1 − λ_k)·E_k)/∂z_ki = scale_ki · 2·(z_ki − y_ki)/C``.

    Parameters
    ----------
    outputs : tensor of shape (K, C, B)
    y : tensor of shape (K, B, C)
    scale : tensor of shape (K, 1) or (K, B)

    Returns
    -------
    error : tensor of shape (K, B)
        The rows' squared errors, each the mean over the C columns.
    grad : tensor of shape (K, C, B)

    Examples
    --------
    >>> z = torch.tensor([[[1.0], [3.0]]])
    >>> error, grad = squared_error_grad(z, torch.tensor([[[0.0, 1.0]]]), torch.tensor([[1.0]]))
    >>> float(error), grad.flatten().tolist()
    (2.5, [1.0, 2.0])
    """
    diff = outputs - y.transpose(1, 2)
    error = diff.square().mean(1)
    return error, diff.mul_(scale.unsqueeze(1) * (2.0 / diff.shape[1]))


def error_grad(criterion):
    """The function computing E's rows and gradient for ``criterion``, or None."""
    return {nn.CrossEntropyLoss: cross_entropy_grad, nn.MSELoss: squared_error_grad}.get(criterion)


class StackedMLP:
    """K copies of :class:`skprune.models.MLP`, forward and backward by hand.

    Parameters
    ----------
    modules : list of MLP
        Same sizes; their parameters are copied into the stack.
    """

    def __init__(self, modules):
        first = modules[0]
        self.params = {
            name: torch.stack([dict(m.named_parameters())[name].detach() for m in modules])
            for name, _ in first.named_parameters()
        }
        for p in self.params.values():
            p.grad = torch.zeros_like(p)
        self.buffers = {}
        self._layers = [
            (self.params[f"layer{i}.weight"], self.params[f"layer{i}.bias"])
            for i in range(1, first.n_layers + 1)
        ]

    def forward(self, x):
        """Class-major logits (K, C, B) of inputs (K, B, …), or (1, B, …) shared by all copies.

        Activations are feature-major, (K, features, B), as the logits: every
        matmul then reads its operands in the layout BLAS prefers. Keeps what
        ``backward`` needs.
        """
        self._x = x = x.flatten(2)
        w, b = self._layers[0]
        if x.shape[0] < w.shape[0]:  # one batch for every copy: one matmul for all of them
            n_out, n_in = w.shape[0] * w.shape[1], w.shape[2]
            h = torch.addmm(b.view(n_out, 1), w.view(n_out, n_in), x[0].T)
            h = h.view(*w.shape[:2], -1)
        else:
            h = torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2))
        self._hidden = []
        for w, b in self._layers[1:]:
            self._hidden.append(h.relu_())
            h = torch.baddbmm(b.unsqueeze(2), w, h)
        return h

    def backward(self, grad):
        """Write ∂/∂p of the loss whose logit gradient is ``grad`` (K, C, B) into ``p.grad``."""
        for (w, b), h in zip(self._layers[:0:-1], self._hidden[::-1]):
            torch.bmm(grad, h.transpose(1, 2), out=w.grad)
            torch.sum(grad, dim=2, out=b.grad)
            # ReLU's backward: h is the layer's input, the previous layer's output after ReLU.
            grad = torch.bmm(w.transpose(1, 2), grad)
            _relu_backward_(grad, h)
        w, b = self._layers[0]
        x = self._x
        if x.shape[0] < w.shape[0]:
            n_out, n_in = w.shape[0] * w.shape[1], w.shape[2]
            torch.mm(grad.reshape(n_out, -1), x[0], out=w.grad.view(n_out, n_in))
        else:
            torch.bmm(grad, x, out=w.grad)
        torch.sum(grad, dim=2, out=b.grad)
        self._x = self._hidden = None


class _AutogradStack:
    """Stacked parameters trained by autograd: ``forward`` keeps the graph of the logits."""

    def __init__(self, modules):
        params, self.buffers = torch.func.stack_module_state(modules)
        self.params = {name: p.detach().requires_grad_() for name, p in params.items()}

    def forward(self, x):
        """Class-major logits (K, C, B) of inputs (K, B, …), or (1, B, …) shared by all copies."""
        n_copies = next(iter(self.params.values())).shape[0]
        self._logits = self._logits_of(x.expand(n_copies, *x.shape[1:]))
        return self._logits.detach().transpose(1, 2).contiguous()

    def backward(self, grad):
        for p in self.params.values():
            p.grad = None
        self._logits.backward(grad.transpose(1, 2))
        self._logits = None


class FuncStack(_AutogradStack):
    """K copies of any module ``torch.func`` can stack, with autograd.

    ``vmap`` over ``functional_call`` runs the K copies as one batched call: a
    matmul becomes a batched matmul, a convolution a grouped convolution.
    """

    def __init__(self, modules):
        super().__init__(modules)
        base = modules[0]

        def call(p, b, x):
            out = torch.func.functional_call(base, (p, b), (x,))
            return out[0] if isinstance(out, tuple) else out

        self._single = len(modules) == 1
        self._call = call if self._single else torch.func.vmap(call)

    def _logits_of(self, x):
        if self._single:  # no vmap to pay for: the module on the copy's slices
            first = {name: t[0] for name, t in self.params.items()}
            buffers = {name: t[0] for name, t in self.buffers.items()}
            return self._call(first, buffers, x[0]).unsqueeze(0)
        return self._call(self.params, self.buffers, x)


class _CopyDropout(nn.Module):
    """``nn.Dropout`` whose masks come from the generator of the copy being run."""

    def __init__(self, p, inplace, rng):
        super().__init__()
        self.p, self.inplace, self.rng = p, inplace, rng

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        mask = dropout_mask(x, self.p, self.rng.current)
        return x.mul_(mask) if self.inplace else x * mask


class _CurrentRng:
    """Which copy's generator the dropout layers of a :class:`LoopStack` draw from."""

    current = None


class LoopStack(_AutogradStack):
    """K copies of a module with dropout or batch normalisation, one after the other.

    Copy k runs the module's own forward (``functional_call``) on its slices
    of the stacked parameters and buffers, so that each batch norm computes
    the copy's batch statistics and updates the copy's running statistics
    (``momentum=None`` and ``track_running_stats=False`` as the layer does
    them), and each :class:`torch.nn.Dropout` multiplies by
    :func:`dropout_mask` drawn from ``generators[k]``, in the order and
    shapes the separate fit draws them from torch's global generator. One
    autograd graph over the K forwards; the loss's gradient reaches every
    stacked parameter in one backward.

    Parameters
    ----------
    modules : list of torch.nn.Module
        K copies of one architecture.
    generators : list of torch.Generator or None
        Copy k's dropout masks come from ``generators[k]`` (None: a module
        without dropout).
    """

    def __init__(self, modules, generators=None):
        super().__init__(modules)
        self.generators = generators
        self._rng = _CurrentRng()
        self._module = copy.deepcopy(modules[0])
        for name, layer in list(self._module.named_modules()):
            if type(layer) is nn.Dropout:
                self._module.set_submodule(name, _CopyDropout(layer.p, layer.inplace, self._rng))

    def _logits_of(self, x):
        params = {name: p.unbind(0) for name, p in self.params.items()}
        buffers = {name: b.unbind(0) for name, b in self.buffers.items()}
        logits = []
        for k in range(x.shape[0]):
            self._rng.current = None if self.generators is None else self.generators[k]
            own = {name: p[k] for name, p in params.items()}
            own.update({name: b[k] for name, b in buffers.items()})
            out = torch.func.functional_call(self._module, own, (x[k],))
            logits.append(out[0] if isinstance(out, tuple) else out)
        self._rng.current = None
        return torch.stack(logits)


class StackedLeNet5(_AutogradStack):
    """K copies of :class:`skprune.models.LeNet5` (its ``forward``, for K at once).

    Copy k's feature maps are channels ``[k·c, (k+1)·c)`` of one
    ``(B, K·c, H, W)`` tensor, so each convolution is one convolution with
    ``groups=K``. The tensor is channels-last: on the CPU, grouped
    convolutions and 2×2 average pooling run 2–10× faster in that layout
    than in the default one, which is what makes the stack cheaper than K
    separate fits (see the engine guide's table). ReLUs act in place.
    """

    def __init__(self, modules):
        super().__init__(modules)
        self.input_shape = modules[0].input_shape

    def _logits_of(self, x):
        K, B = x.shape[:2]
        c, h, w = self.input_shape
        p = self.params
        x = x.reshape(K, B, c, h, w).transpose(0, 1).reshape(B, K * c, h, w)
        x = x.contiguous(memory_format=torch.channels_last)
        for conv in ("conv1", "conv2"):
            weight, bias = p[f"{conv}.weight"].flatten(0, 1), p[f"{conv}.bias"].flatten()
            x = nn.functional.avg_pool2d(nn.functional.conv2d(x, weight, bias, groups=K).relu_(), 2)
        # Each copy's maps, flattened as LeNet5.forward flattens them.
        x = _Contiguous.apply(x).view(B, K, -1).transpose(0, 1)
        for i, layer in enumerate(("layer1", "layer2", "layer3")):
            x = torch.baddbmm(p[f"{layer}.bias"].unsqueeze(1), x, p[f"{layer}.weight"].mT)
            x = x.relu_() if i < 2 else x
        return x


class _Contiguous(torch.autograd.Function):
    """Channels-last to contiguous; the gradient goes back channels-last.

    (``Tensor.contiguous`` passes the gradient back in the contiguous layout,
    and the pooling's backward is then several times slower.)
    """

    @staticmethod
    def forward(ctx, x):
        return x.contiguous()

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=torch.channels_last)


def stack_modules(modules, generators=None):
    """The stacked form of ``modules`` (K copies of one architecture).

    ``generators`` (one per copy, or None) are where a module's dropout
    layers draw each copy's masks (:class:`LoopStack`).
    """
    if all(type(m) is MLP for m in modules):
        return StackedMLP(modules)
    if all(type(m) is LeNet5 for m in modules):
        return StackedLeNet5(modules)
    if needs_equal_rows(modules[0]):
        return LoopStack(modules, generators)
    return FuncStack(modules)
