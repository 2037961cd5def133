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

import json
import os
import re
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..estimators._sparsify import is_sparsified, sparsify
from ..training._validation import resolve_device
from ._history_store import HISTORY_MODES, pack_history, unpack_history
from ._json_codec import decode, encode
from ._module_checks import (
    check_fitted_attributes,
    check_output,
    check_state,
    expected_state,
    fill_module,
)
from ._safetensors_file import checksum, parse_header, raw_bytes, read_bytes, views, write_atomic
from ._trusted import Names, class_path

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
            attributes[name] = encode(value, name)
    doc = {
        "estimator": class_path(type(estimator)),
        "params": {k: encode(v, k) for k, v in estimator.get_params(deep=False).items()},
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
        "sha256": checksum(payload, {k: raw_bytes(t) for k, t in tensors.items()}),
    }
    write_atomic(path, save_tensors(tensors, metadata=metadata))


# -- reading ---------------------------------------------------------------------


def _read(path):
    """(JSON document, tensors, file size) of a skprune file, checked before any allocation."""
    data = read_bytes(path)
    meta, entries = parse_header(data)
    if meta.get("format") != "skprune":
        raise ValueError("not a skprune file (its metadata has no format 'skprune')")
    if meta.get("format_version") not in _READABLE_VERSIONS:
        raise ValueError(f"format version {meta.get('format_version')!r} is not supported")
    payload, digest = meta.get("skprune"), meta.get("sha256")
    if not isinstance(payload, str) or not isinstance(digest, str):
        raise ValueError("its metadata lacks the 'skprune' document or its 'sha256'")
    view = memoryview(data)
    chunks = {name: view[start:end] for name, (_, _, start, end) in entries.items()}
    if checksum(payload, chunks) != digest:
        raise ValueError("its checksum does not match: the file was changed or damaged")
    try:
        doc = json.loads(payload)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"its 'skprune' document is not JSON ({exc})") from None
    return _checked_doc(doc), views(data, entries), len(data)


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
        params[key] = decode(value, names, f"the parameter {key!r}")
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
        estimator.__dict__[_attribute_name(name)] = decode(value, names, f"the field {name!r}")
    for key in (k for k in tensors if k.startswith("attr.")):
        tensor = tensors[key]
        if tensor.dtype == torch.bfloat16:
            raise ValueError(f"the tensor {key!r} has a dtype numpy cannot hold")
        estimator.__dict__[_attribute_name(key[len("attr.") :])] = tensor.numpy().copy()
    check_fitted_attributes(estimator)


def _attribute_name(name):
    if not (_ATTRIBUTE_NAME.match(name) or name in _PRIVATE_STATE) or name in ("net_", "history_"):
        raise ValueError(f"the file sets the attribute {name!r}, which is no fitted attribute")
    return name


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
    check_state(doc["state"], tensors, expected_state(estimator), file_size, MAX_MODULE_EXPANSION)
    history = None
    if doc.get("history") is not None:
        history = unpack_history(doc["history"], tensors, "the field 'history'")
    device = _pick_device(estimator, device)
    net = estimator._build_net(device, estimator._build_parts(device), 0, None).initialize()
    fill_module(net.module_, doc["state"], tensors)
    check_output(estimator, net)
    net.history = History(history or [])
    estimator.net_, estimator.history_ = net, net.history
    return sparsify(estimator) if doc["sparsified"] else estimator
