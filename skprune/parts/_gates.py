r"""Hard-concrete L0 gates (Louizos et al., 2018; Gallego-Posada et al., §2).

A gated weight is :math:`\theta = \tilde\theta \odot z`: free magnitudes
:math:`\tilde\theta` times stochastic gates :math:`z \in [0, 1]` that are
*exactly* 0 or 1 with positive probability. A gate with parameter
:math:`\log\alpha`, temperature :math:`\beta` and stretch limits
:math:`\gamma < 0 < 1 < \zeta` is sampled from :math:`u \sim U(0, 1)` as

.. math::

    s = \sigma\!\left(\frac{\log u - \log(1 - u) + \log\alpha}{\beta}\right),
    \qquad z = \min\!\bigl(1, \max(0,\ s(\zeta - \gamma) + \gamma)\bigr).

The probability that it is open has a closed form, which makes the expected
L0 norm :math:`\mathbb{E}\|z\|_0 = \sum_j P(z_j \neq 0)` of Gallego-Posada
eq. (2)–(3) differentiable in :math:`\log\alpha`:

.. math::

    P(z \neq 0) = \sigma\!\left(\log\alpha - \beta \log\frac{-\gamma}{\zeta}\right).

The test-time network uses the *median* gate (Gallego-Posada, Appendix A.1),
the sample at :math:`u = 1/2`:
:math:`\hat z = \min(1, \max(0, \sigma(\log\alpha / \beta)(\zeta - \gamma) + \gamma))`.
It is 0 exactly when :math:`P(z \neq 0) \le 1/2`.

The functions are pure; :class:`HardConcreteGate` applies them to a layer's
weight as a :mod:`torch.nn.utils.parametrize` parametrization, and
:func:`attach_gate` / :func:`fold_gate` put it on and take it off.
:class:`StackedNoise` draws the noise of K copies trained stacked, each from
its own generator, as each copy's separate fit draws it.
"""

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "TEMPERATURE",
    "LIMITS",
    "logistic_noise",
    "hard_concrete_sample",
    "prob_nonzero",
    "median_gate",
    "log_alpha_for",
    "HardConcreteGate",
    "gate_shape",
    "attach_gate",
    "fold_gate",
    "StackedNoise",
]

#: β, γ and ζ of Louizos et al. §4, used by Gallego-Posada et al.
TEMPERATURE = 2.0 / 3.0
LIMITS = (-0.1, 1.1)

# Uniform noise is kept off 0 and 1 so that log u and log(1 - u) stay finite.
_EPS = 1e-6


def _stretch(s, limits):
    low, high = limits
    return (s * (high - low) + low).clamp(0.0, 1.0)


class _StretchedSigmoid(torch.autograd.Function):
    """``clamp(σ(x / β)(ζ − γ) + γ, 0, 1)`` with a hand-written backward.

    Ten elementwise kernels through autograd become three forward and three
    backward; the gates are as many as the weights, so this is most of their cost.
    """

    @staticmethod
    def forward(ctx, x, temperature, low, high):
        s = torch.sigmoid(x / temperature)
        z = (s * (high - low) + low).clamp_(0.0, 1.0)
        ctx.save_for_backward(s, z)
        ctx.scale = (high - low) / temperature
        return z

    @staticmethod
    def backward(ctx, grad):
        s, z = ctx.saved_tensors
        inside = (z > 0) & (z < 1)
        return grad * (s * (1 - s)).mul_(inside).mul_(ctx.scale), None, None, None


def logistic_noise(u):
    """``log u − log(1 − u)``: the noise of a hard-concrete sample, from uniform ``u``."""
    u = u.clamp(_EPS, 1.0 - _EPS)
    return torch.log(u) - torch.log1p(-u)


def hard_concrete_sample(log_alpha, u, temperature=TEMPERATURE, limits=LIMITS, logistic=None):
    """Gates ``z`` in [0, 1] from uniform noise ``u`` (Louizos et al. eq. 10–11).

    Differentiable in ``log_alpha`` (the reparametrisation trick). ``logistic``,
    if given, is ``logistic_noise(u)`` computed beforehand (``u`` is then unused).

    Examples
    --------
    >>> la = torch.zeros(3)
    >>> hard_concrete_sample(la, torch.tensor([0.01, 0.5, 0.99]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    noise = logistic_noise(u) if logistic is None else logistic
    return _StretchedSigmoid.apply(noise + log_alpha, temperature, *limits)


def prob_nonzero(log_alpha, temperature=TEMPERATURE, limits=LIMITS):
    r"""P(z ≠ 0) = σ(log α − β log(−γ/ζ)), the expected L0 norm of one gate.

    Examples
    --------
    >>> round(float(prob_nonzero(torch.tensor(0.0))), 4)
    0.8318
    """
    low, high = limits
    return torch.sigmoid(log_alpha - temperature * math.log(-low / high))


def median_gate(log_alpha, temperature=TEMPERATURE, limits=LIMITS):
    """The median gate, used by the deterministic test-time network.

    Examples
    --------
    >>> median_gate(torch.tensor([-5.0, 0.0, 5.0]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    return _stretch(torch.sigmoid(log_alpha / temperature), limits)


def log_alpha_for(p, temperature=TEMPERATURE, limits=LIMITS):
    """The log α whose gate is open with probability ``p`` (inverse of :func:`prob_nonzero`).

    Examples
    --------
    >>> round(float(prob_nonzero(torch.tensor(log_alpha_for(0.9)))), 6)
    0.9
    """
    low, high = limits
    return math.log(p / (1.0 - p)) + temperature * math.log(-low / high)


class HardConcreteGate(nn.Module):
    """Parametrization ``weight -> weight ⊙ z`` with one hard-concrete gate per group.

    In training mode with ``noise`` set (logistic noise, see
    :func:`resample`, one sample per mini-batch), ``z`` is the sample for that
    noise; otherwise ``z`` is the median gate, so evaluation and prediction see
    the test-time network.

    Parameters
    ----------
    shape : tuple of int
        Shape of ``log_alpha``, broadcastable against the weight.
    init_log_alpha : float
    temperature : float, default=2/3
    limits : tuple of float, default=(-0.1, 1.1)
    """

    def __init__(self, shape, init_log_alpha, temperature=TEMPERATURE, limits=LIMITS):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full(shape, float(init_log_alpha)))
        self.temperature = temperature
        self.limits = limits
        self.noise = None

    def resample(self):
        """Draw the noise of a new sample of the gates."""
        self.noise = logistic_noise(torch.rand_like(self.log_alpha))

    def gate(self):
        """The gates the forward pass uses now (a sample or the medians)."""
        if self.training and self.noise is not None:
            return hard_concrete_sample(
                self.log_alpha, None, self.temperature, self.limits, logistic=self.noise
            )
        return median_gate(self.log_alpha, self.temperature, self.limits)

    def forward(self, weight):
        return weight * self.gate()

    def prob_nonzero(self):
        """P(z ≠ 0) of every gate."""
        return prob_nonzero(self.log_alpha, self.temperature, self.limits)

    def expected_nonzero(self, n_weights):
        """E‖θ‖₀ of the gated weight: Σ P(z ≠ 0) times the weights per gate."""
        return self.prob_nonzero().sum() * (n_weights / self.log_alpha.numel())


def gate_shape(layer, structure):
    """Shape of the gates of ``layer.weight`` for ``structure``.

    ``"weight"``: one gate per weight; ``"neuron"``: one per input neuron of a
    ``Linear`` layer (a column of its weight) or per output channel of a
    convolution (Louizos et al. §4.2, Gallego-Posada §2 "parameter grouping").

    Examples
    --------
    >>> gate_shape(nn.Linear(4, 3), "neuron"), gate_shape(nn.Conv2d(2, 5, 3), "neuron")
    ((1, 4), (5, 1, 1, 1))
    """
    shape = tuple(layer.weight.shape)
    if structure == "weight":
        return shape
    if isinstance(layer, nn.Linear):
        return (1, shape[1])
    if isinstance(layer, nn.modules.conv._ConvNd):
        return (shape[0],) + (1,) * (len(shape) - 1)
    raise ValueError(
        f"structure='neuron' gates the input neurons of Linear layers and the output "
        f"channels of convolutions; got a {type(layer).__name__}. Use structure='weight'."
    )


def attach_gate(layer, structure, init_density, temperature=TEMPERATURE):
    """Gate ``layer.weight``; returns the :class:`HardConcreteGate`.

    Every gate starts open with probability ``init_density``. The weight
    parameter itself is kept (as ``parametrizations.weight.original``), so
    optimiser state that refers to it stays valid.
    """
    weight = layer.weight
    init = log_alpha_for(init_density, temperature)
    gate = HardConcreteGate(gate_shape(layer, structure), init, temperature)
    gate.to(device=weight.device, dtype=weight.dtype)
    parametrize.register_parametrization(layer, "weight", gate)
    return gate


@torch.no_grad()
def fold_gate(layer):
    """Replace the gated weight by ``θ̃ ⊙ ẑ`` with median gates; a plain layer again.

    Closed gates leave exact zeros in ``layer.weight``.
    """
    gate = layer.parametrizations.weight[0]
    z = median_gate(gate.log_alpha, gate.temperature, gate.limits)
    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    layer.weight.mul_(z)
    # The weight comes back last: put it first again, as the layer (and its state_dict) had it.
    params = layer._parameters
    for name in [name for name in params if name != "weight"]:
        params[name] = params.pop(name)


class StackedNoise:
    """The gates' logistic noise for K copies, each drawn from the copy's own generator.

    A separate fit draws its gates' uniform noise from torch's global generator
    (:meth:`HardConcreteGate.resample`: one ``rand_like`` per gate, gate after
    gate); copy k of a stack draws the same numbers from ``generators[k]``,
    which starts where that fit's global generator stood. Copies whose
    generators start in the same state (a λ path with an int
    ``random_state``) draw the same numbers: they are drawn once.

    Examples
    --------
    >>> gens = [torch.Generator().manual_seed(s) for s in (0, 0, 1)]
    >>> a, b = StackedNoise(gens).draw([(2, 3), (4,)])
    >>> a.shape, b.shape, bool((a[0] == a[1]).all()), bool((a[0] == a[2]).all())
    (torch.Size([3, 2, 3]), torch.Size([3, 4]), True, False)
    """

    def __init__(self, generators):
        streams = {}  # state -> (generator, copies drawing from it)
        for k, generator in enumerate(generators):
            state = generator.get_state().numpy().tobytes()
            streams.setdefault(state, (generator, []))[1].append(k)
        self._streams = list(streams.values())
        self._stream_of = [0] * len(generators)
        for s, (_, copies) in enumerate(self._streams):
            for k in copies:
                self._stream_of[k] = s

    def draw(self, shapes, dtype=torch.float32):
        """Logistic noise of shape ``(K, *shape)`` for each of ``shapes``, in order."""
        drawn = [
            [torch.rand(shape, generator=g, dtype=dtype, device=g.device) for shape in shapes]
            for g, _ in self._streams
        ]
        if len(drawn) == 1:
            n_copies = len(self._stream_of)
            return [logistic_noise(u).expand(n_copies, *u.shape) for u in drawn[0]]
        return [
            logistic_noise(torch.stack([drawn[s][i] for s in self._stream_of]))
            for i in range(len(shapes))
        ]
