r"""Controlled sparsity: hard-concrete gates under target-density constraints.

Gallego-Posada et al. replace the L0 penalty :math:`\lambda\,\mathbb{E}\|z\|_0`
(eq. 2) by constraints on the expected density of groups of gates (eq. 3),

.. math::

    \min_{\tilde\theta, \phi}\ \mathbb{E}_z\, \mathcal{L}(\tilde\theta \odot z)
    \quad \text{s.t.} \quad
    g_g(\phi) = \frac{\mathbb{E}\|z_g\|_0}{\#(\tilde\theta_g)} \le \epsilon_g,

solved through the Lagrangian (eq. 4)

.. math::

    \mathfrak{L} = \mathbb{E}\mathcal{L} + \sum_g \mu_g (g_g - \epsilon_g),

with gradient descent on the weights and gates, projected gradient ascent on
the multipliers (eq. 5), :math:`\mu_g \leftarrow \max(0, \mu_g + \eta\,(g_g -
\epsilon_g))`, and *dual restarts* (eq. 6) that reset :math:`\mu_g` to 0 as soon
as group :math:`g` is feasible. As in the paper, :math:`g_g` is a density, so
the pull a gate feels is :math:`\mu_g / \#(\theta_g)` per weight: small layers
get their multiplier's full force, and ``dual_lr`` grows with the size of a
model-wise group (the default, 0.05, suits LeNet-300-100's 266,200 weights).

The dual update is a few tensor operations (:func:`dual_step`), written here
rather than taken from Cooper: Cooper 1.0 no longer has multiplier restarts, and
skorch already owns the primal loop, so a Cooper ``ConstrainedMinimizationProblem``
would wrap one line of maths in three classes.
"""

from numbers import Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..metrics import count_nonzero
from ._gates import TEMPERATURE, attach_gate, fold_gate
from ._regularizers import Regularizer

__all__ = ["dual_step", "HardConcrete"]

# Louizos et al.'s code clamps log α to [log 1e-2, log 1e2] (±4.6); there a closed gate
# still counts P(z ≠ 0) = 0.05 in the expected density, which then overstates the
# test-time density by up to 0.05. At ±10 a closed gate counts 2e-4 and can still
# reopen within a few hundred steps.
_LOG_ALPHA_RANGE = (-10.0, 10.0)


def dual_step(multiplier, violation, lr, restart=True):
    r"""One projected ascent step on Lagrange multipliers (eq. 5; eq. 6 with restarts).

    :math:`\mu \leftarrow \max(0, \mu + \eta\,(g - \epsilon))`, and with
    ``restart`` :math:`\mu \leftarrow 0` wherever :math:`g - \epsilon \le 0`.

    Examples
    --------
    >>> mu, v = torch.tensor([1.0, 1.0, 0.1]), torch.tensor([0.5, -0.2, -0.5])
    >>> dual_step(mu, v, lr=1.0, restart=False)
    tensor([1.5000, 0.8000, 0.0000])
    >>> dual_step(mu, v, lr=1.0)
    tensor([1.5000, 0.0000, 0.0000])
    """
    ascended = (multiplier + lr * violation).clamp(min=0.0)
    if restart:
        return torch.where(violation > 0, ascended, torch.zeros_like(ascended))
    return ascended


class HardConcrete(Regularizer):
    r"""Hard-concrete L0 gates, penalised (λ·E‖z‖₀) or under target densities.

    At the start of training every regularised weight becomes
    :math:`\tilde\theta \odot z`; the gates' :math:`\log\alpha` train with their
    own Adam optimiser. At the end of training the median gates are folded into
    the weights, so the fitted module is a plain module holding exact zeros.

    Parameters
    ----------
    target_density : float, dict or None, default=None
        ε: one model-wise constraint (float), one per named layer (dict), or
        None for the penalised form, where :meth:`penalty` enters the loss
        ``(1 − λ)·E + λ·E‖z‖₀``. With constraints, λ is not used.
    structure : {"weight", "neuron"}, default="weight"
        One gate per weight, or per input neuron (Linear) / output channel (Conv).
    dual_lr : float, default=0.05
        η of the multipliers' ascent (eq. 5), per mini-batch.
    dual_restarts : bool, default=True
        Reset a multiplier to 0 whenever its constraint holds (eq. 6).
    temperature : float in (0, 1], default=2/3
        β of the hard-concrete distribution.
    init_density : float in (0, 1), default=0.9
        P(z ≠ 0) of every gate at the start.
    gate_lr : float, default=0.01
        Adam learning rate of log α (Gallego-Posada §5.1 raise it above the weights').
    proxy_constraint : bool, default=True
        Let the multipliers ascend (and restart) on the density of the median
        network, the one ``fit`` returns, while the gates still descend along
        the expected density: Cotter et al.'s proxy constraints, which
        Gallego-Posada §4 point to for constraining "the actual test time
        density". ``False`` is eq. (5)–(6) verbatim; it meets ε in expectation,
        and the fitted network then tends to be a little sparser (see the
        user guide).

    Attributes
    ----------
    gates_ : list of (str, HardConcreteGate, int)
        Layer name, gate and weight count while training; empty after.
    multipliers_ : dict
        Group name (``"model"`` or a layer name) -> μ (a tensor while
        training, a float after).
    epsilon_ : dict
        Group name -> ε of the constrained groups.
    """

    def __init__(
        self,
        target_density=None,
        structure="weight",
        dual_lr=0.05,
        dual_restarts=True,
        temperature=TEMPERATURE,
        init_density=0.9,
        gate_lr=0.01,
        proxy_constraint=True,
    ):
        self.target_density = target_density
        self.structure = structure
        self.dual_lr = dual_lr
        self.dual_restarts = dual_restarts
        self.temperature = temperature
        self.init_density = init_density
        self.gate_lr = gate_lr
        self.proxy_constraint = proxy_constraint

    #: The gates are the pruning: ``pruning="auto"`` resolves to none.
    prunes_itself = True
    estimator_params = ("target_density",)

    def validate(self, estimator=None):
        super().validate(estimator)
        # Threshold pruning would cut a weight that is the product of a gate and a
        # magnitude; magnitude pruning would impose the density a second time.
        if estimator is not None and estimator.pruning not in (None, "auto"):
            raise ValueError(
                "regularizer='hard_concrete' prunes through its gates and needs pruning=None "
                f"(or 'auto'); got pruning={estimator.pruning!r}."
            )
        return self

    @property
    def in_loss(self):
        # Constrained: the Lagrangian's gradient is added in on_grad_computed.
        return self.target_density is None

    _parameter_constraints = {
        "target_density": [Interval(Real, 0, 1, closed="right"), dict, None],
        "structure": [StrOptions({"weight", "neuron"})],
        "dual_lr": [Interval(Real, 0, None, closed="neither")],
        "dual_restarts": ["boolean"],
        "temperature": [Interval(Real, 0, 1, closed="right")],
        "init_density": [Interval(Real, 0, 1, closed="neither")],
        "gate_lr": [Interval(Real, 0, None, closed="neither")],
        "proxy_constraint": ["boolean"],
    }

    def initialize(self):
        self.gates_, self.multipliers_, self.epsilon_, self.violation_ = [], {}, {}, {}
        self.optimizer_ = None
        return self

    # -- the groups g of eq. (3) ---------------------------------------------

    def _gated_names(self, net):
        names = [name for name, _ in net.regularized_named_]
        if isinstance(self.target_density, dict):
            return [name for name in names if name in self.target_density]
        return names

    def _groups(self):
        """``[(group, ε or None, [(gate, n_weights)])]``: one per constraint."""
        if isinstance(self.target_density, dict):
            return [(name, self.target_density[name], [(gate, n)]) for name, gate, n in self.gates_]
        return [("model", self.target_density, [(g, n) for _, g, n in self.gates_])]

    @staticmethod
    def _group_density(members):
        nonzero = sum(gate.expected_nonzero(n) for gate, n in members)
        return nonzero / sum(n for _, n in members)

    def expected_density(self):
        """Group name -> expected density g_g (eq. 3), as differentiable tensors."""
        return {name: self._group_density(members) for name, _, members in self._groups()}

    # -- Ω ---------------------------------------------------------------------

    def penalty(self, weights):
        """E‖θ‖₀ while the gates are on; the count of non-zero ``weights`` after.

        Differentiable in log α only inside a training step (where it may enter
        the loss); elsewhere it is a record.
        """
        if getattr(self, "gates_", None):
            omega = sum(gate.expected_nonzero(n) for _, gate, n in self.gates_)
            in_step = any(gate.noise is not None for _, gate, _ in self.gates_)
            return omega if in_step else omega.detach()
        return torch.as_tensor(count_nonzero(weights)[0], dtype=torch.float32)

    # -- training hooks ----------------------------------------------------------

    def on_train_begin(self, net, **kwargs):
        layers = dict(net.regularized_named_)
        self.gates_ = []
        for name in self._gated_names(net):
            n = layers[name].weight.numel()
            gate = attach_gate(layers[name], self.structure, self.init_density, self.temperature)
            self.gates_.append((name, gate, n))
        device = net.regularized_named_[0][1].weight.device
        self.epsilon_ = {g: eps for g, eps, _ in self._groups() if eps is not None}
        self.multipliers_ = {g: torch.zeros((), device=device) for g in self.epsilon_}
        self.violation_ = {}
        params = [gate.log_alpha for _, gate, _ in self.gates_]
        fused = {"fused": True} if device.type == "cpu" else {}
        self.optimizer_ = torch.optim.Adam(params, lr=self.gate_lr, **fused)

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            for _, gate, _ in self.gates_:
                gate.resample()

    def on_grad_computed(self, net, named_parameters, training=False, **kwargs):
        if not training:
            return
        for group, eps, members in self._groups():
            if eps is not None:
                self.violation_[group] = self._add_lagrangian_grad(group, eps, members)
        self.optimizer_.step()
        self.optimizer_.zero_grad(set_to_none=True)

    @torch.no_grad()
    def _add_lagrangian_grad(self, group, eps, members):
        """Add μ_g ∂g_g/∂log α to the gates' gradients (eq. 4); return g_g − ε_g.

        ∂g_g/∂log α_j = (weights per gate / #θ_g) · P_j (1 − P_j), written out
        rather than through autograd: one pass over the gates.
        """
        total = sum(n for _, n in members)
        mu, expected, fitted = self.multipliers_[group], 0.0, 0.0
        for gate, n in members:
            p = gate.prob_nonzero()
            per_gate = n / p.numel()
            expected = expected + p.sum() * (per_gate / total)
            # The median gate is open exactly where P(z ≠ 0) > 1/2.
            fitted = fitted + (p > 0.5).sum() * (per_gate / total)
            step = p * (1 - p) * (mu * per_gate / total)
            grad = gate.log_alpha.grad
            gate.log_alpha.grad = step if grad is None else grad.add_(step)
        density = fitted if self.proxy_constraint else expected
        return density - eps

    @torch.no_grad()
    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        for g, violation in self.violation_.items():
            self.multipliers_[g] = dual_step(
                self.multipliers_[g], violation, self.dual_lr, self.dual_restarts
            )
        for _, gate, _ in self.gates_:
            gate.log_alpha.clamp_(*_LOG_ALPHA_RANGE)

    @torch.no_grad()
    def on_epoch_end(self, net, **kwargs):
        # Later callbacks (the density record) then see the test-time network.
        for _, gate, _ in self.gates_:
            gate.noise = None
        density = {g: float(d) for g, d in self.expected_density().items()}
        net.history.record("expected_density", density)
        net.history.record("multiplier", {g: float(mu) for g, mu in self.multipliers_.items()})

    def on_train_end(self, net, **kwargs):
        layers = dict(net.regularized_named_)
        for name, _, _ in self.gates_:
            fold_gate(layers[name])
        self.multipliers_ = {g: float(mu) for g, mu in self.multipliers_.items()}
        self.gates_, self.optimizer_, self.violation_ = [], None, {}
