"""Optimisers by name, and the stochastic multi-gradient optimisers of Reiners §3.2.

Weight updates stay in torch optimisers: a name resolves to an optimiser class
and its default keyword arguments, which ``optimizer__<name>=...`` overrides.

The multi-objective optimisers (:class:`SMGD`, :class:`MAdam`,
:class:`MRMSProp`) train on the loss E and the regulariser Ω as *two*
objectives instead of their weighted sum: at every step they take the weight
λ* of the steepest common descent direction (Reiners eq. 15, Algorithm 2),

.. math::

    λ^* = \\arg\\min_{λ \\in [0, 1]} \\|(1 - λ)\\, g_1 + λ\\, g_2\\|^2,

with :math:`g_1 = ∇E` of the batch (the ``.grad`` that autograd leaves, the
loss being E alone) and :math:`g_2 = ∇Ω` (the regulariser's analytic ``grad``,
zero for the weights it does not regularise). The estimator switches the
penalty off in the loss and hands them Ω through :meth:`set_objective`.

Stacked (:mod:`skprune.training._stack_loop`: K copies of a network, each
parameter a ``(K, …)`` tensor), ``set_objective(..., n_copies=K)`` makes each
copy choose its own λ* from its own two gradients: λ* is then a ``(K,)``
tensor, the update scales each copy's slice by its own weight, and each
entry of :attr:`~MultiObjectiveOptimizer.lambda_history` holds the K values.
"""

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.optim.adam import adam

__all__ = [
    "min_norm_weight",
    "MultiObjectiveOptimizer",
    "SMGD",
    "MAdam",
    "MRMSProp",
    "LambdaHistory",
    "lambda_history",
]


def _min_norm_from_dots(g11, g12, g22):
    """λ* from the inner products ``g1·g1``, ``g1·g2``, ``g2·g2`` (tensors or floats)."""
    g11, g12, g22 = (torch.as_tensor(x, dtype=torch.float64) for x in (g11, g12, g22))
    denom = g11 - 2 * g12 + g22
    # g1 == g2: every λ gives the same direction; take the loss's (λ = 0).
    lam = torch.where(denom > 0, (g11 - g12) / denom.clamp_min(1e-300), 0.0)
    return lam.clamp(0.0, 1.0)


def min_norm_weight(g1, g2):
    r"""The weight λ* of the min-norm point of two gradients (Reiners eq. 15).

    Solves :math:`\min_{λ \in [0, 1]} \|(1 - λ) g_1 + λ g_2\|^2` in closed form:

    .. math::

        λ^* = \operatorname{clip}\left(
            \frac{g_1 \cdot (g_1 - g_2)}{\|g_1 - g_2\|^2}, 0, 1\right),

    the stationary point of the convex quadratic in λ, clipped to the simplex.
    When ``g1 == g2`` every λ gives the same direction and 0 is returned.

    Parameters
    ----------
    g1, g2 : array-like of the same shape
        The two (stochastic) gradients, flattened over the whole weight vector.

    Returns
    -------
    lam : float in [0, 1]

    Examples
    --------
    >>> min_norm_weight([1.0, 0.0], [0.0, 1.0])
    0.5
    >>> min_norm_weight([1.0, 0.0], [2.0, 0.0])  # the shorter one wins
    0.0
    >>> min_norm_weight([3.0, 1.0], [1.0, 0.0])
    1.0
    >>> min_norm_weight([1.0, 0.0], [-1.0, 0.0])  # opposed: the zero vector
    0.5
    """
    g1, g2 = _flat64(g1), _flat64(g2)
    return float(_min_norm_from_dots(g1 @ g1, g1 @ g2, g2 @ g2))


def _flat64(g):
    if isinstance(g, torch.Tensor):
        return g.detach().reshape(-1).double()
    return torch.as_tensor(np.asarray(g, dtype=np.float64)).reshape(-1)


class MultiObjectiveOptimizer(torch.optim.Optimizer):
    """Base class of the stochastic multi-gradient optimisers (Reiners §3.2).

    A subclass implements :meth:`_update` for one parameter group. This class
    gathers :math:`g_1` (the parameters' ``.grad``) and :math:`g_2 = ∇Ω` of the
    regularised weights, solves eq. (15) for λ* over the whole weight vector
    and appends λ* (a 0-d tensor on the parameters' device, so no
    synchronisation per step) to :attr:`lambda_history`.

    Parameters
    ----------
    lam : float in [0, 1] or None, default=None
        Holds λ fixed instead of solving eq. (15) at every step (a weighted sum
        with the per-objective moments of :class:`MAdam` / :class:`MRMSProp`).
        With no second objective set (:meth:`set_objective` not called) λ is 0.
    """

    def __init__(self, params, defaults, lam=None):
        if lam is not None and not 0 <= lam <= 1:
            raise ValueError(
                f"The 'lam' parameter of {type(self).__name__} must be None or in "
                f"[0, 1]. Got {lam!r} instead."
            )
        super().__init__(params, defaults)
        self.lam = lam
        self.lambda_history = []
        self.regularizer, self.regularized = None, []
        self.n_copies, self._grad = None, None

    def set_objective(self, regularizer, weights, n_copies=None, grad=None):
        """Use ``regularizer`` (Ω) of ``weights`` as the second objective.

        With ``n_copies`` K the parameters are K stacked copies (a leading axis
        of size K) and each copy gets its own λ*; ``grad`` then gives ∂Ω/∂w of a
        stacked tensor (default: ``regularizer.gradients``, right for an
        elementwise Ω).
        """
        self.regularizer, self.regularized = regularizer, list(weights)
        self.n_copies, self._grad = n_copies, grad

    def _omega_grads(self, params):
        """∇Ω for those of ``params`` that are regularised (dict id -> tensor)."""
        regularized = {id(w) for w in self.regularized}
        weights = [p for p in params if id(p) in regularized]
        if self.regularizer is None or not weights:
            return {}
        grads = (
            [self._grad(w) for w in weights] if self._grad else self.regularizer.gradients(weights)
        )
        return {id(w): g for w, g in zip(weights, grads)}

    def _choose_lambda(self, params, omega):
        """λ* of eq. (15) over the whole weight vector (g₂ = 0 off Ω's weights)."""
        device = params[0].device
        if self.n_copies is not None:
            return self._choose_lambdas(params, omega)
        if self.lam is not None or not omega:
            return torch.tensor(self.lam or 0.0, device=device)
        g1 = [p.grad for p in params]
        g11 = torch.stack(torch._foreach_norm(g1)).square().sum()
        pairs = [(p.grad.reshape(-1), omega[id(p)].reshape(-1)) for p in params if id(p) in omega]
        g12 = sum(torch.dot(a, b) for a, b in pairs)
        g22 = sum(torch.dot(b, b) for _, b in pairs)
        return _min_norm_from_dots(g11, g12, g22).to(device=device, dtype=g1[0].dtype)

    def _choose_lambdas(self, params, omega):
        """λ* of eq. (15) of each of the K stacked copies, (K,): its own two gradients."""
        device, dtype = params[0].device, params[0].grad.dtype
        if self.lam is not None or not omega:
            return torch.full((self.n_copies,), self.lam or 0.0, device=device, dtype=dtype)

        def dot(a, b):  # per copy, over one tensor's other axes
            return (a.flatten(1) * b.flatten(1)).sum(1)

        g11 = sum(dot(p.grad, p.grad) for p in params)
        g12 = sum(dot(p.grad, omega[id(p)]) for p in params if id(p) in omega)
        g22 = sum(dot(omega[id(p)], omega[id(p)]) for p in params if id(p) in omega)
        return _min_norm_from_dots(g11, g12, g22).to(device=device, dtype=dtype)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]
        params = [p for ps in groups for p in ps]
        if not params:
            return loss
        omega = self._omega_grads(params)
        lam = self._choose_lambda(params, omega)
        self.lambda_history.append(lam)
        for group, ps in zip(self.param_groups, groups):
            if ps:
                self._update(group, ps, omega, lam)
        return loss

    def _update(self, group, params, omega, lam):
        """Move ``params`` along their update combined with weight ``lam``."""
        raise NotImplementedError


def _objective_state(optimizer, params, suffix, keys, step_device=None):
    """Per-param moments ``key + suffix`` of one objective, zeros at first use.

    With ``step_device`` the state also counts the objective's steps in a
    float32 tensor ``"step" + suffix``, as :class:`torch.optim.Adam` does
    (``"param"``: on the parameter's device).
    """
    states = [optimizer.state[p] for p in params]
    for p, state in zip(params, states):
        if keys[0] + suffix not in state:
            state.update({key + suffix: torch.zeros_like(p) for key in keys})
            if step_device is not None:
                device = p.device if step_device == "param" else step_device
                state["step" + suffix] = torch.zeros((), dtype=torch.float32, device=device)
    return states


class SMGD(MultiObjectiveOptimizer):
    r"""Stochastic multi-gradient descent (Reiners Algorithm 2).

    .. math::

        w^{k+1} = w^k - t_k \left((1 - λ^k) g_1^k + λ^k g_2^k\right)

    with λ^k from eq. (15) (see :func:`min_norm_weight`). With ``momentum``
    μ > 0 the combined direction goes through a heavy-ball buffer as in
    :class:`torch.optim.SGD` (the Keras SGD the paper's SMGD is built on).

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float, default=1e-3
    momentum : float >= 0, default=0.0
    lam : float in [0, 1] or None, default=None
        See :class:`MultiObjectiveOptimizer`.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, lam=None):
        super().__init__(params, {"lr": lr, "momentum": momentum}, lam=lam)

    def _update(self, group, params, omega, lam):
        if lam.dim():  # stacked copies: each its own λ*, one tensor at a time
            direction = [p.grad * (1 - _per_copy(lam, p)) for p in params]
            for p, d in zip(params, direction):
                if id(p) in omega:
                    d.addcmul_(omega[id(p)], _per_copy(lam, p))
        else:
            direction = torch._foreach_mul([p.grad for p in params], 1 - lam)
        reg = [(d, omega[id(p)]) for p, d in zip(params, direction) if id(p) in omega]
        if reg and not lam.dim():
            torch._foreach_add_([d for d, _ in reg], torch._foreach_mul([g for _, g in reg], lam))
        if group["momentum"]:
            states = _objective_state(self, params, "", ["momentum_buffer"])
            bufs = [s["momentum_buffer"] for s in states]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, direction)
            direction = bufs
        torch._foreach_add_(params, direction, alpha=-group["lr"])


class _PerObjectiveMoments(MultiObjectiveOptimizer):
    """Moments kept per objective, combined with λ only in the update (§3.2).

    The update is a sum over the objectives, so each objective j moves the
    weights by its own rule with the rate scaled by its weight (1 − λ or λ):
    subclasses implement :meth:`_objective_step` for one objective.
    """

    def _update(self, group, params, omega, lam):
        self._objective_step(group, params, [p.grad for p in params], "", 1 - lam)
        reg = [p for p in params if id(p) in omega]
        if reg:
            self._objective_step(group, reg, [omega[id(p)] for p in reg], "_omega", lam)

    def _objective_step(self, group, params, grads, suffix, weight):
        """``w -= lr · weight · direction_j``, updating objective j's moments."""
        raise NotImplementedError


def _per_copy(weight, p):
    """A weight per copy (K,) shaped to broadcast over a stacked tensor ``p`` (K, …)."""
    return weight.view(-1, *[1] * (p.dim() - 1))


def _has_fused_adam(device):
    """Whether torch's fused Adam kernel runs on ``device``."""
    return device.type in ("cpu", "cuda")


class MAdam(_PerObjectiveMoments):
    r"""Multi-objective Adam (Reiners §3.2).

    Keeps Adam's moments (eq. 13) *separately* for each objective j — for
    :math:`g_1 = ∇E` on every parameter, for :math:`g_2 = ∇Ω` on the
    regularised weights — and combines them with λ* of eq. (15) only in the
    weight update (eq. 14):

    .. math::

        w^{k+1} = w^k - t_k \left((1 - λ^k) \frac{\hat m_1^k}{\sqrt{\hat v_1^k} + ε}
                  + λ^k \frac{\hat m_2^k}{\sqrt{\hat v_2^k} + ε}\right).

    Each objective's term is one call of torch's Adam kernel (fused on CPU
    and CUDA) with the rate :math:`t_k (1 - λ^k)` or :math:`t_k λ^k`, so with
    λ held at 0 it takes exactly the steps of :class:`torch.optim.Adam` on the
    loss alone.

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    lam : float in [0, 1] or None, default=None
        See :class:`MultiObjectiveOptimizer`.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, lam=None):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps}, lam=lam)

    def _objective_step(self, group, params, grads, suffix, weight):
        if weight.dim():  # stacked copies: a rate per copy, which no kernel of torch takes
            return self._per_copy_step(group, params, grads, suffix, weight)
        # The fused kernel takes the rate as a tensor: λ needs no host sync.
        fused = _has_fused_adam(params[0].device)
        keys = ("exp_avg", "exp_avg_sq")
        states = _objective_state(self, params, suffix, keys, "param" if fused else "cpu")
        m, v, steps = ([s[key + suffix] for s in states] for key in (*keys, "step"))
        beta1, beta2 = group["betas"]
        adam(params, grads, m, v, [], steps, fused=fused, foreach=False, amsgrad=False,
             beta1=beta1, beta2=beta2, lr=group["lr"] * weight, weight_decay=0.0,
             eps=group["eps"], maximize=False)  # fmt: skip

    def _per_copy_step(self, group, params, grads, suffix, weight):
        """Adam's step (the fused kernel's arithmetic) with copy k's rate ``lr · weight[k]``."""
        keys = ("exp_avg", "exp_avg_sq")
        states = _objective_state(self, params, suffix, keys, "param")
        beta1, beta2 = group["betas"]
        for p, g, state in zip(params, grads, states):
            m, v, step = (state[key + suffix] for key in (*keys, "step"))
            step += 1
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / (1 - beta2**step).sqrt()).add_(group["eps"])
            rate = _per_copy(weight, p) * (group["lr"] / (1 - beta1**step))
            p.addcdiv_(m * rate, denom, value=-1)


class MRMSProp(_PerObjectiveMoments):
    r"""Multi-objective RMSProp (Reiners §3.2).

    Keeps the moving average of the squared gradient (eq. 11) separately for
    each objective and combines the scaled gradients with λ* of eq. (15) only
    in the weight update (eq. 12):

    .. math::

        w^{k+1} = w^k - t_k \left((1 - λ^k) \frac{g_1^k}{\sqrt{\mathrm{mov}_1^k} + ε}
                  + λ^k \frac{g_2^k}{\sqrt{\mathrm{mov}_2^k} + ε}\right).

    With λ held at 0 it takes the steps of :class:`torch.optim.RMSprop`.

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float, default=1e-3
    alpha : float, default=0.99
        β of eq. (11), named as in :class:`torch.optim.RMSprop`.
    eps : float, default=1e-8
    lam : float in [0, 1] or None, default=None
        See :class:`MultiObjectiveOptimizer`.
    """

    def __init__(self, params, lr=1e-3, alpha=0.99, eps=1e-8, lam=None):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps}, lam=lam)

    def _objective_step(self, group, params, grads, suffix, weight):
        alpha = group["alpha"]
        states = _objective_state(self, params, suffix, ["square_avg"])
        v = [s["square_avg" + suffix] for s in states]
        torch._foreach_mul_(v, alpha)
        torch._foreach_addcmul_(v, grads, grads, 1 - alpha)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, group["eps"])
        if weight.dim():  # stacked copies: each its own weight
            scaled = [g * (_per_copy(weight, p) * -group["lr"]) for p, g in zip(params, grads)]
        else:  # λ stays a tensor (no host sync): it is folded into the scaled gradient.
            scaled = torch._foreach_mul(grads, -group["lr"] * weight)
        torch._foreach_addcdiv_(params, scaled, denom)


def lambda_history(optimizer):
    """The λ* of every step of a multi-objective optimiser (ndarray), else None."""
    if not isinstance(optimizer, MultiObjectiveOptimizer):
        return None
    lambdas = optimizer.lambda_history
    if not lambdas:
        return np.empty(0)
    return torch.stack(lambdas).double().cpu().numpy()


class LambdaHistory(Callback):
    """Records in ``net.history`` the mean λ* of each epoch's steps as ``lambda``."""

    def initialize(self):
        self.seen_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        lambdas = net.optimizer_.lambda_history[self.seen_ :]
        self.seen_ += len(lambdas)
        mean = float(torch.stack(lambdas).double().mean()) if lambdas else float("nan")
        net.history.record("lambda", mean)

    # -- stacked: the optimiser's entries are (K,), one λ* per copy -----------------

    def stack_begin(self, stack):
        self.seen_ = 0
        stack.state["lambda"] = [0] * stack.n_copies  # the steps each copy has trained

    def stack_epoch_end(self, stack):
        """Each copy's mean λ* of the epoch."""
        lambdas = stack.optimizer.lambda_history[self.seen_ :]
        self.seen_ += len(lambdas)
        steps = stack.state["lambda"]
        for k, training in enumerate(stack.training):
            steps[k] += len(lambdas) if training else 0
        mean = torch.stack(lambdas).double().mean(0).tolist() if lambdas else None
        stack.records["lambda"] = mean or [float("nan")] * stack.n_copies

    def stack_end(self, stack):
        """Each copy's own optimiser gets its λ* of the steps it trained."""
        lambdas = stack.optimizer.lambda_history
        for k, (c, steps) in enumerate(zip(stack.copies, stack.state["lambda"])):
            c.net.optimizer_.lambda_history = [lam[k] for lam in lambdas[:steps]]
            dict(c.net.callbacks_)["lambda"].seen_ = steps
