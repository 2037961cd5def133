"""``skprune.save`` and ``skprune.load``: one safetensors file, never a pickle.

The file is a plain `safetensors <https://huggingface.co/docs/safetensors>`_
file, readable by any safetensors tool:

* the tensors: the trained module's ``state_dict``, each tensor stored dense
  or, when that is smaller (below 50 % density), as its non-zero ``values``
  and their sorted flat ``index`` (int32), so that a pruned network's file
  grows with its non-zeros; the numeric array attributes (``lambda_history_``);
  and ``history_`` as columns (``history.*``: one float64, int64 or uint8
  tensor per numeric key, see :mod:`skprune._history_store`);
* the safetensors ``metadata`` (str → str): ``format`` (``"skprune"``),
  ``format_version``, ``skprune`` (a JSON document: the estimator's class,
  its parameters, its fitted attributes, ``classes_`` with their dtype, the
  non-numeric rest of ``history_``, the module's tensor shapes, whether it
  was sparsified) and ``sha256``, a checksum over the JSON and every tensor's
  name and bytes. The checksum finds damage, not tampering: whoever edits a
  file can recompute it.

Trust model. Loading parses JSON and raw tensor bytes only: nothing is
unpickled, and a file cannot make skprune import a module or call anything
it names. A class named in the file (the estimator, ``module``,
``optimizer``, a class inside a ``module__*`` argument) resolves only through
an explicit list (:mod:`skprune._trusted`: skprune's estimators, built-in
modules, parts and callbacks, and a short list of torch optimisers, layers and
schedulers) or through ``trusted=``, given by the caller as classes or exact
``"package.module.Class"`` paths. Before anything is allocated, every tensor's
dtype, shape and byte range is checked against the file's length and
against the module rebuilt on torch's ``meta`` device; sparse indices must be
sorted and within the tensor; arrays in the JSON must have a numeric, bool or
bounded string dtype. Anything wrong raises ``ValueError`` naming the file and
the field.

``save`` is atomic: it writes a side file in the target's folder, fsyncs it
and renames it over the target, so that an interrupted or failed save leaves
the old file as it was.
"""

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import tempfile
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._history_store import HISTORY_MODES, pack_history, unpack_history
from ._trusted import Names, class_path
from ._validation import resolve_device
from .sparsify import is_sparsified, sparsify

__all__ = ["save", "load", "FORMAT_VERSION", "MAX_MODULE_EXPANSION"]

FORMAT_VERSION = "2"
_READABLE_VERSIONS = ("1", "2")

#: A file may describe a module at most this many times its own size in bytes
#: (a 0.1 %-dense network still loads); a larger claim is refused before
#: anything is allocated.
MAX_MODULE_EXPANSION = 1000

#: Fitted attributes that are not learned data but needed to predict.
_PRIVATE_STATE = ("_input_shape", "_y_1d")
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]*_\Z")

_TENSOR_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
    "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
    "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
#: JSON-stored arrays: strings of bounded width, objects, or numbers.
_ARRAY_KINDS = "USObiuf"


def _class_path(cls):
    return class_path(cls)


def _encode(value, name):
    """JSON form of a parameter or attribute; tuples, classes and odd dicts are tagged."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, torch.device)):
        return value.item() if isinstance(value, np.generic) else str(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, name) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, name) for k, v in value.items()}}
    if isinstance(value, dict):  # class_weight={0: 2.0}: keys that JSON cannot hold
        return {"__items__": [[_encode(k, name), _encode(v, name)] for k, v in value.items()]}
    if isinstance(value, type):
        return {"__class__": _class_path(value)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO":
        return {"__array__": value.dtype.str, "values": [_encode(v, name) for v in value]}
    raise ValueError(
        f"skprune.save cannot store {name}={value!r}: it stores numbers, strings, "
        "tuples, lists, dicts, string arrays and classes, not instances (an nn.Module "
        "or a part instance cannot be rebuilt; pass its class or name with "
        "<param>__<arg>=... instead)."
    )


def _decode(value, names, field):
    """The value ``_encode`` stored; classes resolve through ``names`` only."""
    if isinstance(value, list):
        return [_decode(v, names, field) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "__tuple__" in value and isinstance(value["__tuple__"], list):
        return tuple(_decode(v, names, field) for v in value["__tuple__"])
    if len(value) == 1 and isinstance(value.get("__dict__"), dict):
        return {k: _decode(v, names, f"{field}[{k!r}]") for k, v in value["__dict__"].items()}
    if len(value) == 1 and isinstance(value.get("__items__"), list):
        return _decode_items(value["__items__"], names, field)
    if len(value) == 1 and "__class__" in value:
        return names.resolve(value["__class__"], field)
    if set(value) == {"__array__", "values"} and isinstance(value["values"], list):
        return _decode_array(value, field)
    raise ValueError(f"{field} holds an unknown tagged value {str(value)[:80]!r}")


def _decode_items(items, names, field):
    pairs = [_decode(item, names, field) for item in items]
    if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError(f"{field} holds a malformed dict")
    keys = [k for k, _ in pairs]
    if not all(k is None or isinstance(k, (bool, int, float, str)) for k in keys):
        raise ValueError(f"{field} holds a dict key that is not a number or a string")
    return dict(pairs)


def _decode_array(value, field):
    """A string or object array of a bounded dtype: ``<U250000000`` would be 4 GB per item."""
    try:
        dtype = np.dtype(value["__array__"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field} has an array dtype {value['__array__']!r}: {exc}") from None
    items = value["values"]
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in items):
        raise ValueError(f"{field} holds an array with nested values")
    longest = max((len(v) for v in items if isinstance(v, str)), default=1)
    width = dtype.itemsize // (4 if dtype.kind == "U" else 1)
    too_wide = dtype.kind in "US" and width > max(longest, 1) * 4 + 64
    if dtype.kind not in _ARRAY_KINDS or dtype.itemsize > 8 and dtype.kind in "biuf" or too_wide:
        raise ValueError(
            f"{field} has the array dtype {dtype.str!r}; allowed are bool, int, uint and "
            f"float of at most 8 bytes, objects, and strings at most 4x+64 their longest "
            f"value ({longest} characters)"
        )
    return np.array(items, dtype=dtype)


def _sparse_parts(name, tensor):
    """Tensors storing ``tensor``: dense, or non-zero values and sorted flat int32 indices."""
    flat = tensor.detach().cpu().reshape(-1)
    nonzero = flat.nonzero().flatten()
    if not tensor.is_floating_point() or len(nonzero) * 2 >= len(flat) or len(flat) >= 2**31:
        return {name: tensor.detach().cpu().contiguous()}, False
    return {f"{name}.values": flat[nonzero], f"{name}.index": nonzero.to(torch.int32)}, True


def _fitted_attributes(estimator):
    names = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    names += [k for k in _PRIVATE_STATE if hasattr(estimator, k)]
    return [k for k in names if k not in ("net_", "history_")]


def _collect(estimator, history):
    """(JSON document, tensors) describing a fitted estimator."""
    tensors, state = {}, {}
    for key, tensor in estimator.net_.module_.state_dict().items():
        parts, sparse = _sparse_parts(f"module.{key}", tensor)
        tensors.update(parts)
        state[key] = {"shape": list(tensor.shape), "sparse": sparse}
    attributes = {}
    for name in _fitted_attributes(estimator):
        value = getattr(estimator, name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            tensors[f"attr.{name}"] = torch.from_numpy(np.ascontiguousarray(value))
        else:
            attributes[name] = _encode(value, name)
    doc = {
        "estimator": _class_path(type(estimator)),
        "params": {k: _encode(v, k) for k, v in estimator.get_params(deep=False).items()},
        "attributes": attributes,
        "history": None,
        "state": state,
        "sparsified": is_sparsified(estimator),
    }
    if history is not None:
        doc["history"], history_tensors = pack_history(_plain_history(estimator), history)
        tensors.update(history_tensors)
    return doc, tensors


def _plain_history(estimator):
    def default(obj):
        if isinstance(obj, (np.generic, torch.Tensor)):
            return obj.tolist()
        raise ValueError(f"skprune.save cannot store {obj!r} found in history_")

    return json.loads(json.dumps(list(estimator.history_), default=default))


def _checksum(payload, chunks):
    """SHA-256 over the JSON, then each tensor's name and raw bytes in name order."""
    digest = hashlib.sha256(payload.encode())
    for name in sorted(chunks):
        digest.update(name.encode())
        digest.update(chunks[name])
    return digest.hexdigest()


def _raw(tensor):
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy()


def _check_saveable(estimator, history):
    if hasattr(estimator, "best_estimator_") or hasattr(type(estimator), "_run_search"):
        raise TypeError(
            f"skprune.save stores one fitted network, not a {type(estimator).__name__}; "
            "save the refitted model: skprune.save(search.best_estimator_, path)."
        )
    if not isinstance(estimator, BaseEstimator) or not hasattr(type(estimator), "sparsify"):
        raise TypeError(
            f"skprune.save stores skprune estimators, not {type(estimator).__name__}; "
            "save a Pipeline's other steps with skops (see 'Deploying a sparse network')."
        )
    if history is not None and history not in HISTORY_MODES:
        raise ValueError(
            f"The 'history' parameter of skprune.save must be one of {HISTORY_MODES} or "
            f"None. Got {history!r} instead."
        )
    check_is_fitted(estimator, "net_")


def save(estimator, path, *, history="epochs"):
    """Write a fitted skprune estimator to ``path`` (a safetensors file), atomically.

    Parameters
    ----------
    estimator : SparseNetClassifier or SparseNetRegressor
        Fitted; sparsified or not (:func:`load` gives it back in that form).
    path : str or path-like
        Written through a side file in the same folder, fsynced and renamed
        over ``path``: if the save fails or is interrupted, ``path`` keeps its
        old content and no side file is left (but a killed process leaves it).
    history : {"epochs", "full"} or None, default="epochs"
        How much of ``history_`` is stored, as columns of numbers: ``"epochs"``
        the per-epoch rows (their ``batches`` lists come back empty),
        ``"full"`` the per-batch rows too, None nothing (``history_`` comes
        back empty). A pruned network's file then grows with its non-zeros,
        not with its epochs and batches.

    Examples
    --------
    >>> import tempfile, numpy as np, skprune
    >>> X, y = np.random.RandomState(0).rand(40, 4).astype(np.float32), [0, 1] * 20
    >>> clf = skprune.SparseNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> path = tempfile.mkdtemp() + "/model.skp"
    >>> skprune.save(clf, path)
    >>> bool((skprune.load(path).predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    from safetensors.torch import save as save_tensors

    _check_saveable(estimator, history)
    doc, tensors = _collect(estimator, history)
    payload = json.dumps(doc, sort_keys=True)
    metadata = {
        "format": "skprune",
        "format_version": FORMAT_VERSION,
        "skprune": payload,
        "sha256": _checksum(payload, {k: _raw(t) for k, t in tensors.items()}),
    }
    write_atomic(path, save_tensors(tensors, metadata=metadata))


def _umask():
    try:
        with open("/proc/self/status") as status:
            line = next(x for x in status if x.startswith("Umask:"))
        return int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError):
        return 0o022


def write_atomic(path, data):
    """Write ``data`` to ``path`` through a side file: the old file or the new, never half.

    The side file is made in ``path``'s folder (so the rename stays on one file
    system), flushed and fsynced, then ``os.replace``-d over ``path``, and the
    folder is fsynced so that the rename itself survives a power cut.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, side = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            if hasattr(os, "fchmod"):  # mkstemp makes it 0o600; keep the usual mode
                os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        os.replace(side, path)
    except BaseException:  # KeyboardInterrupt too: never leave the side file behind
        with contextlib.suppress(OSError):
            os.unlink(side)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder cannot be opened on every platform (Windows)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


# -- reading ---------------------------------------------------------------------


def _read_bytes(path):
    with open(path, "rb") as file:
        data = bytearray(os.fstat(file.fileno()).st_size)
        if file.readinto(data) != len(data):
            raise ValueError("the file changed while it was read")
    return data


def _parse_header(data):
    """(metadata, {name: (dtype, shape, start, end)}) of a safetensors file, all checked."""
    if len(data) < 8:
        raise ValueError("the file is truncated: it has no safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"the file is truncated: its header claims {size} bytes")
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"its safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("its safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict):
        raise ValueError(
            "it has no safetensors metadata ('__metadata__'): it is not a skprune file "
            "(skprune.save writes the estimator's description there)"
        )
    body, entries = len(data) - 8 - size, {}
    for name, entry in header.items():
        entries[name] = _tensor_entry(name, entry, body, 8 + size)
    spans = sorted((start, end) for _, _, start, end in entries.values())
    if any(a[1] > b[0] for a, b in zip(spans[:-1], spans[1:])):
        raise ValueError("two tensors of its header overlap")
    return meta, entries


def _tensor_entry(name, entry, body, base):
    """A header entry's (dtype, shape, start, end), its size checked against the file."""
    entry = entry if isinstance(entry, dict) else {}
    dtype = _TENSOR_DTYPES.get(entry.get("dtype"))
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    ok = (
        dtype is not None
        and isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
        and isinstance(offsets, list) and len(offsets) == 2
        and all(type(n) is int for n in offsets) and 0 <= offsets[0] <= offsets[1] <= body
    )  # fmt: skip
    if not ok:
        raise ValueError(f"the tensor {name!r} has a malformed header entry {str(entry)[:200]}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != offsets[1] - offsets[0]:
        raise ValueError(
            f"the tensor {name!r} claims shape {shape} ({nbytes} bytes) but the file holds "
            f"{offsets[1] - offsets[0]} bytes for it"
        )
    return dtype, tuple(shape), base + offsets[0], base + offsets[1]


def _views(data, entries):
    """The tensors as views of ``data``: nothing is copied or allocated per tensor."""
    tensors = {}
    for name, (dtype, shape, start, end) in entries.items():
        if start == end:
            tensors[name] = torch.empty(shape, dtype=dtype)
        elif start % dtype.itemsize:
            raise ValueError(f"the tensor {name!r} is not aligned in the file")
        else:
            flat = torch.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=start)
            tensors[name] = flat.reshape(shape)
    return tensors


def _read(path):
    """(JSON document, tensors, file size) of a skprune file, checked before any allocation."""
    data = _read_bytes(path)
    meta, entries = _parse_header(data)
    if meta.get("format") != "skprune":
        raise ValueError("not a skprune file (its metadata has no format 'skprune')")
    if meta.get("format_version") not in _READABLE_VERSIONS:
        raise ValueError(f"format version {meta.get('format_version')!r} is not supported")
    payload, digest = meta.get("skprune"), meta.get("sha256")
    if not isinstance(payload, str) or not isinstance(digest, str):
        raise ValueError("its metadata lacks the 'skprune' document or its 'sha256'")
    view = memoryview(data)
    chunks = {name: view[start:end] for name, (_, _, start, end) in entries.items()}
    if _checksum(payload, chunks) != digest:
        raise ValueError("its checksum does not match: the file was changed or damaged")
    try:
        doc = json.loads(payload)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"its 'skprune' document is not JSON ({exc})") from None
    return _checked_doc(doc), _views(data, entries), len(data)


_DOC_FIELDS = {
    "estimator": str, "params": dict, "attributes": dict, "state": dict, "sparsified": bool,
}  # fmt: skip


def _checked_doc(doc):
    if not isinstance(doc, dict):
        raise ValueError("its 'skprune' document is not a JSON object")
    for field, kind in _DOC_FIELDS.items():
        if not isinstance(doc.get(field), kind):
            raise ValueError(f"the field {field!r} is missing or not a {kind.__name__}")
    return doc


# -- rebuilding ------------------------------------------------------------------


def _build_estimator(doc, names):
    """The estimator with the file's parameters, each class resolved through ``names``."""
    cls = names.estimator(doc["estimator"], "the field 'estimator'")
    params = {}
    for key, value in doc["params"].items():
        if not key.isidentifier():
            raise ValueError(f"the parameter name {key!r} is not an identifier")
        params[key] = _decode(value, names, f"the parameter {key!r}")
    try:
        estimator = cls(**params)
        estimator._validate_params()  # module="os.system": a clear message, not a KeyError
    except TypeError as exc:
        raise ValueError(f"the parameters do not fit {cls.__name__}: {exc}") from None
    for key, base in (("module", nn.Module), ("optimizer", torch.optim.Optimizer)):
        value = getattr(estimator, key)
        if isinstance(value, type) and not issubclass(value, base):
            raise ValueError(
                f"the parameter {key!r} names {value!r}, not a subclass of {base.__name__}"
            )
    return estimator


def _set_attributes(estimator, doc, tensors, names):
    for name, value in doc["attributes"].items():
        estimator.__dict__[_attribute_name(name)] = _decode(value, names, f"the field {name!r}")
    for key in (k for k in tensors if k.startswith("attr.")):
        tensor = tensors[key]
        if tensor.dtype == torch.bfloat16:
            raise ValueError(f"the tensor {key!r} has a dtype numpy cannot hold")
        estimator.__dict__[_attribute_name(key[len("attr.") :])] = tensor.numpy().copy()
    _check_fitted_attributes(estimator)


def _attribute_name(name):
    if not (_ATTRIBUTE_NAME.match(name) or name in _PRIVATE_STATE) or name in ("net_", "history_"):
        raise ValueError(f"the file sets the attribute {name!r}, which is no fitted attribute")
    return name


def _check_fitted_attributes(estimator):
    n_features = getattr(estimator, "n_features_in_", None)
    if type(n_features) is not int or n_features < 1:
        raise ValueError(f"the field 'n_features_in_' is {n_features!r}, not a positive int")
    shape = getattr(estimator, "_input_shape", (n_features,))
    if not (isinstance(shape, tuple) and all(type(n) is int and n > 0 for n in shape)
            and math.prod(shape) == n_features):  # fmt: skip
        raise ValueError(
            f"the field '_input_shape' ({shape!r}) does not hold {n_features} features"
        )
    classes = getattr(estimator, "classes_", None)
    if classes is not None and not (
        isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) >= 1
    ):
        raise ValueError("the field 'classes_' is not a non-empty 1-D array")
    outputs = getattr(estimator, "n_outputs_", 1)
    if type(outputs) is not int or outputs < 1:
        raise ValueError(f"the field 'n_outputs_' is {outputs!r}, not a positive int")


def _expected_state(estimator):
    """The module's ``state_dict`` built on torch's ``meta`` device: shapes, no memory."""
    try:
        module, kwargs = estimator._resolve_module()
        with torch.device("meta"):
            return dict(module(**kwargs).state_dict())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"its parameters do not build a module ({exc})") from None


def _check_state(doc_state, tensors, expected, file_size):
    """Every module tensor against its stored form, before the module is allocated."""
    if set(doc_state) != set(expected):
        missing, extra = (
            sorted(set(expected) - set(doc_state)),
            sorted(set(doc_state) - set(expected)),
        )
        raise ValueError(
            f"the field 'state' does not match the module: missing {missing}, extra {extra}"
        )
    module_bytes = sum(t.numel() * t.element_size() for t in expected.values())
    if module_bytes > MAX_MODULE_EXPANSION * file_size:
        raise ValueError(
            f"its module would take {module_bytes} bytes, more than {MAX_MODULE_EXPANSION} "
            f"times the file's {file_size} (skprune.persistence.MAX_MODULE_EXPANSION)"
        )
    for key, entry in doc_state.items():
        field, target = f"the tensor for state {key!r}", expected[key]
        if not isinstance(entry, dict) or entry.get("shape") != list(target.shape):
            raise ValueError(
                f"{field} claims {str(entry)[:80]}; the module has shape {list(target.shape)}"
            )
        if entry.get("sparse") is True:
            _check_sparse(f"module.{key}", tensors, target, field)
        elif entry.get("sparse") is False:
            stored = tensors.get(f"module.{key}")
            if stored is None or stored.shape != target.shape or stored.dtype != target.dtype:
                raise ValueError(f"{field} is missing or not a {target.dtype} tensor of its shape")
        else:
            raise ValueError(f"{field} has no 'sparse' flag")


def _check_sparse(name, tensors, target, field):
    values, index = tensors.get(f"{name}.values"), tensors.get(f"{name}.index")
    if values is None or index is None:
        raise ValueError(f"{field} lacks its '.values' or '.index' tensor")
    if values.dtype != target.dtype or values.dim() != 1 or index.dtype != torch.int32:
        raise ValueError(f"{field} needs 1-D {target.dtype} values and int32 indices")
    if index.shape != values.shape or len(index) > target.numel():
        raise ValueError(f"{field} has {len(index)} indices for {len(values)} values")
    if len(index) and not (
        int(index[0]) >= 0
        and int(index[-1]) < target.numel()
        and bool((index[1:] > index[:-1]).all())
    ):
        raise ValueError(
            f"{field} has indices that are negative, not increasing or past its "
            f"{target.numel()} elements"
        )


def _fill_module(module, doc_state, tensors):
    """Copy the checked tensors into the freshly built module, in place."""
    state = module.state_dict()
    with torch.no_grad():
        for key, entry in doc_state.items():
            target, name = state[key], f"module.{key}"
            if not entry["sparse"]:
                target.copy_(tensors[name])
                continue
            target.zero_()
            index = tensors[f"{name}.index"].to(target.device, torch.long)
            target.view(-1)[index] = tensors[f"{name}.values"].to(target.device)


def _check_output(estimator, net):
    from ._checks import _check_output as check

    X = torch.zeros((2, *getattr(estimator, "_input_shape", (estimator.n_features_in_,))))
    check(estimator, net, X)


def _pick_device(estimator, device):
    if device is not None:
        estimator.set_params(device=device)
        return resolve_device(device)
    try:
        return resolve_device(estimator.device)
    except ValueError:
        warnings.warn(
            f"The model was saved with device={estimator.device!r}, which is not available; "
            "it is loaded on the CPU (device='cpu').",
            UserWarning,
            stacklevel=4,
        )
        estimator.set_params(device="cpu")
        return "cpu"


_LOAD_ERRORS = (ValueError, TypeError, KeyError, IndexError, RuntimeError, RecursionError)


def load(path, *, device=None, trusted=()):
    """Read an estimator written by :func:`save`; never unpickles, never runs the file's names.

    Parameters
    ----------
    path : str or path-like
    device : str or None, default=None
        Where the network goes (and the estimator's new ``device``). None: the
        saved ``device`` if available here, else the CPU (with a warning).
    trusted : sequence of classes or str, default=()
        User classes (a custom ``module``) the file may name, as classes or as
        exact ``"package.module.Class"`` paths. Without them a file can name
        only skprune's own estimators, modules, parts and callbacks and a short
        list of torch optimisers, layers and schedulers.

    Returns
    -------
    estimator : the fitted estimator, sparsified if it was when saved.

    Raises
    ------
    ValueError
        Naming the file and the field, if the file is not a skprune file, was
        changed, damaged or truncated, names a class that is not trusted, or
        holds tensors or metadata that do not fit its module.
    """
    names = Names(trusted)
    try:
        return _load(path, device, names)
    except _LOAD_ERRORS as exc:
        raise ValueError(f"Cannot load {os.fspath(path)!r}: {exc}") from exc


def _load(path, device, names):
    from skorch.history import History

    doc, tensors, file_size = _read(path)
    estimator = _build_estimator(doc, names)
    _set_attributes(estimator, doc, tensors, names)
    _check_state(doc["state"], tensors, _expected_state(estimator), file_size)
    history = None
    if doc.get("history") is not None:
        history = unpack_history(doc["history"], tensors, "the field 'history'")
    device = _pick_device(estimator, device)
    net = estimator._build_net(device, estimator._build_parts(device), 0, None).initialize()
    _fill_module(net.module_, doc["state"], tensors)
    _check_output(estimator, net)
    net.history = History(history or [])
    estimator.net_, estimator.history_ = net, net.history
    return sparsify(estimator) if doc["sparsified"] else estimator
