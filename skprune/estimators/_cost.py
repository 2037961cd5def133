"""``flops_``, ``layer_flops_`` and ``param_bytes_``: the inference cost of a fitted estimator.

Counted by :mod:`skprune.cost` on the network as it predicts: before
:meth:`~skprune.SparseNetClassifier.sparsify`, what the compacted form would
run; after it, the compacted form itself, operation by operation (an
operation that states its own ``flops`` and ``nbytes`` is taken at its word).
"""

from sklearn.utils.validation import check_is_fitted

from ..cost import count_cost, form_cost, total_cost, trace_layers
from ..training._threads import torch_threads
from ._inference import InferenceNet, inference_form
from ._sparsify import is_sparsified, use_csr

__all__ = ["CostMixin", "estimator_cost"]


@torch_threads()  # one thread: tiny tensors, where more threads only wait on each other
def estimator_cost(estimator):
    """Layer name -> :class:`~skprune.cost.LayerCost` of the form ``estimator`` predicts with."""
    check_is_fitted(estimator, "net_")
    module, shape = estimator.net_.module_, tuple(estimator._input_shape)
    if is_sparsified(estimator):
        form = inference_form(estimator.net_)
        if isinstance(form, InferenceNet):
            names = [name for name, _, _ in trace_layers(module, shape)]
            return form_cost(form.ops, form.input_shape, names)
        return count_cost(module, shape, structured=False, csr=use_csr)
    return count_cost(module, shape, csr=use_csr)


class CostMixin:
    """The fitted cost attributes of the estimators, counted on access."""

    @property
    def flops_(self):
        """Multiply-adds per sample of the network as it predicts (compacted).

        Before :meth:`sparsify`: what the compacted form would run (dead units
        and channels removed, sparse linear layers by their non-zeros); after
        it: that form itself. See :mod:`skprune.cost`.
        """
        return total_cost(estimator_cost(self)).flops

    @property
    def layer_flops_(self):
        """Layer name -> its multiply-adds per sample (see :attr:`flops_`)."""
        return {name: cost.flops for name, cost in estimator_cost(self).items()}

    @property
    def param_bytes_(self):
        """Bytes of the weights and biases that run: float32 before :meth:`sparsify`, then
        the dtypes of the compacted form (CSR indices take 8 bytes)."""
        return total_cost(estimator_cost(self)).nbytes
