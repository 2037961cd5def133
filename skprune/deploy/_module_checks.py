"""A loaded file against the module it describes, checked before the module is allocated.

The module is built on torch's ``meta`` device (shapes and dtypes, no memory);
every stored tensor must match it, sparse indices must be increasing and
inside their tensor, and only then is the real module built and filled.
"""

import math

import numpy as np
import torch

__all__ = [
    "check_fitted_attributes",
    "expected_state",
    "check_state",
    "fill_module",
    "check_output",
]


def check_fitted_attributes(estimator):
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


def expected_state(estimator):
    """The module's ``state_dict`` built on torch's ``meta`` device: shapes, no memory."""
    try:
        module, kwargs = estimator._resolve_module()
        with torch.device("meta"):
            return dict(module(**kwargs).state_dict())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"its parameters do not build a module ({exc})") from None


def check_state(doc_state, tensors, expected, file_size, expansion):
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
    if module_bytes > expansion * file_size:
        raise ValueError(
            f"its module would take {module_bytes} bytes, more than {expansion} "
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


def fill_module(module, doc_state, tensors):
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


def check_output(estimator, net):
    from ..estimators._checks import _check_output as check

    X = torch.zeros((2, *getattr(estimator, "_input_shape", (estimator.n_features_in_,))))
    check(estimator, net, X)
