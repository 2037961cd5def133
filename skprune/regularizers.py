"""Complexity objectives Ω and how they enter training.

The regularizer protocol
------------------------
A regularizer is a skorch :class:`~skorch.callbacks.Callback` (so it may react to
``on_train_begin``, ``on_batch_end``, ... and write to ``net.history``) with:

``penalty(weights) -> torch.Tensor``
    Ω summed over the regularised weight tensors (a 0-d tensor). It is what
    ``objectives_`` and ``history_["penalty"]`` report.
``grad(w) -> torch.Tensor or None``
    ∂Ω/∂w for one tensor, computed without autograd; the training loss
    ``(1 − λ)·E + λ·Ω`` (Reiners eq. 7) backpropagates λ times this into the
    weights. Return ``None`` to let autograd differentiate :meth:`penalty`, and
    set ``in_loss = False`` for regularizers that act outside the loss (LOBSTER's
    shrinkage after the optimiser step).

Any object with a ``penalty`` method works as ``regularizer=``; the other hooks
are optional.
"""

import inspect
from numbers import Real

import torch
from skorch.callbacks import Callback

__all__ = [
    "Regularizer",
    "L1",
    "L2",
    "L0",
    "L2L0",
    "smooth_l0",
    "smooth_l0_grad",
    "has_analytic_grad",
    "penalty_term",
    "REGULARIZERS",
    "make_regularizer",
]


class Regularizer(Callback):
    """Base class of the complexity objectives Ω (see the module docstring)."""

    #: Whether λ·Ω enters the training loss (else the regularizer acts itself).
    in_loss = True

    def penalty(self, weights):
        raise NotImplementedError

    def grad(self, w):
        return None


class L1(Regularizer):
    r"""ℓ1 complexity :math:`Ω_{\ell_1}(w) = \sum_i |w_i|` (Reiners eq. 4).

    Its gradient is the subgradient :math:`\operatorname{sign}(w)`, taken as 0 at
    :math:`w = 0` so that pruned weights feel no pull.

    Examples
    --------
    >>> import torch
    >>> L1().penalty([torch.tensor([1.0, -2.0]), torch.tensor([0.5])])
    tensor(3.5000)
    >>> L1().grad(torch.tensor([3.0, 0.0, -0.1]))
    tensor([ 1.,  0., -1.])
    """

    def penalty(self, weights):
        return sum(w.detach().abs().sum() for w in weights)

    def grad(self, w):
        return torch.sign(w.detach())


class L2(Regularizer):
    r"""ℓ2 complexity :math:`Ω_{\ell_2}(w) = \tfrac12 \sum_i w_i^2` (Reiners eq. 3).

    Its gradient is :math:`w` itself: weight decay, whose pull on a weight
    shrinks with its magnitude (Oliveira §3.2), so small weights approach zero
    slowly.

    Examples
    --------
    >>> import torch
    >>> L2().penalty([torch.tensor([1.0, -2.0]), torch.tensor([0.5])])
    tensor(2.6250)
    >>> L2().grad(torch.tensor([3.0, 0.0, -0.1]))
    tensor([ 3.0000,  0.0000, -0.1000])
    """

    def penalty(self, weights):
        return sum(0.5 * w.detach().square().sum() for w in weights)

    def grad(self, w):
        return w.detach().clone()


def smooth_l0(w, beta):
    r"""Smooth ℓ0 of one tensor, :math:`\sum_j 1 - e^{-β|w_j|}` (Oliveira eq. 11).

    It tends to the number of non-zero weights as β → ∞.

    Examples
    --------
    >>> import torch
    >>> round(float(smooth_l0(torch.tensor([0.0, 1.0, -1.0]), beta=2.0)), 4)
    1.7293
    """
    return (1.0 - torch.exp(-beta * w.detach().abs())).sum()


def smooth_l0_grad(w, beta):
    r"""∂/∂w of :func:`smooth_l0`: :math:`β\,\operatorname{sign}(w)\,e^{-β|w|}` (Oliveira eq. 13).

    The pull towards zero grows as a weight shrinks (at most β, at ``w → 0``);
    it is 0 at ``w = 0`` so that pruned weights feel no pull.

    Examples
    --------
    >>> import torch
    >>> smooth_l0_grad(torch.tensor([0.0, 1.0, -1.0]), beta=2.0)
    tensor([ 0.0000,  0.2707, -0.2707])
    """
    w = w.detach()
    return beta * torch.sign(w) * torch.exp(-beta * w.abs())


def _check_positive(owner, name, value):
    if not (isinstance(value, Real) and not isinstance(value, bool) and value > 0):
        raise ValueError(
            f"The '{name}' parameter of {type(owner).__name__} must be a float > 0 "
            f"(regularizer__{name}). Got {value!r} instead."
        )


class L0(Regularizer):
    r"""Smooth ℓ0 complexity :math:`Ω(w) = \sum_j 1 - e^{-β|w_j|}` (Oliveira eq. 11).

    Training on ``(1 − λ)·E + λ·Ω`` gives the update of Oliveira eq. (14), with
    Oliveira's α standing for λ/(1 − λ): the zero attraction
    :math:`λβ\operatorname{sign}(w)e^{-β|w|}` is strongest for the smallest
    weights and vanishes for large ones.

    Parameters
    ----------
    beta : float > 0, default=10.0
        β, the sharpness of the approximation (Oliveira uses β ≥ 1; the pull
        is felt by weights with ``|w| ≲ 1/β``). Set as ``regularizer__beta``.

    Examples
    --------
    >>> import torch
    >>> L0(beta=2.0).penalty([torch.tensor([0.0, 1.0]), torch.tensor([-1.0])])
    tensor(1.7293)
    """

    def __init__(self, beta=10.0):
        self.beta = beta

    def initialize(self):
        _check_positive(self, "beta", self.beta)
        return super().initialize()

    def penalty(self, weights):
        return sum(smooth_l0(w, self.beta) for w in weights)

    def grad(self, w):
        return smooth_l0_grad(w, self.beta)


class L2L0(Regularizer):
    r"""Combined ℓ2 + smooth ℓ0 complexity (Oliveira eq. 15).

    .. math:: Ω(w) = \frac{α}{2} \sum_j w_j^2 + \sum_j \left(1 - e^{-β|w_j|}\right)

    With the estimator's weighting ``(1 − λ)·E + λ·Ω``, λ is the strength of
    the ℓ0 part and λ·α that of the ℓ2 part: Oliveira's two strengths
    :math:`α_{\ell_0}` and :math:`α_{\ell_2}` (up to the factor 2 of their
    :math:`\|w\|_2^2`). ℓ2 curbs overfitting, ℓ0 drives small weights to zero.

    Parameters
    ----------
    alpha : float > 0, default=1.0
        α, the weight of the ℓ2 part relative to the ℓ0 part
        (``regularizer__alpha``).
    beta : float > 0, default=10.0
        β of the smooth ℓ0 part (``regularizer__beta``).

    Examples
    --------
    >>> import torch
    >>> L2L0(alpha=2.0, beta=2.0).penalty([torch.tensor([0.0, 1.0, -1.0])])
    tensor(3.7293)
    >>> L2L0(alpha=2.0, beta=2.0).grad(torch.tensor([0.0, 1.0]))
    tensor([0.0000, 2.2707])
    """

    def __init__(self, alpha=1.0, beta=10.0):
        self.alpha = alpha
        self.beta = beta

    def initialize(self):
        _check_positive(self, "alpha", self.alpha)
        _check_positive(self, "beta", self.beta)
        return super().initialize()

    def penalty(self, weights):
        return sum(
            0.5 * self.alpha * w.detach().square().sum() + smooth_l0(w, self.beta) for w in weights
        )

    def grad(self, w):
        return self.alpha * w.detach() + smooth_l0_grad(w, self.beta)


class _AnalyticPenalty(torch.autograd.Function):
    """Ω as an autograd leaf whose backward is the regularizer's own ``grad``.

    No graph is built through ``|w|``: the forward is one reduction per tensor
    and the backward one elementwise op, so the penalty costs almost nothing.
    """

    @staticmethod
    def forward(ctx, regularizer, *weights):
        ctx.regularizer = regularizer
        ctx.save_for_backward(*weights)
        return torch.as_tensor(regularizer.penalty(weights), dtype=weights[0].dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grads = [ctx.regularizer.grad(w) for w in ctx.saved_tensors]
        torch._foreach_mul_(grads, grad_output)
        return (None, *grads)


def has_analytic_grad(regularizer, weights):
    """Whether ``regularizer.grad`` gives ∂Ω/∂w (else autograd differentiates Ω)."""
    grad = getattr(regularizer, "grad", None)
    return grad is not None and grad(weights[0]) is not None


def penalty_term(regularizer, weights, analytic=True):
    """Ω(weights) as a differentiable scalar; see :func:`has_analytic_grad`.

    Examples
    --------
    >>> w = torch.tensor([1.0, -2.0], requires_grad=True)
    >>> penalty_term(L1(), [w]).backward()
    >>> w.grad
    tensor([ 1., -1.])
    """
    if not analytic:
        return regularizer.penalty(weights)
    return _AnalyticPenalty.apply(regularizer, *weights)


def _plain(cls):
    def factory(estimator, **params):
        allowed = list(inspect.signature(cls).parameters)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(
                f"regularizer={estimator.regularizer!r} got unknown parameters "
                f"{['regularizer__' + k for k in unknown]}; it takes "
                f"{['regularizer__' + k for k in allowed] or 'none'}."
            )
        return cls(**params)

    return factory


def _lobster(estimator, **params):
    from .lobster import LOBSTER  # imports this module: not at the top

    return _plain(LOBSTER)(estimator, **params)


def _hard_concrete(estimator, **params):
    from .constrained import make_hard_concrete

    return make_hard_concrete(estimator, **params)


#: name -> ``factory(estimator, **regularizer__params)`` returning a regularizer
REGULARIZERS = {
    "l1": _plain(L1),
    "l2": _plain(L2),
    "l0": _plain(L0),
    "l2_l0": _plain(L2L0),
    "lobster": _lobster,
    "hard_concrete": _hard_concrete,
}


def make_regularizer(estimator):
    """The regularizer object that ``estimator.regularizer`` names, or None."""
    spec = estimator.regularizer
    params = estimator._prefixed_params("regularizer")
    if spec is None:
        return None
    if isinstance(spec, str):
        return REGULARIZERS[spec](estimator, **params)
    from sklearn.base import clone

    return clone(spec).set_params(**params) if hasattr(spec, "set_params") else spec
