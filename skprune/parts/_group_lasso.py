r"""Group lasso over output units and channels, weighted by the cost each carries.

Unstructured zeros in a convolution save nothing at inference; removed
channels and units do. The ℓ2,1 norm over the rows of each regularised weight
(the incoming weights of one output unit of a linear layer, or one filter of a
convolution) drives whole groups to zero (Yuan & Lin 2006, eq. 2.1; filter-wise
in Wen et al. 2016, "Structured Sparsity Learning", eq. 2):

.. math:: Ω(w) = \sum_l \sum_{g \in l} c_g \, \lVert w_g \rVert_2 .

The weight of a group is :math:`c_g = \sqrt{p_g}` (Yuan & Lin's weight for a
group of :math:`p_g` weights: each weight then feels, on average, the pull of
ℓ1), times, with ``weighting="flops"``, the cost that removing the group
saves per weight, relative to the costliest layer's:

.. math:: c_g = \sqrt{p_g} \cdot \frac{F_g / p_g}{\max_h F_h / p_h},

with :math:`F_g = p_g \cdot \mathrm{positions}_l` the multiply-adds of the
group per sample (a filter is applied at every output position of its
layer). The weights of the costliest layer feel ℓ1's pull, the others less in
proportion: on LeNet-5, a filter of the first convolution (676 positions)
is pulled 676 times harder per weight than a unit of a dense layer. The
positions are read from the estimator's module at the start of ``fit``.
Normalised by the costliest layer, the λ that matter for LeNet-5
(``regularized_layers="all"``) lie around 1e-3 to 1e-2, inside the default
interval of :class:`~skprune.ParetoSearchCV`; normalised by the mean, they
lay at its lower end (1e-5 to 1e-4), where the search spends few trainings.
"""

from numbers import Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..cost import trace_layers
from ..metrics import regularized_layers
from ._pruning import ThresholdPruning
from ._regularizers import Regularizer

__all__ = [
    "GroupLasso",
    "GroupThresholdPruning",
    "group_norms",
    "group_lasso_grad",
    "group_threshold_",
    "cost_scales",
]


def group_norms(w):
    """The ℓ2 norm of each output unit's (or filter's) weights: shape ``(w.shape[0],)``.

    Examples
    --------
    >>> group_norms(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([5., 0.])
    """
    return w.detach().flatten(1).norm(dim=1)


def group_lasso_grad(w, eps=0.0):
    r"""∂/∂w of :math:`\sum_g \lVert w_g \rVert_2`: each group divided by its norm.

    At a zero group the norm is not differentiable; its subgradient of least
    norm, 0, is taken (a group that is zero feels no pull, as ℓ1 takes
    ``sign(0) = 0``). With ``eps > 0`` the smooth :math:`\sqrt{\lVert w_g
    \rVert^2 + ε^2}` is differentiated instead.

    Examples
    --------
    >>> group_lasso_grad(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    w = w.detach()
    norms = w.flatten(1).square().sum(1).add(eps * eps).sqrt()
    norms = norms.reshape(-1, *[1] * (w.dim() - 1))
    return torch.where(norms > 0, w / norms.clamp_min(torch.finfo(w.dtype).tiny), 0.0)


def cost_scales(layers):
    """Each layer's multiply-adds per weight over the costliest layer's (``F_g/p_g`` over the max).

    ``layers`` is a list of ``(weight shape, positions)``: the multiply-adds of
    one weight of the layer are its positions. Returns one float per layer.

    Examples
    --------
    >>> [round(s, 4) for s in cost_scales([((6, 1, 3, 3), 676), ((10, 84), 1)])]
    [1.0, 0.0015]
    """
    top = max((p for _, p in layers), default=0)
    return [p / top if top else 1.0 for _, p in layers]


class GroupLasso(Regularizer):
    r"""ℓ2,1 over the output units and channels, weighted by their cost (``"group_l1"``).

    See :mod:`skprune.parts._group_lasso` for the formula. Its gradient is
    analytic, so it trains in the stacked engine (``lambda_path`` included).
    With ``pruning="auto"`` each weight under ``threshold`` is set to zero after
    every step; a group pulled to zero reaches it that way, element by element,
    when the optimiser's steps are no larger than the threshold (Adam moves each
    weight by about ``lr`` per step: the defaults ``lr=1e-3`` and
    ``threshold=1e-3`` qualify). ``pruning="group"``
    (:class:`GroupThresholdPruning`) zeroes every group whose root mean square is
    under the threshold whatever the steps, through skorch's loop.

    Parameters
    ----------
    weighting : {"flops"} or None, default="flops"
        ``"flops"``: each group's weight :math:`\sqrt{p_g}` times the
        multiply-adds per weight of its layer over the costliest layer's, so
        costly layers (early convolutions) shrink first. None: :math:`\sqrt{p_g}` alone
        (Yuan & Lin), the count of weights.
    eps : float >= 0, default=0.0
        Smoothing of the norm at zero, :math:`\sqrt{\lVert w_g\rVert^2 + ε^2}`;
        0 takes the subgradient 0 at a zero group.

    Attributes
    ----------
    scales_ : dict
        Weight shape -> the cost weight of its layer's groups (with ``"flops"``),
        set when the estimator's ``fit`` starts; layers of equal shapes but unequal
        cost share the mean of theirs. A shape not in it is weighted 1.

    Examples
    --------
    >>> import torch
    >>> reg = GroupLasso(weighting=None)
    >>> reg.penalty([torch.tensor([[3.0, 4.0], [0.0, 0.0]])])  # √2 · (5 + 0)
    tensor(7.0711)
    """

    _parameter_constraints = {
        "weighting": [StrOptions({"flops"}), None],
        "eps": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, weighting="flops", eps=0.0):
        self.weighting = weighting
        self.eps = eps

    def validate(self, estimator=None):
        """Check the parameters, and read each regularised layer's cost from ``estimator``.

        The one call that sees the estimator's module before training, in
        skorch's loop and the stacked engine alike.
        """
        super().validate(estimator)
        self.scales_ = {}
        if self.weighting == "flops" and estimator is not None:
            self.scales_ = _scales_of(estimator)
        return self

    def _scale(self, w):
        fan_in = w[0].numel() if w.dim() > 1 else 1
        return fan_in**0.5 * getattr(self, "scales_", {}).get(tuple(w.shape), 1.0)

    def penalty(self, weights):
        return sum(self._scale(w) * _norms(w, self.eps).sum() for w in weights)

    def grad(self, w):
        return self._scale(w) * group_lasso_grad(w, self.eps)


def _norms(w, eps):
    return w.detach().flatten(1).square().sum(1).add(eps * eps).sqrt()


def _scales_of(estimator):
    """Weight shape -> cost scale of the regularised layers of ``estimator``'s module.

    The module is built on the ``meta`` device (no memory) from the
    estimator's settings and traced once; {} when it cannot be (then every
    group weighs :math:`\\sqrt{p_g}`).
    """
    try:
        module = _meta_module(estimator)
        shape = tuple(estimator._input_shape)
        positions = {name: p for name, _, p in trace_layers(module, shape)}
        named = regularized_layers(module, estimator.regularized_layers)
    except Exception:  # a module the settings alone cannot build or trace
        return {}
    layers = [(tuple(layer.weight.shape), positions.get(name, 1)) for name, layer in named]
    by_shape = {}
    for (shape, _), scale in zip(layers, cost_scales(layers)):
        by_shape.setdefault(shape, []).append(scale)
    return {shape: sum(s) / len(s) for shape, s in by_shape.items()}


def _meta_module(estimator):
    spec, kwargs = estimator._resolve_module()
    if isinstance(spec, torch.nn.Module):
        return spec
    with torch.device("meta"):
        return spec(**kwargs)


@torch.no_grad()
def group_threshold_(weights, threshold):
    r"""Zero, in place, every output unit or filter whose root mean square is ``<= threshold``.

    A group of :math:`p_g` weights goes when :math:`\lVert w_g \rVert_2 \le τ\sqrt{p_g}`:
    the elementwise rule of threshold pruning (Reiners §4) applied to the
    group's typical weight.

    Examples
    --------
    >>> w = torch.tensor([[1e-4, -2e-4], [0.5, 1e-5]])
    >>> group_threshold_([w], 1e-3)
    >>> w.tolist()
    [[0.0, 0.0], [0.5, 9.999999747378752e-06]]
    """
    for w in weights:
        rms = w.flatten(1).square().mean(1).sqrt()
        w.masked_fill_((rms <= threshold).reshape(-1, *[1] * (w.dim() - 1)), 0.0)


class GroupThresholdPruning(ThresholdPruning):
    """Threshold pruning of whole groups: ``pruning="group"``.

    As :class:`~skprune.parts.ThresholdPruning` (before training, after every
    batch or epoch by ``when``, and after training), but a unit's or filter's
    weights go together, when their root mean square is at most ``threshold``
    (:func:`group_threshold_`). The pair of :class:`GroupLasso` when its groups
    hover near zero without reaching it (steps larger than the threshold).
    Trains through skorch's loop (the stacked engine prunes element by element).

    Parameters
    ----------
    threshold : float >= 0, default=1e-3
    when : {"batch", "epoch", "after"}, default="batch"
    """

    def _prune(self, net):
        group_threshold_(net.regularized_weights(), self.threshold)
