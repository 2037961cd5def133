"""Compaction of a pruned network into its inference form.

:meth:`SparseNetClassifier.sparsify` builds, from the trained module, a
network that computes the same function with less work:

* an input feature with no weight left is dropped (a ``select`` of the kept
  columns);
* a hidden unit (or a convolution channel) with no outgoing weight is removed;
* a unit with no incoming weight has the constant activation ``relu(bias)``;
  that constant is folded into the next layer's bias and the unit removed;
* every remaining linear layer is stored dense or CSR by :func:`use_csr`;
  CSR layers compute in float32 on the CPU (their kernel is batch-invariant),
  dense ones in float64.

The built-in ``"mlp"``/``"lenet300"`` (:class:`~skprune.models.MLP`) and
``"lenet5"`` (:class:`~skprune.models.LeNet5`) are compacted this way. Other
modules (``"vgg"``, user modules, a built-in one with user hooks) cannot be
analysed: their ``nn.Linear`` layers without hooks become CSR by the same rule
in a float64 copy that needs no gradients, and no unit is removed.
The trained module itself is never changed, so :meth:`densify` restores it
exactly. The compacted form is made from the module's current weights, and
made again when they change (:func:`skprune.estimators._inference.inference_form`).
"""

import functools
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from ..models import MLP, LeNet5, VGGLike
from ._compact_graph import compact_graph
from ._compact_vgg import CannotCompact, compact_vgg
from ._deployed import InferenceNet, Op, to_csr
from ._inference import copy_module, inference_form

__all__ = [
    "SparsifyMixin",
    "sparsify",
    "densify",
    "compact",
    "use_csr",
    "sparse_coef",
    "CSR_MAX_DENSITY",
]

#: Linear layers at or below this density are stored CSR, denser ones dense.
#: Measured in float32, one thread, random masks, CSR ``addmm`` against the
#: dense layer's batch-invariant chunked product
#: (:func:`skprune.estimators._deployed._chunked_addmm`): dense / CSR time at
#: densities 0.1, 0.2, 0.3, 0.5 was, for 256 samples, 2.7, 1.5, 1.0, 0.6
#: (300×784), 2.2, 1.7, 1.2, 0.8 (100×300), 2.2, 1.6, 1.2, 0.7 (120×400),
#: and 2-5 at 0.3 for one sample. ``examples/benchmarks/bench_deploy.py
#: --crossover`` measures it again.
CSR_MAX_DENSITY = 0.3


def use_csr(weight):
    """Whether a linear ``weight`` (out × in) is faster stored CSR.

    Examples
    --------
    >>> use_csr(torch.eye(20))
    True
    >>> use_csr(torch.ones(20, 20))
    False
    """
    if not weight.numel():
        return False
    return int(torch.count_nonzero(weight)) / weight.numel() <= CSR_MAX_DENSITY


def _linear_op(weight, bias, relu):
    # The deployed form sets the dtype (float32 on the CPU, see _deployed).
    weight = weight.contiguous()
    return Op("linear", relu=relu, weight=to_csr(weight) if use_csr(weight) else weight, bias=bias)


def compact_chain(weights, biases):
    """Remove dead units from a chain of ReLU-separated linear layers.

    ``weights[i]`` is (out_i × in_i), ``biases[i]`` (out_i,); the last layer
    is the output and keeps all its units. Returns ``(kept_inputs, weights,
    biases)``. Exact: a unit with no outgoing weight contributes nothing; one
    with no incoming weight outputs ``relu(bias)``, added to the next biases.

    Examples
    --------
    >>> W1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> W2 = torch.tensor([[2.0, 3.0]])
    >>> kept, W, b = compact_chain([W1, W2], [torch.tensor([0.0, 1.0]), torch.zeros(1)])
    >>> kept.tolist(), [w.shape for w in W], b[1].tolist()
    ([0], [torch.Size([1, 1]), torch.Size([1, 1])], [3.0])
    """
    weights = [w.clone() for w in weights]
    biases = [b.clone() for b in biases]
    changed = True
    while changed:
        changed = False
        for i in reversed(range(len(weights) - 1)):
            dead_in = ~weights[i].any(dim=1)
            dead_out = ~weights[i + 1].any(dim=0)
            fold = dead_in & ~dead_out
            if fold.any():
                biases[i + 1] += weights[i + 1][:, fold] @ torch.relu(biases[i][fold])
            keep = ~(dead_in | dead_out)
            if not keep.all():
                changed = True
                weights[i], biases[i] = weights[i][keep], biases[i][keep]
                weights[i + 1] = weights[i + 1][:, keep]
    kept_inputs = weights[0].any(dim=0).nonzero().flatten()
    weights[0] = weights[0][:, kept_inputs]
    return kept_inputs, weights, biases


def _constant_ops(bias):
    """A network whose every weight is dead outputs its folded output bias.

    Written as one zero weight on the first feature, so that the form (and its
    ONNX graph) has no zero-sized tensor.
    """
    zero = torch.zeros(len(bias), 1, dtype=bias.dtype)
    return [Op("select", index=torch.tensor([0])), Op("linear", weight=zero, bias=bias)]


def _linear_ops(weights, biases):
    if not weights[0].shape[1]:
        return _constant_ops(biases[-1])
    last = len(weights) - 1
    return [_linear_op(w, b, relu=i < last) for i, (w, b) in enumerate(zip(weights, biases))]


def _float64(layer):
    return layer.weight.detach().double(), layer.bias.detach().double()


def _compact_mlp(module, dtype):
    layers = [getattr(module, f"layer{i}") for i in range(1, module.n_layers + 1)]
    weights, biases = zip(*map(_float64, layers))
    kept, weights, biases = compact_chain(weights, biases)
    n_features = layers[0].in_features
    select = [] if len(kept) in (0, n_features) else [Op("select", index=kept)]
    return InferenceNet((n_features,), [*select, *_linear_ops(weights, biases)], dtype)


def _fold_dead_channels(w_in, b_in, w_next, b_next, per_channel):
    """Fold channels of ``w_in`` with no incoming weight into ``b_next``.

    ``per_channel(w_next, c)`` is the next layer's weight summed over what
    channel ``c`` feeds (a kernel, or the flattened positions): a constant
    map ``relu(b)`` (average pooling keeps it constant) contributes that sum
    times the constant. Returns ``w_next`` with those weights zeroed.
    """
    w_next = w_next.clone()
    for c in (~w_in.flatten(1).any(dim=1)).nonzero().flatten().tolist():
        b_next += per_channel(w_next, c) * torch.relu(b_in[c])
        w_next[:, c] = 0
    return w_next


def _compact_lenet5(module, dtype):
    w1, b1 = _float64(module.conv1)
    w2, b2 = _float64(module.conv2)
    dense = [_float64(getattr(module, f"layer{i}")) for i in (1, 2, 3)]
    weights, biases = [w for w, _ in dense], [b.clone() for _, b in dense]
    b2 = b2.clone()
    w2 = _fold_dead_channels(w1, b1, w2, b2, lambda w, c: w[:, c].sum(dim=(1, 2)))
    n_maps = weights[0].shape[1] // w2.shape[0]
    by_map = weights[0].reshape(len(weights[0]), w2.shape[0], n_maps)
    by_map = _fold_dead_channels(w2, b2, by_map, biases[0], lambda w, c: w[:, c].sum(dim=1))
    weights[0] = by_map.flatten(1)
    kept, weights, biases = compact_chain(weights, biases)
    maps = torch.unique(kept // n_maps)
    if not len(maps):
        return InferenceNet(module.input_shape, [Op("flatten"), *_constant_ops(biases[-1])], dtype)
    conv1_kept = w2[maps].flatten(2).any(dim=2).any(dim=0).nonzero().flatten()
    w2, b2 = w2[maps][:, conv1_kept], b2[maps]
    rank = torch.full((by_map.shape[1],), -1, dtype=torch.long, device=maps.device)
    rank[maps] = torch.arange(len(maps), device=maps.device)
    index = rank[kept // n_maps] * n_maps + kept % n_maps
    ops = [
        Op("conv", pool=2, weight=w1[conv1_kept].contiguous(), bias=b1[conv1_kept]),
        Op("conv", pool=2, weight=w2.contiguous(), bias=b2),
        Op("flatten"),
        *([] if len(index) == len(maps) * n_maps else [Op("select", index=index)]),
        *_linear_ops(weights, biases),
    ]
    return InferenceNet(module.input_shape, ops, dtype)


class CSRLinear(nn.Module):
    """``nn.Linear`` with a CSR weight: the fallback for unanalysed modules."""

    def __init__(self, linear):
        super().__init__()
        self.weight = to_csr(linear.weight.detach())
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        out = torch.sparse.mm(self.weight, flat.T).T
        out = out if self.bias is None else out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def _csr_copy(module):
    """A float64 copy of ``module``, its sparse linear layers CSR (:func:`_to_csr_layers`)."""
    return _to_csr_layers(copy_module(module).to(torch.float64).eval().requires_grad_(False))


def _to_csr_layers(module):
    """``module`` with its sparse ``nn.Linear`` layers made CSR, in place.

    A layer with hooks of its own keeps them and stays as it is. The copy
    needs no gradients: prediction reads its outputs as numpy arrays.
    """
    for name, layer in list(module.named_modules()):
        if isinstance(layer, nn.Linear) and not _hooks(layer) and use_csr(layer.weight.detach()):
            parent, _, child = name.rpartition(".")
            setattr(module.get_submodule(parent) if parent else module, child, CSRLinear(layer))
    return module


def _compact_user_module(module, input_shape):
    """A float64 copy of a user module, compacted by :func:`compact_graph`, or exact."""
    copy = copy_module(module).to(torch.float64).eval().requires_grad_(False)
    try:
        if input_shape is None:
            raise CannotCompact("its input shape is unknown (pass input_shape)")
        compact_graph(copy, tuple(input_shape))
    except CannotCompact as exc:
        _warn_exact(module, str(exc))
        return _csr_copy(module)
    return _to_csr_layers(copy)


def _hooks(layer):
    return [*layer._forward_pre_hooks.values(), *layer._forward_hooks.values()]


def _pruning_applied(module):
    """``module``, or a copy of it with its ``torch.nn.utils.prune`` masks made permanent.

    A pruned layer's ``weight`` is an attribute that its forward pre-hook
    computes from ``weight_orig`` and ``weight_mask``; read outside a forward
    it may be stale. :func:`torch.nn.utils.prune.remove` computes it afresh.
    """
    if not any(map(_pruning_hooks, module.modules())):
        return module
    module = copy_module(module)
    for sub in module.modules():
        for hook in _pruning_hooks(sub):
            prune.remove(sub, hook._tensor_name)
    return module


def _pruning_hooks(sub):
    hooks = sub._forward_pre_hooks.values()
    return [hook for hook in hooks if isinstance(hook, prune.BasePruningMethod)]


@torch.no_grad()
def compact(module, dtype=torch.float32, input_shape=None):
    """The inference form of a trained ``module`` (see the module docs).

    Built from the module's current weights (with ``torch.nn.utils.prune``'s
    masks applied); the prediction cache builds it again when they change. A
    built-in module with hooks of the user's is not analysed: its hooks would
    be lost. ``dtype`` is the precision asked of the compacted form
    (:class:`~skprune.estimators._deployed.InferenceNet`). A user module (of
    one sample's shape ``input_shape``) is compacted by Torch-Pruning's
    dependency graph where installed (:mod:`._compact_graph`) into a float64
    copy; a module that cannot be compacted warns and is a float64 copy.
    """
    module = _pruning_applied(module)
    hooked = any(_hooks(sub) for sub in module.modules())
    if type(module) is MLP and not hooked:
        return _compact_mlp(module, dtype)
    if type(module) is LeNet5 and not hooked:
        return _compact_lenet5(module, dtype)
    if type(module) is VGGLike and not hooked:
        try:
            return compact_vgg(module, _linear_ops, _constant_ops, dtype)
        except CannotCompact as exc:
            _warn_exact(module, str(exc))
            return _csr_copy(module)
    if hooked:
        _warn_exact(module, "it has forward hooks, which a compacted copy would lose")
        return _csr_copy(module)
    if type(module) in (MLP, LeNet5, VGGLike):
        return _csr_copy(module)
    return _compact_user_module(module, input_shape)


def _warn_exact(module, why):
    warnings.warn(
        f"sparsify() cannot compact {type(module).__name__}: {why}. Its sparse linear "
        "layers are stored CSR and its predictions stay exact (float64).",
        UserWarning,
        stacklevel=4,
    )


def _check_fitted(estimator):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "net_")


def sparsify(estimator):
    """Switch a fitted estimator to the compacted form; returns it."""
    _check_fitted(estimator)
    from sklearn.base import is_regressor

    # float64 for the regressor: its predictions are rounded to float32 and
    # must be the trained module's, bit for bit (check_sparsify_coefficients).
    dtype = torch.float64 if is_regressor(estimator) else torch.float32
    shape = tuple(estimator._input_shape)
    # The inference cache calls it.
    estimator.net_._skprune_sparse = functools.partial(compact, dtype=dtype, input_shape=shape)
    inference_form(estimator.net_)
    return estimator


def densify(estimator):
    """Switch a fitted estimator back to its trained module; returns it."""
    _check_fitted(estimator)
    estimator.net_._skprune_sparse = None
    return estimator


def is_sparsified(estimator):
    """Whether ``estimator`` predicts through its compacted form."""
    return callable(getattr(getattr(estimator, "net_", None), "_skprune_sparse", None))


def sparse_coef(estimator):
    """The first regularised layer's weights as scipy CSR, once sparsified.

    scikit-learn's convention (``SGDClassifier.sparsify``) is a sparse
    ``coef_`` after ``sparsify()``; before it the attribute does not exist.
    """
    import scipy.sparse

    if not is_sparsified(estimator) or not estimator.net_.regularized_named_:
        raise AttributeError("coef_ exists only after sparsify()")
    weight = estimator.net_.regularized_named_[0][1].weight.detach().cpu()
    return scipy.sparse.csr_matrix(weight.flatten(1).numpy())


class SparsifyMixin:
    """``sparsify()``, ``densify()`` and ``coef_`` of the estimators."""

    def sparsify(self):
        """Predict through the compacted network: dead units removed, CSR layers.

        In place; ``density_``, ``layer_density_`` and ``history_`` still
        describe the trained network, and ``fit`` starts from it again. See
        :mod:`skprune.sparsify` for what is compacted. Weights changed
        afterwards (in place, by ``load_state_dict`` or
        ``torch.nn.utils.prune``) are compacted again at the next prediction.

        Returns
        -------
        self : estimator
        """
        return sparsify(self)

    def densify(self):
        """Predict through the trained network again (undoes :meth:`sparsify`).

        Returns
        -------
        self : estimator
        """
        return densify(self)

    @property
    def coef_(self):
        """After :meth:`sparsify` only: the first regularised layer's weights as
        a ``scipy.sparse`` CSR matrix (units × inputs), as ``SGDClassifier``."""
        return sparse_coef(self)
