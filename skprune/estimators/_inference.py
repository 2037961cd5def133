"""The inference form of a trained network, made once and cached.

``predict_proba`` used to copy the module to float64 on every call (2.5× the
cost of the forward pass on LeNet-300-100). The form is now made once per
trained module and cached; it is made again whenever what it was made from
changed (:func:`inference_form` says what is watched and why).

The trained module's form is a float64 copy: in float32 a sample's logits
change in their last bits with the other samples of its batch (matrix
kernels block the batch differently), so predictions would depend on how the
data are split (``check_methods_subset_invariance``); in float64 the
differences are ~1e-16, far below anything a caller compares.

The compacted form of :mod:`skprune.sparsify` is an
:class:`~skprune.estimators._deployed.InferenceNet`: float32 on the CPU with
kernels that keep every sample's outputs independent of its batch (that
module says how, and what it guarantees).
"""

import copy
import ctypes
import ctypes.util
import weakref

import numpy as np
import torch

from ..training._sparse_input import chunk_rows
from ..training._threads import _active as _threads_state
from ..training._threads import get_torch_threads, step_work, torch_threads
from ._deployed import InferenceNet, Op, to_csr

__all__ = [
    "InferenceNet",
    "Op",
    "copy_module",
    "inference_form",
    "forward_outputs",
    "predict_outputs",
    "softmax",
    "to_csr",
]

_CHUNK = 1024

#: module_ -> (key, form); weak, so that a dropped estimator frees its form.
_CACHE = weakref.WeakKeyDictionary()


def copy_module(module):
    """``copy.deepcopy(module)``, also when a hook left a computed tensor in an attribute.

    ``torch.nn.utils.prune`` keeps ``weight = weight_orig * weight_mask`` in a
    plain attribute, which ``deepcopy`` refuses (not a leaf of the graph): the
    copy gets it detached, and its own hook computes it again in each forward.
    """
    memo = {}
    for sub in module.modules():
        for value in vars(sub).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach()
    return copy.deepcopy(module, memo)


def _made_from(module):
    """What an inference form of ``module`` is made from: ``(layout, tensors)``.

    The layout names, per submodule, its class, its parameters, its buffers
    and the handles of its forward hooks: ``torch.nn.utils.prune`` turns
    ``weight`` into ``weight_orig``, a buffer ``weight_mask`` and a pre-hook;
    a parametrisation changes the class. The tensors are those parameters and
    buffers, in that order (None for an absent bias).
    """
    layout, tensors, todo = [], [], [module]
    while todo:
        sub = todo.pop()
        params, buffers = sub._parameters, sub._buffers
        hooks = (*sub._forward_pre_hooks, None, *sub._forward_hooks)
        layout.append((type(sub), *params, None, *buffers, None, *hooks))
        tensors += params.values()
        tensors += buffers.values()
        todo += sub._modules.values()
    return layout, tensors


def _load_memcmp():
    """libc's ``memcmp``, or None where ctypes cannot find it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        memcmp = libc.memcmp
    except (OSError, AttributeError, TypeError):  # pragma: no cover - platform
        return None
    memcmp.restype = ctypes.c_int
    memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return memcmp


#: Comparing bytes is the cheapest exact test. With one thread, measured on
#: LeNet-300-100's first weight (235,200 floats): ``memcmp`` 36 µs,
#: ``np.array_equal`` 74 µs, ``torch.equal`` 186 µs.
_MEMCMP = _load_memcmp()


class _Copy:
    """A copy of a tensor, and :meth:`equals` to compare a tensor with it.

    Equal means the same bytes on the CPU (``memcmp``) and ``torch.equal``
    elsewhere: the form is a function of the bytes, so equal bytes cannot
    make it stale. A large tensor that is mostly zeros is kept as its
    non-zeros instead (:class:`_NonZeros`).
    """

    def __init__(self, tensor):
        contiguous = torch.contiguous_format
        self.tensor = None if tensor is None else tensor.detach().clone(memory_format=contiguous)
        self.nbytes = None
        if self.tensor is not None and _MEMCMP is not None and self.tensor.device.type == "cpu":
            self.nbytes = self.tensor.numel() * self.tensor.element_size()

    def equals(self, tensor):
        if tensor is None or self.tensor is None:
            return tensor is self.tensor
        mine = self.tensor
        if self.nbytes is not None and _same_cpu_layout(tensor, mine):
            return not self.nbytes or _MEMCMP(tensor.data_ptr(), mine.data_ptr(), self.nbytes) == 0
        try:
            return tensor.dtype == mine.dtype and torch.equal(tensor, mine)
        except (TypeError, RuntimeError):  # moved to another device
            return False


#: A tensor of more elements than this, with at most half of them non-zero,
#: is compared through its non-zeros (:class:`_NonZeros`).
_NONZEROS_MIN = 4096


class _NonZeros:
    """The non-zeros of a sparse weight, and :meth:`equals` to compare a tensor with them.

    A tensor equals the copy when it has as many elements whose bits are not
    all zero and the same bits at the copy's such places: then every other
    place is zero, and the two hold the same bytes. It reads the tensor once
    (numpy counts non-zero int32 or int64 words at ~20 µs for LeNet-300-100's
    first weight, one thread; 7× faster than counting non-zero floats) where
    comparing with a whole copy reads twice the tensor's bytes, the second
    read evicting what the prediction reads next on a shared machine.
    Measured on LeNet-300-100 at 1 %, 256 samples, one thread, a loaded
    machine: ``predict_proba`` took 1,121 µs with whole copies and
    712 to 850 µs with this.
    """

    _WORDS = {torch.float32: np.int32, torch.float64: np.int64}

    def __init__(self, tensor):
        bits = self._bits(tensor)
        self.index = np.flatnonzero(bits)
        self.values = bits[self.index]
        self.shape, self.dtype = tensor.shape, tensor.dtype

    @classmethod
    def fits(cls, tensor):
        if tensor is None or tensor.dtype not in cls._WORDS or tensor.device.type != "cpu":
            return False
        if tensor.layout != torch.strided or tensor.numel() <= _NONZEROS_MIN:
            return False
        return np.count_nonzero(cls._bits(tensor)) * 2 <= tensor.numel()

    @classmethod
    def _bits(cls, tensor):
        return tensor.detach().reshape(-1).numpy().view(cls._WORDS[tensor.dtype])

    def equals(self, tensor):
        if tensor is None or (tensor.shape, tensor.dtype) != (self.shape, self.dtype):
            return False
        if tensor.device.type != "cpu" or tensor.layout != torch.strided:
            return False
        bits = self._bits(tensor)
        if np.count_nonzero(bits) != len(self.index):
            return False
        return np.array_equal(bits[self.index], self.values)


def _copy(tensor):
    return _NonZeros(tensor) if _NonZeros.fits(tensor) else _Copy(tensor)


def _same_cpu_layout(tensor, copy):
    return (
        tensor.device.type == "cpu"
        and tensor.dtype == copy.dtype
        and tensor.shape == copy.shape
        and tensor.layout == torch.strided
        and tensor.is_contiguous()
    )


class _Entry:
    """A cached form, with the layout and a copy of the tensors it was made from.

    ``compact`` makes the sparsified form; None makes the dense float64 copy.
    """

    def __init__(self, module, compact):
        self.sparse = callable(compact)
        self.layout, tensors = _made_from(module)
        # Copied before the form is made: a change in between makes the form
        # newer than the copy, and the next call makes the form again.
        self.copies = [_copy(t) for t in tensors]
        present = [t for t in tensors if t is not None]
        self.device = present[0].device if present else torch.device("cpu")
        if self.sparse:
            self.form = compact(module)
        else:
            self.form = copy_module(module).to(torch.float64).eval().requires_grad_(False)
        # The compacted form drops inputs before it converts them to its dtypes.
        self.dtype = None if isinstance(self.form, InferenceNet) else torch.float64

    def matches(self, sparse, layout, tensors):
        """Whether the form was made, as ``sparse`` says, from this layout and these values.

        Values, not version counters or addresses: an in-place operation on
        ``weight.data`` bumps no counter of ``weight``, and a new tensor may
        reuse a freed address.
        """
        if sparse != self.sparse or layout != self.layout or len(tensors) != len(self.copies):
            return False
        return all(c.equals(t) for c, t in zip(self.copies, tensors))


def _entry(net):
    # After ``sparsify()`` the net holds the function that compacts its module
    # (:func:`skprune.sparsify.compact`), so this module needs no import of it.
    module, compact = net.module_, getattr(net, "_skprune_sparse", None)
    entry = _CACHE.get(module)
    if entry is None or not entry.matches(callable(compact), *_made_from(module)):
        _CACHE[module] = entry = _Entry(module, compact)
    return entry


def inference_form(net):
    """The cached float64 form of ``net.module_`` (compacted when sparsified).

    Made again whenever what it was made from changed, however it changed:
    ``fit``, an in-place operation on a parameter or on its ``.data``, a
    ``.data`` assignment, ``load_state_dict`` (with ``assign=True`` too),
    ``torch.nn.utils.prune`` or a parametrisation, a replaced layer, a switch
    between ``sparsify()`` and ``densify()``. Each call compares the module's
    layout and the values of its parameters and buffers with a copy of those
    the form was made from (their bytes, ``memcmp``: 40 µs for
    LeNet-300-100 on a quiet machine). A layer's other settings (a
    convolution's stride) are fixed when it is built and not watched.
    """
    return _entry(net).form


def forward_outputs(net, X):
    """The float64 inference form's outputs on ``X``, by chunks of rows, as a float64 ndarray.

    ``X`` is a tensor, or :class:`~skprune._sparse_input.SparseRows` (chunks of
    at most 4 MiB densified at a time).

    The form's tensors need no gradient, so no autograd graph is recorded.
    """
    entry, step, chunks = _entry(net), chunk_rows(X, _CHUNK), []
    with torch.no_grad():  # a user module may make tensors that need gradients
        for start in range(0, len(X), step):
            out = entry.form(X[start : start + step].to(entry.device, entry.dtype))
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
    """The network's outputs (float64 ndarray) for the input ``X`` of a fitted estimator.

    ``estimator`` is read as one state: pass ``fitted_view(estimator)``
    (:mod:`skprune._publish`) when a ``fit`` may publish a new one meanwhile.
    """
    tensor = _fast_tensor(estimator, X)
    if tensor is None:
        tensor = estimator._validate_predict_data(X)
    if _one_thread_anyway():
        return forward_outputs(estimator.net_, tensor)
    with torch_threads(step_work(estimator.net_.module_, tensor, min(len(tensor), _CHUNK))):
        return forward_outputs(estimator.net_, tensor)


def _one_thread_anyway():
    """Whether the thread policy could only choose the one thread torch runs now.

    The policy never exceeds the caller's count (outside any other block), so
    its inputs (the load average, the free cores, the multiply-adds of a
    forward) need not be read: ~100 µs a call, a third of a sparsified
    LeNet-300-100's prediction of 256 images.
    """
    return (
        torch.get_num_threads() == 1
        and get_torch_threads() == "auto"
        and not _threads_state["depth"]
    )
