"""JSON forms of parameters and attributes: tagged tuples, dicts, arrays, classes and parts.

A class is stored by its dotted path and comes back only through
:class:`skprune._trusted.Names`; a part instance (``L0(beta=5)``) by its class
and its parameters, and comes back as ``cls(**params)`` only for a
:class:`~skprune._part.Part` class so named; arrays of strings have a bounded width.
"""

import numpy as np
import torch

from ..parts._part import Part
from ._trusted import class_path

__all__ = ["encode", "decode"]

#: JSON-stored arrays: strings of bounded width, objects, or numbers.
_ARRAY_KINDS = "USObiuf"


def encode(value, name):
    """JSON form of a parameter or attribute; tuples, classes and odd dicts are tagged."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, torch.device)):
        return value.item() if isinstance(value, np.generic) else str(value)
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, name) for v in value]}
    if isinstance(value, list):
        return [encode(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v, name) for k, v in value.items()}}
    if isinstance(value, dict):  # class_weight={0: 2.0}: keys that JSON cannot hold
        return {"__items__": [[encode(k, name), encode(v, name)] for k, v in value.items()]}
    if isinstance(value, type):
        return {"__class__": class_path(value)}
    if isinstance(value, Part):  # rebuilt from its parameters, as clone does
        params = value.get_params(deep=False)
        return {
            "__part__": class_path(type(value)),
            "params": {k: encode(v, f"{name}__{k}") for k, v in params.items()},
        }
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO":
        return {"__array__": value.dtype.str, "values": [encode(v, name) for v in value]}
    raise ValueError(
        f"skprune.save cannot store {name}={value!r}: it stores numbers, strings, "
        "tuples, lists, dicts, string arrays, classes and parts, not other instances "
        "(an nn.Module cannot be rebuilt; pass its class or name with "
        "<param>__<arg>=... instead)."
    )


def decode(value, names, field):
    """The value ``_encode`` stored; classes resolve through ``names`` only."""
    if isinstance(value, list):
        return [decode(v, names, field) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "__tuple__" in value and isinstance(value["__tuple__"], list):
        return tuple(decode(v, names, field) for v in value["__tuple__"])
    if len(value) == 1 and isinstance(value.get("__dict__"), dict):
        return {k: decode(v, names, f"{field}[{k!r}]") for k, v in value["__dict__"].items()}
    if len(value) == 1 and isinstance(value.get("__items__"), list):
        return _decode_items(value["__items__"], names, field)
    if len(value) == 1 and "__class__" in value:
        return names.resolve(value["__class__"], field)
    if set(value) == {"__part__", "params"} and isinstance(value["params"], dict):
        return _decode_part(value, names, field)
    if set(value) == {"__array__", "values"} and isinstance(value["values"], list):
        return _decode_array(value, field)
    raise ValueError(f"{field} holds an unknown tagged value {str(value)[:80]!r}")


def _decode_part(value, names, field):
    """A part rebuilt from its stored parameters; only a listed or trusted Part class."""
    cls = names.resolve(value["__part__"], field)
    if not (isinstance(cls, type) and issubclass(cls, Part)):
        raise ValueError(f"{field} names {value['__part__']!r}, which is not a skprune part")
    unknown = sorted(set(value["params"]) - set(cls._get_param_names()))
    if unknown:
        raise ValueError(f"{field} gives {cls.__name__} parameters it does not take: {unknown}")
    params = {k: decode(v, names, f"{field}[{k!r}]") for k, v in value["params"].items()}
    return cls(**params)


def _decode_items(items, names, field):
    pairs = [decode(item, names, field) for item in items]
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
