"""The deployed form of a compacted network: :class:`Op` applied in turn.

What it computes in, and what that guarantees
---------------------------------------------
On the CPU every layer computes in float32, and a sample's outputs do not
depend on the other samples of its batch (bit for bit):

* a CSR layer: torch's CSR product computes every sample's column on its own,
  in the same order whatever the batch;
* a dense layer: a float32 matrix product is *not* batch-invariant (its
  blocking follows the number of samples: measured, 191 of the batch sizes
  1-299 change some output of a 300×784 layer in its last bits). Evaluated on
  chunks of exactly :data:`DENSE_CHUNK` samples (the last one padded with
  zeros), every sample's column is the same wherever it sits in its chunk
  (measured for chunks of 8 to 64 and layers 84×120 to 300×784);
* a convolution: oneDNN's float32 convolution gives every image the same
  result for any batch of 2 or more images but not for one image alone, so a
  single image is evaluated twice, as a batch of 2.

Each float32 layer is checked once, when the form is built, on a probe sample
at two places in two batches; a layer that fails the check (another BLAS,
another CPU) computes in float64, as does every layer on a GPU, where the
products are not batch-invariant either. The float32 rounding moves the
probabilities by far less than 1e-4 from the trained module's (``tests``
check 1e-4 on every form; the deployment guide gives measured values).

Every op carries ``flops`` (multiply-adds per sample: a CSR layer counts its
stored weights, a dense one or a convolution every weight) and ``nbytes``
(bytes of its tensors, indices of a CSR weight included).
"""

import time
import warnings

import torch
from torch.nn import functional as F

__all__ = ["DENSE_CHUNK", "InferenceNet", "Op", "to_csr"]

#: Samples per product of a dense float32 layer (see the module docs).
#: Measured, one thread, 256 samples, batched products of 16, 32 and 64
#: samples against one product: 300×784 1.2, 1.0, 1.0 times its time; 120×400
#: 1.5, 1.5, 1.2; 84×120 4.3, 4.1, 1.5 (noisy: a shared machine). 32 is the
#: compromise with a lone sample, which pays for a whole chunk.
DENSE_CHUNK = 32


def to_csr(weight):
    """``weight`` as a CSR tensor (torch warns that CSR support is in beta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return weight.to_sparse_csr()


class Op:
    """One operation of an :class:`InferenceNet`.

    ``kind`` is

    * ``"conv"``: a 2-d convolution (``padding``), plus ``bias_map`` (a
      per-position bias of shape (C, H, W), what a folded constant channel
      leaves behind a zero padding) when given, the activation ``act``
      (``"relu"``, ``"elu"`` or None), the per-channel affine ``scale`` /
      ``shift`` after it (an inference batch norm) when given, then
      ``pool``×``pool`` pooling (``pool_kind`` ``"avg"`` or ``"max"``; none
      for ``pool=0``);
    * ``"flatten"``; ``"select"`` (keep the input features ``index``);
    * ``"linear"``: ``relu`` after it unless it is the output layer; the
      weight is dense or CSR.
    """

    def __init__(self, kind, relu=False, pool=0, pool_kind="avg", act="relu", padding=0, **tensors):
        self.kind, self.relu, self.pool, self.pool_kind = kind, relu, pool, pool_kind
        self.act, self.padding = act, padding
        self.tensors = {k: v for k, v in tensors.items() if v is not None}
        self.flops = 0
        self.chunked = False  # a dense float32 layer evaluated by DENSE_CHUNK samples

    def __getattr__(self, name):
        try:
            return self.__dict__["tensors"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        shape = tuple(self.tensors["weight"].shape) if "weight" in self.tensors else ""
        layout = " CSR" if self.is_csr else ""
        dtype = str(self.weight.dtype).replace("torch.", " ") if "weight" in self.tensors else ""
        return f"{self.kind}{shape}{layout}{dtype}"

    @property
    def nbytes(self):
        """Bytes of the op's tensors (a CSR weight's indices included)."""
        return sum(map(_nbytes, self.tensors.values()))

    @property
    def is_csr(self):
        weight = self.tensors.get("weight")
        return weight is not None and weight.layout == torch.sparse_csr

    def dense_weight(self):
        return self.weight.to_dense() if self.is_csr else self.weight

    def to(self, dtype):
        """The op with its floating tensors in ``dtype`` (index tensors kept)."""
        for name, tensor in self.tensors.items():
            if tensor.is_floating_point():
                self.tensors[name] = tensor.to(dtype)
        return self


def _nbytes(tensor):
    if tensor.layout == torch.sparse_csr:
        parts = tensor.values(), tensor.col_indices(), tensor.crow_indices()
        return sum(p.numel() * p.element_size() for p in parts)
    return tensor.numel() * tensor.element_size()


#: torch's im2col + GEMM convolution, per image (so batch-invariant). For one
#: input channel it beats oneDNN's, one thread, float32, 256 images: 1.6×
#: for 1→3 channels on 28×28, 1.3× for 1→6; with 3 or more input channels
#: it loses (0.3-0.8×). ``_IM2COL`` is None where torch lacks it.
_IM2COL = getattr(torch._C._nn, "thnn_conv2d", None)


def _conv2d(op, x):
    if op.weight.shape[1] == 1 and _IM2COL is not None and op.weight.dtype == torch.float32:
        pad = (op.padding, op.padding)
        return _IM2COL(x, op.weight, tuple(op.weight.shape[2:]), op.bias, (1, 1), pad)
    if len(x) == 1:  # a lone image takes another kernel path (see the module docs)
        return F.conv2d(x.expand(2, *x.shape[1:]), op.weight, op.bias, padding=op.padding)[:1]
    return F.conv2d(x, op.weight, op.bias, padding=op.padding)


def _conv(op, x):
    x = _conv2d(op, x)
    if "bias_map" in op.tensors:
        x = x.add_(op.bias_map)
    if op.act == "elu" or "scale" in op.tensors:
        x = _per_sample_elementwise(op, x)
    elif op.act == "relu":
        x = torch.relu_(x)
    if op.pool == 2:
        return _pool2(x, op.pool_kind)
    if op.pool:
        pool = F.avg_pool2d if op.pool_kind == "avg" else F.max_pool2d
        x = pool(x, op.pool)
    return x


def _pool2(x, kind):
    """2×2 pooling (stride 2) by four strided views: 2.5× faster than
    ``F.avg_pool2d`` on LeNet-5's first maps (256×3×26×26, one thread) and,
    for the average, bit for bit the same (it sums in the same order and
    divides by 4, a power of two)."""
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    corners = [x[..., i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]
    if kind == "max":
        top, bottom = torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3])
        return torch.maximum(top, bottom, out=top)
    out = corners[0] + corners[1]
    out += corners[2]
    out += corners[3]
    return out.mul_(0.25)


#: Elements per sample are padded to a multiple of this for ELU and the
#: batch norm's affine step (see :func:`_per_sample_elementwise`).
_LANES = 64


def _per_sample_elementwise(op, x):
    """The activation, then ``scale·x + shift`` per channel, batch-invariant.

    torch runs an elementwise op over the whole tensor as one vector loop and
    the last elements, past the last full vector, through scalar code: a
    vector ``exp`` (ELU) or a fused multiply-add differs from the scalar one
    in the last bit, so which elements of a sample fall in the tail would
    depend on the batch. Each sample is padded to a multiple of
    :data:`_LANES` elements, so that no element is ever in a tail.
    """
    n, size = len(x), x[0].numel()
    pad = -size % _LANES
    flat = x.reshape(n, size)
    if pad:
        flat = torch.cat([flat, flat.new_zeros(n, pad)], dim=1)
    if op.act == "elu":
        flat = F.elu_(flat)
    elif op.act == "relu":
        flat = torch.relu_(flat)
    if "scale" in op.tensors:
        per_channel = x[0, 0].numel()
        scale, shift = (
            torch.cat([t.repeat_interleave(per_channel), t.new_zeros(pad)])
            for t in (op.scale, op.shift)
        )
        flat = torch.addcmul(shift, flat, scale)
    return flat[:, :size].reshape(x.shape)


def _linear(op, h):
    """``op`` on feature-major activations ``h`` (features × samples)."""
    if not op.chunked:
        # ``addmm`` takes a CSR or dense weight alike and adds the bias in the
        # product, with no zero-filled output first.
        out = torch.addmm(op.bias[:, None], op.weight, h)
    else:
        out = _chunked_addmm(op.bias, op.weight, h)
    return torch.relu_(out) if op.relu else out


def _chunked_addmm(bias, weight, h):
    """``bias + weight @ h`` by products of :data:`DENSE_CHUNK` columns, in one batched call.

    The columns are padded with zeros to a whole number of chunks. ``bmm``
    runs the same kernel as one ``addmm`` of a chunk (bit for bit, measured)
    at 10-20x less overhead than a loop of them.
    """
    n_in, n = h.shape
    pad = -n % DENSE_CHUNK
    if pad:
        h = torch.cat([h, h.new_zeros(n_in, pad)], dim=1)
    n_chunks = h.shape[1] // DENSE_CHUNK
    chunks = h.reshape(n_in, n_chunks, DENSE_CHUNK).permute(1, 0, 2)
    out = torch.baddbmm(bias[None, :, None], weight.expand(n_chunks, *weight.shape), chunks)
    return out.permute(1, 0, 2).reshape(len(weight), -1)[:, :n]


def _apply(op, x, feature_major):
    """One op; returns the output and whether it is feature-major."""
    if op.kind == "select":  # gathering rows of the transpose is also the transpose
        return (x if feature_major else x.T).index_select(0, op.index), True
    if op.kind == "flatten":
        return x.flatten(1), False
    if op.kind == "conv":
        return _conv(op, x.to(op.weight.dtype)), False
    if not feature_major:  # a contiguous copy: CSR products are 2x faster
        x = x.T.contiguous()
    return _linear(op, x.to(op.bias.dtype)), True


class InferenceNet:
    """A compacted network: :class:`Op` applied in turn, float32 on the CPU
    (see the module docs for the guarantee), float64 elsewhere.

    Linear layers work feature-major (features × samples): a CSR weight then
    multiplies the activations from the left, with no transpose between layers.

    Parameters
    ----------
    input_shape : tuple of int
        One sample's shape.
    ops : list of Op
        Their tensors on one device, in any floating dtype: the form sets
        each op's dtype, ``flops`` and ``nbytes``.
    dtype : torch.dtype, default=torch.float32
        The precision asked for: float32 (then float64 for the layers whose
        float32 kernel is not batch-invariant, see the module docs) or
        float64 everywhere, as the regressor asks: its predictions are
        rounded to float32 and must be those of the trained module.

    Examples
    --------
    >>> net = InferenceNet((3,), [Op("linear", weight=torch.eye(2, 3), bias=torch.zeros(2))])
    >>> net(torch.tensor([[1.0, -2.0, 5.0]])).tolist(), net.ops[0].flops
    ([[1.0, -2.0]], 6)
    """

    def __init__(self, input_shape, ops, dtype=torch.float32):
        self.input_shape = tuple(input_shape)
        self.ops, self.dtype = list(ops), dtype
        self._settle()

    @torch.no_grad()
    def _settle(self):
        """Choose each op's dtype (module docs) and count its multiply-adds."""
        device = _device(self.ops)
        x = torch.zeros(1, *self.input_shape, device=device)
        feature_major = False
        for op in self.ops:
            if op.kind in ("conv", "linear"):
                _choose_dtype(op, (x.shape[0],) if feature_major else x.shape[1:], self.dtype)
                op.flops = _flops(op, x, feature_major)
            x, feature_major = _apply(op, x, feature_major)

    def __call__(self, x):
        x = x.reshape(len(x), *self.input_shape)
        feature_major = False
        for op in self.ops:
            x, feature_major = _apply(op, x, feature_major)
        return (x.T if feature_major else x).double()

    @property
    def flops(self):
        """Multiply-adds per sample of the whole form."""
        return sum(op.flops for op in self.ops)

    @property
    def nbytes(self):
        """Bytes of the form's tensors."""
        return sum(op.nbytes for op in self.ops)

    @torch.no_grad()
    def layer_times(self, X, repeats=20):
        """CPU seconds per call of each op on the batch ``X``: the median of ``repeats``.

        Returns a list of ``(op, seconds)``, in order. Process CPU time, not
        wall time: on a shared machine it is the work done. Time it under
        the thread count you deploy with (``torch.set_num_threads``).

        Examples
        --------
        >>> net = InferenceNet((3,), [Op("linear", weight=torch.eye(2, 3), bias=torch.zeros(2))])
        >>> [(repr(op), t >= 0) for op, t in net.layer_times(torch.ones(4, 3), repeats=3)]
        [('linear(2, 3) float32', True)]
        """
        x = X.reshape(len(X), *self.input_shape)
        feature_major, times = False, []
        for op in self.ops:
            runs = []
            for _ in range(repeats):
                start = time.process_time()
                out = _apply(op, x, feature_major)
                runs.append(time.process_time() - start)
            times.append((op, sorted(runs)[len(runs) // 2]))
            x, feature_major = out
        return times


def _device(ops):
    for op in ops:
        for tensor in op.tensors.values():
            return tensor.device
    return torch.device("cpu")


def _flops(op, x, feature_major):
    if op.kind == "linear":
        weight = op.weight
        return int(weight.values().numel()) if op.is_csr else weight.numel()
    out = F.conv2d(x.to(op.weight.dtype), op.weight, padding=op.padding)
    return op.weight[0].numel() * out[0].numel()


def _choose_dtype(op, in_shape, dtype):
    """float32 when asked and the op's float32 kernel is batch-invariant here, else float64."""
    weight = op.tensors["weight"]
    if weight.device.type != "cpu" or dtype == torch.float64:
        op.to(torch.float64)
        return
    op.to(torch.float32)
    op.chunked = op.kind == "linear" and not op.is_csr
    if op.kind == "linear" and op.is_csr:
        return  # one sample at a time in the CSR kernel
    if not _invariant(op, in_shape):
        op.to(torch.float64)
        op.chunked = False


def _invariant(op, in_shape):
    """Whether a probe sample gets the same float32 outputs in two batches, at two places."""
    g = torch.Generator().manual_seed(0)
    probe, others = torch.rand(1, *in_shape, generator=g), torch.rand(6, *in_shape, generator=g)
    first, last = torch.cat([probe, others[:2]]), torch.cat([others, probe])
    if op.kind == "linear":  # feature-major
        a, b = _linear(op, first.T.contiguous())[:, 0], _linear(op, last.T.contiguous())[:, -1]
    else:
        a, b = _conv(op, first)[0], _conv(op, last)[-1]
    lone = _linear(op, probe.T.contiguous())[:, 0] if op.kind == "linear" else _conv(op, probe)[0]
    return torch.equal(a, b) and torch.equal(a, lone)
