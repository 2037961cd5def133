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
from ._gates import (
    LIMITS,
    TEMPERATURE,
    StackedNoise,
    attach_gate,
    fold_gate,
    gate_shape,
    hard_concrete_sample,
    log_alpha_for,
    median_gate,
    prob_nonzero,
)
from ._regularizers import Regularizer

__all__ = ["dual_step", "lagrangian_grads", "HardConcrete"]

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


@torch.no_grad()
def lagrangian_grads(log_alphas, sizes, multiplier, temperature=TEMPERATURE, proxy=True):
    r"""μ ∂g/∂log α of every gate tensor (eq. 4), and the group's density g of each copy.

    ``log_alphas`` are the group's gate tensors, each with a leading copy axis
    ``(K, …)``; ``sizes`` the number of weights each gates; ``multiplier`` μ of
    each copy, shape (K,). With :math:`P_j = P(z_j \neq 0)` and ``n`` weights
    per gate, :math:`\partial g/\partial\log\alpha_j = (n / \#\theta_g)\,P_j(1 - P_j)`,
    written out rather than through autograd: one pass over the gates. The
    density returned is the median network's (``proxy``: a gate is open exactly
    where :math:`P_j > 1/2`) or the expected one.

    Examples
    --------
    >>> grads, density = lagrangian_grads([torch.zeros(1, 4)], [4], torch.ones(1))
    >>> round(float(density), 4), [round(float(g), 3) for g in grads[0][0]]
    (1.0, [0.035, 0.035, 0.035, 0.035])
    """
    total = sum(sizes)
    expected = fitted = 0.0
    grads = []
    for log_alpha, n in zip(log_alphas, sizes):
        p = prob_nonzero(log_alpha, temperature)
        per_gate = n / p[0].numel()
        expected = expected + p.flatten(1).sum(1) * (per_gate / total)
        fitted = fitted + (p > 0.5).flatten(1).sum(1) * (per_gate / total)
        mu = (multiplier * per_gate / total).view(-1, *[1] * (p.dim() - 1))
        grads.append(p * (1 - p) * mu)
    return grads, fitted if proxy else expected


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
    log_alpha_ : dict
        Layer name -> log α of its gates at the end of training (P(z ≠ 0) is
        ``prob_nonzero(log_alpha_[name])``).
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
        """Add μ_g ∂g_g/∂log α to the gates' gradients (eq. 4); return g_g − ε_g."""
        log_alphas = [gate.log_alpha[None] for gate, _ in members]
        mu = self.multipliers_[group].reshape(1)
        grads, density = lagrangian_grads(
            log_alphas, [n for _, n in members], mu, self.temperature, self.proxy_constraint
        )
        for (gate, _), step in zip(members, grads):
            grad = gate.log_alpha.grad
            gate.log_alpha.grad = step[0] if grad is None else grad.add_(step[0])
        return density[0] - eps

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
        self.log_alpha_ = {name: gate.log_alpha.detach().clone() for name, gate, _ in self.gates_}
        for name, _, _ in self.gates_:
            fold_gate(layers[name])
        self.multipliers_ = {g: float(mu) for g, mu in self.multipliers_.items()}
        self.gates_, self.optimizer_, self.violation_ = [], None, {}

    # -- the same, for K copies trained stacked (skprune.training._stack_hooks) --

    def stack_begin(self, stack):
        stack.state["gates"] = _StackedGates(self, stack)

    def stack_epoch_begin(self, stack):
        stack.state["gates"].unfold()

    def stack_batch_begin(self, stack):
        stack.state["gates"].sample()

    def stack_grad(self, stack):
        stack.state["gates"].backward(stack.lam if self.in_loss else None)

    def stack_penalty(self, stack):
        """Ω = E‖θ‖₀ of each copy (the penalised form's loss term), shape (K,)."""
        return sum(stack.state["gates"].expected_nonzero())

    def stack_batch_end(self, stack):
        stack.state["gates"].ascend()

    def stack_epoch_end(self, stack):
        stack.records.update(stack.state["gates"].records())
        stack.state["gates"].fold()

    def stack_end(self, stack):
        gates = stack.state.pop("gates")
        gates.fold()
        for k, copy in enumerate(stack.copies):
            gates.write_back(k, copy.net.regularizer)


class _StackedGates:
    """The gates, their optimiser and the multipliers of K copies trained stacked.

    Every tensor has a leading copy axis. Copy k's gates start as its separate
    fit's (:meth:`HardConcrete.on_train_begin`) and take the same steps: the
    noise from the copy's own generator (``copy.rng``, :class:`StackedNoise`),
    the gated weight ``θ̃ ⊙ z`` in the forward (written into the stacked weight
    in place, the magnitudes ``θ̃`` kept aside), the chain rule back to ``θ̃``
    and log α, the Lagrangian's gradient, Adam on log α, the dual step and the
    clamp. Between epochs the stacked weights hold the test-time network
    ``θ̃ ⊙ ẑ`` that the history records (and that ``fit`` returns).
    """

    def __init__(self, reg, stack):
        net = stack.copies[0].net
        layers = dict(net.regularized_named_)
        self.reg, self.names = reg, reg._gated_names(net)
        self.weights = [stack.weights[stack.names.index(f"{n}.weight")] for n in self.names]
        self.sizes = [layers[n].weight.numel() for n in self.names]
        init = log_alpha_for(reg.init_density, reg.temperature)
        self.log_alpha = [
            torch.full((stack.n_copies, *gate_shape(layers[n], reg.structure)), init)
            .to(w.device, w.dtype)
            .requires_grad_()
            for n, w in zip(self.names, self.weights)
        ]
        at = {n: i for i, n in enumerate(self.names)}
        if isinstance(reg.target_density, dict):
            self.groups = [(n, reg.target_density[n], [at[n]]) for n in self.names]
        else:
            self.groups = [("model", reg.target_density, list(at.values()))]
        self.epsilon = {g: eps for g, eps, _ in self.groups if eps is not None}
        self.multipliers = {g: stack.lam.new_zeros(stack.n_copies) for g in self.epsilon}
        self.violation = {}
        fused = {"fused": True} if stack.lam.device.type == "cpu" else {}
        self.optimizer = torch.optim.Adam(self.log_alpha, lr=reg.gate_lr, **fused)
        self.noise = StackedNoise([c.rng for c in stack.copies])
        self.raw = [torch.empty_like(w) for w in self.weights]  # θ̃ while w holds θ̃ ⊙ z
        self.z, self.folded = None, False

    @torch.no_grad()
    def _gate_weights(self, gates):
        for w, raw, z in zip(self.weights, self.raw, gates):
            raw.copy_(w)
            w.mul_(z)

    def sample(self):
        """A new sample of every gate, and the weights the forward pass uses: θ̃ ⊙ z."""
        reg = self.reg
        noise = self.noise.draw([la.shape[1:] for la in self.log_alpha], self.log_alpha[0].dtype)
        self.z = [
            hard_concrete_sample(la, None, reg.temperature, LIMITS, logistic=u)
            for la, u in zip(self.log_alpha, noise)
        ]
        self._gate_weights(self.z)

    def backward(self, lam=None):
        """∂L/∂θ̃ = ∂L/∂θ ⊙ z and ∂L/∂log α through z, the Lagrangian's pull (or
        λ·∂E‖θ‖₀/∂log α of the penalised form, with ``lam``), Adam on log α."""
        with torch.no_grad():
            grads_z = [(w.grad * raw).sum_to_size(z.shape) for w, raw, z in self._zipped()]
        torch.autograd.backward(self.z, grads_z)
        with torch.no_grad():
            for w, raw, z in self._zipped():
                w.copy_(raw)
                w.grad.mul_(z)
        self.z = None
        if lam is not None:
            self._add_penalty_grad(lam)
        for group, eps, members in self.groups:
            if eps is not None:
                self.violation[group] = self._add_lagrangian_grad(group, members) - eps
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _zipped(self):
        return zip(self.weights, self.raw, self.z)

    @torch.no_grad()
    def _add_penalty_grad(self, lam):
        """λ·∂E‖θ‖₀/∂log α_j = λ·(weights per gate)·P_j(1 − P_j) (Gallego-Posada eq. 2–3)."""
        for la, n in zip(self.log_alpha, self.sizes):
            p = prob_nonzero(la, self.reg.temperature)
            la.grad.add_(p * (1 - p) * (lam * (n / p[0].numel())).view(-1, *[1] * (p.dim() - 1)))

    @torch.no_grad()
    def expected_nonzero(self):
        """E‖z‖₀ of each gate tensor in weights, per copy (as ``HardConcreteGate`` counts it)."""
        return [
            prob_nonzero(la, self.reg.temperature).flatten(1).sum(1) * (n / la[0].numel())
            for la, n in zip(self.log_alpha, self.sizes)
        ]

    def _add_lagrangian_grad(self, group, members):
        grads, density = lagrangian_grads(
            [self.log_alpha[i] for i in members],
            [self.sizes[i] for i in members],
            self.multipliers[group],
            self.reg.temperature,
            self.reg.proxy_constraint,
        )
        for i, step in zip(members, grads):
            self.log_alpha[i].grad.add_(step)
        return density

    @torch.no_grad()
    def ascend(self):
        """The multipliers' dual step (eq. 5–6) and the clamp of log α."""
        reg = self.reg
        for g, violation in self.violation.items():
            self.multipliers[g] = dual_step(
                self.multipliers[g], violation, reg.dual_lr, reg.dual_restarts
            )
        for la in self.log_alpha:
            la.clamp_(*_LOG_ALPHA_RANGE)

    @torch.no_grad()
    def records(self):
        """Each copy's history entries of the epoch, as :meth:`HardConcrete.on_epoch_end`
        and the density record (Ω = E‖θ‖₀ while the gates are on) write them."""
        nonzero = self.expected_nonzero()
        density = {
            g: (sum(nonzero[i] for i in m) / sum(self.sizes[i] for i in m)).tolist()
            for g, _, m in self.groups
        }
        mu = {g: m.tolist() for g, m in self.multipliers.items()}
        n_copies = len(self.log_alpha[0])
        return {
            "expected_density": [{g: d[k] for g, d in density.items()} for k in range(n_copies)],
            "multiplier": [{g: m[k] for g, m in mu.items()} for k in range(n_copies)],
            "penalty": sum(nonzero).tolist(),
        }

    def fold(self):
        """The stacked weights become the test-time network θ̃ ⊙ ẑ (median gates)."""
        if not self.folded:
            medians = [median_gate(la.detach(), self.reg.temperature) for la in self.log_alpha]
            self._gate_weights(medians)
            self.folded = True

    @torch.no_grad()
    def unfold(self):
        """The stacked weights hold the magnitudes θ̃ again."""
        if self.folded:
            for w, raw in zip(self.weights, self.raw):
                w.copy_(raw)
            self.folded = False

    def write_back(self, k, reg):
        """Copy k's gates and multipliers into its own regularizer, as its separate fit ends."""
        reg.log_alpha_ = {n: la[k].detach().clone() for n, la in zip(self.names, self.log_alpha)}
        reg.multipliers_ = {g: float(mu[k]) for g, mu in self.multipliers.items()}
        reg.epsilon_ = dict(self.epsilon)
        reg.gates_, reg.optimizer_, reg.violation_ = [], None, {}
