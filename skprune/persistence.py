"""``skprune.save`` and ``skprune.load``: one safetensors file, never a pickle.

The file is a plain `safetensors <https://huggingface.co/docs/safetensors>`_
file, readable by any safetensors tool:

* the tensors: the trained module's ``state_dict``, each tensor stored dense
  or, when that is smaller (below 50 % density), as its non-zero ``values``
  and their flat ``index`` (int32), so that a pruned network's file grows
  with its non-zeros; and the numeric array attributes (``lambda_history_``);
* the safetensors ``metadata`` (str → str): ``format`` (``"skprune"``),
  ``format_version``, ``skprune`` (a JSON document: the estimator's class,
  its parameters, its fitted attributes, ``classes_`` with their dtype,
  ``history_``, whether it was sparsified) and ``sha256``, a checksum over
  the JSON and every tensor's name and bytes.

Loading parses JSON and raw tensor bytes only: nothing is unpickled. A
changed, damaged or truncated file raises a ``ValueError`` naming it.

Modules are rebuilt from their parameters: a built-in name (``"lenet5"``) is
rebuilt as in ``fit``; a user ``nn.Module`` subclass is stored by its import
path and rebuilt only if the caller trusts it (``trusted=[MyNet]`` or
``trusted=["mypkg.MyNet"]``, as in skops); classes under ``torch`` and
``skprune`` (optimizers, regularizers) are trusted. A module *instance*
cannot be rebuilt and is refused by ``save``.
"""

import hashlib
import importlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._validation import resolve_device
from .sparsify import is_sparsified, sparsify

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = "1"

_TRUSTED_PREFIXES = ("torch.", "skprune.")

#: Fitted attributes that are not learned data but needed to predict.
_PRIVATE_STATE = ("_input_shape", "_y_1d")


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(value, name):
    """JSON form of a parameter or attribute; tuples and classes are tagged."""
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
    if isinstance(value, type):
        return {"__class__": _class_path(value)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO":
        return {"__array__": value.dtype.str, "values": [_encode(v, name) for v in value]}
    raise ValueError(
        f"skprune.save cannot store {name}={value!r}: only numbers, strings, tuples, "
        "lists, dicts and classes are stored (an nn.Module instance as 'module' cannot "
        "be rebuilt; pass its class with module__<arg>=... instead)."
    )


def _decode(value, trusted):
    if isinstance(value, list):
        return [_decode(v, trusted) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v, trusted) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, trusted) for k, v in value["__dict__"].items()}
    if "__class__" in value:
        return _import_class(value["__class__"], trusted)
    if "__array__" in value:
        return np.array([_decode(v, trusted) for v in value["values"]], dtype=value["__array__"])
    raise ValueError(f"unknown tagged value {value!r}")


def _import_class(path, trusted):
    if not (path.startswith(_TRUSTED_PREFIXES) or path in trusted):
        raise ValueError(
            f"the file names the class {path!r}, which is not trusted; "
            f"pass trusted=[{path!r}] to skprune.load if you trust it."
        )
    module_name, _, qualname = path.rpartition(".")
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            qualname = f"{outer}.{qualname}"
    else:
        raise ValueError(f"cannot import the class {path!r}")
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise ValueError(f"{path!r} is not a class")
    return obj


def _sparse_parts(name, tensor):
    """Tensors storing ``tensor``: dense, or non-zero values and flat int32 indices."""
    flat = tensor.detach().cpu().reshape(-1)
    nonzero = flat.nonzero().flatten()
    if not tensor.is_floating_point() or len(nonzero) * 2 >= len(flat) or len(flat) >= 2**31:
        return {name: tensor.detach().cpu().contiguous()}, False
    return {f"{name}.values": flat[nonzero], f"{name}.index": nonzero.to(torch.int32)}, True


def _from_parts(tensors, name, entry):
    if not entry["sparse"]:
        return tensors[name]
    dtype = tensors[f"{name}.values"].dtype
    flat = torch.zeros(int(np.prod(entry["shape"], dtype=np.int64)), dtype=dtype)
    flat[tensors[f"{name}.index"].long()] = tensors[f"{name}.values"]
    return flat.reshape(entry["shape"])


def _fitted_attributes(estimator):
    names = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    names += [k for k in _PRIVATE_STATE if hasattr(estimator, k)]
    return [k for k in names if k not in ("net_", "history_")]


def _collect(estimator):
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
        "history": _history(estimator),
        "state": state,
        "sparsified": is_sparsified(estimator),
    }
    return doc, tensors


def _history(estimator):
    def default(obj):
        if isinstance(obj, (np.generic, torch.Tensor)):
            return obj.tolist()
        raise ValueError(f"skprune.save cannot store {obj!r} found in history_")

    return json.loads(json.dumps(list(estimator.history_), default=default))


def _checksum(payload, tensors):
    digest = hashlib.sha256(payload.encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save(estimator, path):
    """Write a fitted skprune estimator to ``path`` (a safetensors file).

    Parameters
    ----------
    estimator : SparseNetClassifier
        Fitted; sparsified or not (:func:`load` gives it back in that form).
    path : str or path-like

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

    if not isinstance(estimator, BaseEstimator) or not hasattr(type(estimator), "sparsify"):
        raise TypeError(
            f"skprune.save stores skprune estimators, not {type(estimator).__name__}; "
            "save a Pipeline's other steps with skops (see 'Deploying a sparse network')."
        )
    check_is_fitted(estimator, "net_")
    doc, tensors = _collect(estimator)
    payload = json.dumps(doc, sort_keys=True)
    metadata = {
        "format": "skprune",
        "format_version": FORMAT_VERSION,
        "skprune": payload,
        "sha256": _checksum(payload, tensors),
    }
    Path(path).write_bytes(save_tensors(tensors, metadata=metadata))


def _read(path):
    """(JSON document, tensors) of a skprune file; ValueError naming it if unreadable."""
    from safetensors.torch import load as load_tensors

    data = Path(path).read_bytes()
    try:
        size = int.from_bytes(data[:8], "little")
        if len(data) < 8 or size > len(data) - 8:
            raise ValueError("the file is truncated")
        meta = json.loads(data[8 : 8 + size])["__metadata__"]
        if meta.get("format") != "skprune":
            raise ValueError("not a skprune file")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {meta.get('format_version')!r} is not supported")
        tensors = load_tensors(data)
        payload = meta["skprune"]
        if _checksum(payload, tensors) != meta["sha256"]:
            raise ValueError("its checksum does not match: the file was changed or damaged")
        return json.loads(payload), tensors
    except Exception as exc:  # safetensors, json and our own checks alike
        raise ValueError(f"Cannot load {os.fspath(path)!r}: {exc}") from exc


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
            stacklevel=3,
        )
        estimator.set_params(device="cpu")
        return "cpu"


def load(path, *, device=None, trusted=()):
    """Read an estimator written by :func:`save`; never unpickles.

    Parameters
    ----------
    path : str or path-like
    device : str or None, default=None
        Where the network goes (and the estimator's new ``device``). None: the
        saved ``device`` if available here, else the CPU (with a warning).
    trusted : sequence of classes or import paths, default=()
        User classes (a custom ``module``) the file may name; classes under
        ``torch`` and ``skprune`` are always trusted.

    Returns
    -------
    estimator : the fitted estimator, sparsified if it was when saved.

    Raises
    ------
    ValueError
        If the file is not a skprune file, was changed, damaged or truncated,
        or names a class that is not trusted.
    """
    from skorch.history import History

    trusted = {t if isinstance(t, str) else _class_path(t) for t in trusted}
    doc, tensors = _read(path)
    try:
        cls = _import_class(doc["estimator"], trusted)
        estimator = cls(**{k: _decode(v, trusted) for k, v in doc["params"].items()})
    except ValueError as exc:
        raise ValueError(f"Cannot load {os.fspath(path)!r}: {exc}") from exc
    for name, value in doc["attributes"].items():
        setattr(estimator, name, _decode(value, trusted))
    for name in (k for k in tensors if k.startswith("attr.")):
        setattr(estimator, name[len("attr.") :], tensors[name].numpy())
    device = _pick_device(estimator, device)
    net = estimator._build_net(device, estimator._build_parts(device), 0, None).initialize()
    state = {k: _from_parts(tensors, f"module.{k}", e) for k, e in doc["state"].items()}
    net.module_.load_state_dict(state)
    net.history = History(doc["history"])
    estimator.net_, estimator.history_ = net, net.history
    return sparsify(estimator) if doc["sparsified"] else estimator
