"""Complexity objectives Ω and how they enter training.

Every Ω is a :class:`Regularizer`: a parameter object (:class:`~skprune._part.Part`:
``get_params``, ``set_params``, ``repr``, ``validate``) and a skorch callback (it may react to
``on_train_begin``, ``on_batch_end``, ... and write to ``net.history``) with one
required method, :meth:`Regularizer.penalty`, an optional analytic gradient
:meth:`Regularizer.grad`, and its behaviour declared once as class attributes.
The training loss ``(1 − λ)·E + λ·Ω`` (Reiners eq. 7) and the multi-objective
optimisers both take ∇Ω from :meth:`Regularizer.gradients`.
"""

from abc import ABC, abstractmethod
from numbers import Real

import torch
from sklearn.utils._param_validation import Interval
from skorch.callbacks import Callback

from ._part import Part

__all__ = [
    "Regularizer",
    "ElementwiseRegularizer",
    "L1",
    "L2",
    "L0",
    "L2L0",
    "smooth_l0",
    "smooth_l0_grad",
]


class Regularizer(Part, Callback, ABC):
    """Base class of the complexity objectives Ω.

    Subclasses implement :meth:`penalty`; those whose ∂Ω/∂w is known in closed
    form also implement :meth:`grad`, which spares autograd a graph through Ω.
    Parameters are ``__init__`` arguments, stored unchanged, settable as
    ``regularizer__<name>`` and checked by :meth:`validate` against
    ``_parameter_constraints``.

    Attributes
    ----------
    in_loss : bool, class attribute, default=True
        Whether λ·Ω enters the training loss. ``False`` for regularizers that
        act on the weights themselves (LOBSTER's shrinkage after each step).
    prunes_itself : bool, class attribute, default=False
        Whether the regularizer makes its own zeros (the hard-concrete gates):
        ``pruning="auto"`` then adds no pruning.
    estimator_params : tuple of str, class attribute, default=()
        Estimator parameters the regularizer takes as its own arguments of
        the same name (``target_density`` for the gates).
    """

    in_loss = True
    prunes_itself = False
    estimator_params = ()

    @abstractmethod
    def penalty(self, weights):
        """Ω summed over the weight tensors ``weights``, a 0-d tensor."""

    def grad(self, w):
        """∂Ω/∂w of one tensor in closed form; ``None`` lets autograd differentiate Ω."""
        return None

    def terms(self, w):
        """Ω's elementwise terms of one tensor when Ω is their sum, else ``None``.

        With them the stacked engine (:mod:`skprune.engine`) takes Ω of each of
        its copies with one reduction per tensor.
        """
        return None

    @property
    def analytic(self):
        """Whether :meth:`grad` is implemented (else autograd differentiates Ω)."""
        return type(self).grad is not Regularizer.grad

    def gradients(self, weights):
        """∇Ω of every tensor of ``weights``: :meth:`grad`, or autograd through :meth:`penalty`.

        Examples
        --------
        >>> L1().gradients([torch.tensor([2.0, -1.0, 0.0])])
        [tensor([ 1., -1.,  0.])]
        """
        if self.analytic:
            return [self.grad(w) for w in weights]
        with torch.enable_grad():
            leaves = [w.detach().requires_grad_() for w in weights]
            grads = torch.autograd.grad(self.penalty(leaves), leaves, allow_unused=True)
        return [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]

    def loss_term(self, weights):
        """Ω as a differentiable scalar for the training loss.

        With an analytic :meth:`grad` no graph is built through Ω: its backward
        is one elementwise call per tensor.

        Examples
        --------
        >>> w = torch.tensor([1.0, -2.0], requires_grad=True)
        >>> L1().loss_term([w]).backward()
        >>> w.grad
        tensor([ 1., -1.])
        """
        if not self.analytic:
            return self.penalty(weights)
        return _AnalyticPenalty.apply(self, *weights)

    def validate(self, estimator=None):
        """Check the parameters, and the regularizer against ``estimator``'s other settings.

        Called once at the top of ``fit``, before any training; raises a
        ``ValueError`` naming the parameter, its value and what is allowed.
        A subclass adding checks calls ``super().validate(estimator)`` first.
        """
        return super().validate(estimator)


class ElementwiseRegularizer(Regularizer):
    """A Ω that is the sum of elementwise terms: subclasses implement :meth:`terms`.

    :meth:`penalty` sums them; the stacked engine reduces them per copy.
    """

    @abstractmethod
    def terms(self, w):
        """Ω's term of every entry of the tensor ``w`` (same shape as ``w``)."""

    def penalty(self, weights):
        return sum(self.terms(w).sum() for w in weights)


class L1(ElementwiseRegularizer):
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

    def terms(self, w):
        return w.detach().abs()

    def grad(self, w):
        return torch.sign(w.detach())


class L2(ElementwiseRegularizer):
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

    def terms(self, w):
        return 0.5 * w.detach().square()

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
    return _smooth_l0_terms(w, beta).sum()


def _smooth_l0_terms(w, beta):
    return 1.0 - torch.exp(-beta * w.detach().abs())


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


#: A strength or sharpness: a float > 0.
_POSITIVE = [Interval(Real, 0, None, closed="neither")]


class L0(ElementwiseRegularizer):
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

    _parameter_constraints = {"beta": _POSITIVE}

    def __init__(self, beta=10.0):
        self.beta = beta

    def terms(self, w):
        return _smooth_l0_terms(w, self.beta)

    def grad(self, w):
        return smooth_l0_grad(w, self.beta)


class L2L0(ElementwiseRegularizer):
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

    _parameter_constraints = {"alpha": _POSITIVE, "beta": _POSITIVE}

    def __init__(self, alpha=1.0, beta=10.0):
        self.alpha = alpha
        self.beta = beta

    def terms(self, w):
        return 0.5 * self.alpha * w.detach().square() + _smooth_l0_terms(w, self.beta)

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
