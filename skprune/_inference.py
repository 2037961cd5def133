"""The inference form of a trained network, made once and cached.

``predict_proba`` used to copy the module to float64 on every call (2.5× the
cost of the forward pass on LeNet-300-100). The float64 form is now made once
per trained module and cached; it is made again only when a parameter or a
buffer of the module changed (``fit`` builds a new module; an in-place update
bumps the tensor's version counter).

Why float64 at all: in float32 a sample's logits change in their last bits
with the other samples of its batch (matrix kernels block the batch
differently), so predictions would depend on how the data are split
(``check_methods_subset_invariance``); in float64 the differences are ~1e-16,
far below anything a caller compares.

The compacted form of :mod:`skprune.sparsify` is an :class:`InferenceNet`:
a list of plain operations on float64 tensors, each layer dense or CSR.
"""

import copy
import warnings
import weakref

import numpy as np
import torch
from torch.nn import functional as F

from ._threads import step_work, torch_threads

__all__ = [
    "InferenceNet",
    "Op",
    "inference_form",
    "forward_outputs",
    "predict_outputs",
    "softmax",
    "to_csr",
]

_CHUNK = 1024

#: module_ -> (key, form); weak, so that a dropped estimator frees its form.
_CACHE = weakref.WeakKeyDictionary()


def to_csr(weight):
    """``weight`` as a CSR tensor (torch warns that CSR support is in beta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return weight.to_sparse_csr()


class Op:
    """One operation of an :class:`InferenceNet`.

    ``kind`` is ``"conv"`` (ReLU then ``pool``×``pool`` average pooling),
    ``"flatten"``, ``"select"`` (keep the input features ``index``) or
    ``"linear"`` (``relu`` after it unless it is the output layer). A linear
    weight is dense or CSR.
    """

    def __init__(self, kind, relu=False, pool=0, **tensors):
        self.kind, self.relu, self.pool = kind, relu, pool
        self.tensors = tensors

    def __getattr__(self, name):
        try:
            return self.__dict__["tensors"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def is_csr(self):
        weight = self.tensors.get("weight")
        return weight is not None and weight.layout == torch.sparse_csr

    def dense_weight(self):
        return self.weight.to_dense() if self.is_csr else self.weight


class InferenceNet:
    """A compacted network: :class:`Op` applied in turn (float64, but CSR
    layers on the CPU in float32, see :func:`skprune.sparsify.compact`).

    Linear layers work feature-major (features × samples): a CSR weight then
    multiplies the activations from the left, with no transpose between layers.
    """

    def __init__(self, input_shape, ops):
        self.input_shape = tuple(input_shape)
        self.ops = list(ops)

    def __call__(self, x):
        x = x.reshape(len(x), *self.input_shape)
        feature_major = False
        for op in self.ops:
            if op.kind == "select":  # gathering rows of the transpose is also the transpose
                x, feature_major = (x if feature_major else x.T).index_select(0, op.index), True
            elif op.kind == "flatten":
                x = x.flatten(1)
            elif op.kind == "conv":
                x = F.avg_pool2d(torch.relu(F.conv2d(x.double(), op.weight, op.bias)), op.pool)
            else:
                if not feature_major:  # a contiguous copy: CSR products are 2x faster
                    x, feature_major = x.T.contiguous(), True
                x = _linear_feature_major(op, x.to(op.bias.dtype))
        return (x.T if feature_major else x).double()


def _linear_feature_major(op, h):
    # ``addmm`` takes a CSR or dense weight alike and adds the bias in the
    # product, with no zero-filled output first.
    out = torch.addmm(op.bias[:, None], op.weight, h)
    return torch.relu_(out) if op.relu else out


class _Entry:
    """A cached form, with the tensors it was made from and their versions."""

    def __init__(self, module, sparse, form):
        self.tensors = [*module.parameters(), *module.buffers()]
        self.sparse, self.key, self.form = sparse, self.versions(), form
        self.device = self.tensors[0].device if self.tensors else torch.device("cpu")
        # The compacted form drops inputs before it converts them to float64.
        self.dtype = None if isinstance(form, InferenceNet) else torch.float64

    def versions(self):
        # An in-place update bumps ``_version``; a new tensor has a new address.
        return [(t.data_ptr(), t._version) for t in self.tensors]


def _entry(net):
    # After ``sparsify()`` the net holds the function that compacts its module
    # (:func:`skprune.sparsify.compact`), so this module needs no import of it.
    module, compact = net.module_, getattr(net, "_skprune_sparse", None)
    sparse = callable(compact)
    entry = _CACHE.get(module)
    if entry is not None and entry.sparse == sparse and entry.versions() == entry.key:
        return entry
    if sparse:
        form = compact(module)
    else:
        form = copy.deepcopy(module).to(torch.float64).eval().requires_grad_(False)
    _CACHE[module] = entry = _Entry(module, sparse, form)
    return entry


def inference_form(net):
    """The cached float64 form of ``net.module_`` (compacted when sparsified).

    Made again when the module's parameters or buffers changed in place or were
    replaced by other tensors (a parameter added to the module afterwards is
    not seen: ``fit`` makes a new module).
    """
    return _entry(net).form


def forward_outputs(net, X):
    """The float64 inference form's outputs on the tensor ``X``, as a float64 ndarray.

    The form's tensors need no gradient, so no autograd graph is recorded.
    """
    entry = _entry(net)
    chunks = []
    for start in range(0, len(X), _CHUNK):
        out = entry.form(X[start : start + _CHUNK].to(entry.device, entry.dtype))
        out = out[0] if isinstance(out, tuple) else out
        chunks.append(out.double().cpu().numpy())
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def softmax(logits):
    """Row-wise softmax of a float64 array (numpy's is several times faster
    than torch's float64 kernel on small outputs).

    Examples
    --------
    >>> softmax(np.log([[1.0, 3.0]])).round(2).tolist()
    [[0.25, 0.75]]
    """
    proba = logits - logits.max(axis=1, keepdims=True)
    np.exp(proba, out=proba)
    proba /= proba.sum(axis=1, keepdims=True)
    return proba


def _fast_tensor(estimator, X):
    """float32 tensor of ``X`` when it is a plain, finite float array, else None.

    The common case skips ``validate_data``'s generic path (tens of µs per
    call); anything else (lists, frames, sparse, other dtypes, feature names,
    NaN, a wrong feature count) goes through it and gets its errors.
    """
    if type(X) is not np.ndarray or X.dtype.kind != "f" or X.ndim < 2 or not len(X):
        return None
    if "feature_names_in_" in vars(estimator) or "net_" not in vars(estimator):
        return None
    X = np.ascontiguousarray(X, dtype=np.float32)
    flat = X.reshape(len(X), -1)
    # A float32 sum overflows only on huge values: those take the checked path too.
    if flat.shape[1] != estimator.n_features_in_ or not np.isfinite(flat.sum()):
        return None
    if X.ndim > 2 and X.shape[1:] != tuple(estimator._input_shape):
        return None  # the checked path names the shapes
    tensor = torch.from_numpy(X) if X.flags.writeable else torch.tensor(X)
    return tensor.reshape(len(X), *estimator._input_shape)


def predict_outputs(estimator, X):
    """The network's outputs (float64 ndarray) for the input ``X`` of a fitted estimator."""
    tensor = _fast_tensor(estimator, X)
    if tensor is None:
        tensor = estimator._validate_predict_data(X)
    with torch_threads(step_work(estimator.net_.module_, tensor, min(len(tensor), _CHUNK))):
        return forward_outputs(estimator.net_, tensor)
