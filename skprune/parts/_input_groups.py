r"""Group ℓ1 over input columns: the penalty that selects a network's inputs.

.. math:: Ω(W) = \sum_j \bigl\| W_{:,\,j} \bigr\|_2

summed over the regularised weight tensors, a group being everything one input
feeds: the column ``W[:, j]`` of a linear weight (out × in), the slice
``W[:, c]`` of a convolution's weight (out × in × kernel), one input channel.
It is the group lasso of Yuan & Lin (2006) on the input columns, the penalty
LassoNet puts on its skip layer (Lemhadri et al. 2021, eq. 4): it drives whole
columns towards zero, so an input stops being read at once, where ℓ1 thins
every column a little. A (sub)gradient step never lands exactly on zero, so
after every optimiser step a column whose norm is at most ``threshold`` is
set to zero: the group form of Reiners' soft threshold pruning (§4), "soft"
as there (the column may grow back). With ``regularized_layers`` naming the
first layer (as :class:`~skprune.feature_selection.SparseNetSelector` does)
it acts on the inputs alone; on later layers its columns are the hidden
units' fan-out, so it removes hidden units too.
"""

from numbers import Real

import torch
from sklearn.utils._param_validation import Interval

from ._regularizers import Regularizer

__all__ = ["InputGroupL1", "column_norms", "prune_columns_"]


def column_norms(w):
    """The ℓ2 norm of every input column of ``w`` (dimension 1), shape (w.shape[1],).

    Examples
    --------
    >>> column_norms(torch.tensor([[3.0, 0.0], [4.0, 1.0]]))
    tensor([5., 1.])
    """
    return w.detach().transpose(0, 1).flatten(1).norm(dim=1)


@torch.no_grad()
def prune_columns_(w, threshold, stacked=False):
    """Zero, in place, every input column of ``w`` whose ℓ2 norm is at most ``threshold``.

    With ``stacked``, ``w`` has a leading copy axis (K, out, in, …) and each
    copy's columns are judged on their own. Returns ``w``.

    Examples
    --------
    >>> w = torch.tensor([[3.0, 0.001], [4.0, 0.002]])
    >>> prune_columns_(w, 0.01)
    tensor([[3., 0.],
            [4., 0.]])
    """
    if not stacked:
        return prune_columns_(w.unsqueeze(0), threshold, stacked=True).squeeze(0)
    norms = w.transpose(1, 2).flatten(2).norm(dim=2)  # (K, in)
    keep = (norms > threshold).to(w.dtype)
    w.mul_(keep.view(*keep.shape[:1], 1, keep.shape[1], *[1] * (w.dim() - 3)))
    return w


class InputGroupL1(Regularizer):
    r"""Group ℓ1 over input columns, :math:`Ω = \sum_j \|W_{:,j}\|_2` (LassoNet eq. 4).

    Its gradient is :math:`W_{:,j} / \|W_{:,j}\|_2` on every column, taken as 0
    on a zero column (the subgradient of least norm) so that a pruned input
    feels no pull. Analytic, so the stacked engine trains it: ``fit`` and
    :func:`~skprune.lambda_path` run it in the one loop.

    Parameters
    ----------
    threshold : float >= 0, default=1e-2
        After every optimiser step, columns with ``‖W[:, j]‖₂ <= threshold``
        are set to zero (``regularizer__threshold``); 0 never prunes.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([[3.0, 0.0], [4.0, 0.0]])
    >>> InputGroupL1().penalty([w])
    tensor(5.)
    >>> InputGroupL1().grad(w)
    tensor([[0.6000, 0.0000],
            [0.8000, 0.0000]])
    >>> from skprune import SparseNetClassifier
    >>> clf = SparseNetClassifier(regularizer="input_group_l1", regularized_layers=["layer1"])
    """

    _parameter_constraints = {"threshold": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, threshold=1e-2):
        self.threshold = threshold

    def penalty(self, weights):
        return sum(column_norms(w).sum() for w in weights)

    def grad(self, w):
        w = w.detach()
        norms = column_norms(w)
        # where(), not indexing: the stacked engine vmaps grad over the copies.
        scale = torch.where(norms > 0, 1.0 / torch.clamp(norms, min=1e-30), 0.0)
        return w * scale.view(1, -1, *[1] * (w.dim() - 2))

    def on_batch_end(self, net, **kwargs):
        if self.threshold:
            for w in net.regularized_weights():
                prune_columns_(w.data, self.threshold)

    def stack_batch_end(self, stack):
        if self.threshold:
            for w in stack.weights:
                prune_columns_(w.data, self.threshold, stacked=True)
