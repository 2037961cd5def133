r"""How much a trained network reads each input: ``feature_importances_``.

The importance of input :math:`j` is the ℓ2 norm of the weights through which
it enters the network, counting only the weights that can still change the
output:

.. math:: \operatorname{imp}_j = \bigl\| A_{R,\,j} \bigr\|_2

where :math:`A` is the first layer (an ``nn.Linear`` or an ``nn.Conv*``, as
the dense matrix that maps the flattened input to the layer's outputs) and
:math:`R` the layer's output units that still reach the network's output. For
the built-in ``"mlp"``, :math:`R` drops the hidden units of the first layer
whose every path to the output is pruned (the dead units that
:meth:`~skprune.SparseNetClassifier.sparsify` removes); for other modules it
keeps every unit. An input with no surviving weight has importance 0, so a
selection by ``importance > 0`` keeps exactly the inputs the network reads.

For a convolution, column :math:`j` of :math:`A` holds the kernel entries that
touch input pixel :math:`j` (one channel at one position) at every output
position: :math:`\operatorname{imp}_j^2 = \sum_o \sum_{(h', w')} W_{o, c, h'(j),
w'(j)}^2`, computed as :math:`A_{\,\cdot}^{2\,\top}\mathbf 1` with one
transposed convolution (a vector-Jacobian product). The importances are flat,
one per input as ``n_features_in_`` counts them; the group-ℓ1 penalty of
:class:`~skprune.parts.InputGroupL1` (Yuan & Lin's group lasso on the input
columns, as in LassoNet, Lemhadri et al. 2021, eq. 4) drives whole columns,
and so these importances, to zero.
"""

import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..models import MLP

__all__ = ["feature_importances", "input_layer", "FeatureImportancesMixin"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def input_layer(module):
    """``(name, layer)`` of the first ``nn.Linear`` or ``nn.Conv*`` of ``module``.

    The first registered, which is the one reading the input in the built-in
    modules and in any module that registers its layers in the order it calls
    them.

    Examples
    --------
    >>> input_layer(MLP(4, 2, (3,)))[0]
    'layer1'
    """
    for name, sub in module.named_modules():
        if isinstance(sub, (nn.Linear, *_CONV)):
            return name, sub
    raise ValueError(
        f"{type(module).__name__} has no nn.Linear or nn.Conv layer: nothing reads the input."
    )


@torch.no_grad()
def _column_norms_sq(layer, input_shape):
    """Squared entries of ``layer``'s dense matrix summed per input column, one row per unit.

    A linear layer gives its squared weights (units × inputs); a convolution one
    row, each pixel's column norm² (its units are channels at many positions).
    """
    weight = layer.weight.detach().double()
    if isinstance(layer, nn.Linear):
        return weight.square()
    return _conv_column_norms_sq(layer, weight, input_shape)[None]


def _conv_column_norms_sq(layer, weight, input_shape):
    """Every pixel's column norm² of a convolution: ``conv(·, W²)`` transposed on ones."""
    conv = _CONV_FUNCTIONS[type(layer)]
    with torch.enable_grad():
        x = torch.zeros(1, *input_shape, dtype=weight.dtype, requires_grad=True)
        geometry = (layer.stride, layer.padding, layer.dilation, layer.groups)
        out = conv(x, weight.square(), None, *geometry)
        (grad,) = torch.autograd.grad(out.sum(), x)
    return grad.flatten()


_CONV_FUNCTIONS = {
    nn.Conv1d: torch.nn.functional.conv1d,
    nn.Conv2d: torch.nn.functional.conv2d,
    nn.Conv3d: torch.nn.functional.conv3d,
}


def _live_units(module):
    """Mask of the first layer's units that still reach the output (built-in MLP), else None.

    A unit is dead when every weight leaving it is zero, or every unit it feeds
    is dead: the fixed point of the rule that :func:`~skprune.estimators._sparsify.compact_chain`
    applies (the units with no incoming weight have zero rows and add nothing).
    """
    if type(module) is not MLP or module.n_layers < 2:
        return None
    weights = [getattr(module, f"layer{i}").weight.detach() for i in range(1, module.n_layers + 1)]
    live = torch.ones(weights[-1].shape[0], dtype=torch.bool)  # the outputs
    for w in reversed(weights[1:]):
        live = (w[live] != 0).any(dim=0)
    return live


def feature_importances(module, input_shape):
    """``imp_j``, the ℓ2 norm of input ``j``'s surviving column (see the module docs).

    Parameters
    ----------
    module : torch.nn.Module
        A trained network; its first ``nn.Linear`` or ``nn.Conv*`` reads the input.
    input_shape : tuple of int
        One sample's shape: ``(n_features,)`` or ``(C, H, W)``. A convolution
        given flat rows reads them in the shape of the module's
        ``input_shape`` attribute (the built-in ``"lenet5"`` and ``"vgg"``).

    Returns
    -------
    importances : ndarray of shape (prod(input_shape),), float64
        Non-negative; 0 exactly for an input with no surviving weight.

    Examples
    --------
    >>> mlp = MLP(3, 2, (2,))
    >>> with torch.no_grad():
    ...     _ = mlp.layer1.weight.copy_(torch.tensor([[3.0, 0.0, 1.0], [4.0, 0.0, 2.0]]))
    ...     _ = mlp.layer2.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    >>> feature_importances(mlp, (3,))  # unit 2 reaches no output: only unit 1 counts
    array([3., 0., 1.])
    """
    _, layer = input_layer(module)
    if isinstance(layer, _CONV) and len(input_shape) == 1:
        # Flat rows that the module views as images itself (the built-in LeNet5, VGG).
        input_shape = getattr(module, "input_shape", input_shape)
    squares = _column_norms_sq(layer, tuple(input_shape))
    live = _live_units(module)
    if live is not None:
        squares = squares[live]
    return squares.sum(dim=0).sqrt().cpu().numpy()


class FeatureImportancesMixin:
    """``feature_importances_`` of the fitted estimators (a property over ``net_``)."""

    @property
    def feature_importances_(self):
        """How much the trained network reads each input, shape (n_features_in_,).

        The ℓ2 norm of the input's column in the first layer, over the units
        that still reach the output (:mod:`skprune.estimators._importances`);
        0 for an input with no surviving weight. Read from the trained
        network, so it is the same before and after :meth:`sparsify`, and
        what :class:`~sklearn.feature_selection.SelectFromModel` ranks by.
        """
        check_is_fitted(self, "net_")
        return feature_importances(self.net_.module_, self._input_shape)
