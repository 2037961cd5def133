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

import torch
from skorch.callbacks import Callback

__all__ = [
    "Regularizer",
    "L1",
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


def _l1(estimator, **params):
    return L1(**params)


#: name -> ``factory(estimator, **regularizer__params)`` returning a regularizer
REGULARIZERS = {"l1": _l1}


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
