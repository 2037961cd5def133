"""The one foundation of the extension points: a part is a parameter object.

Regularizers, pruners, search strategies and schedules store their
``__init__`` arguments unchanged, as scikit-learn estimators do, and inherit
from :class:`Part` what an estimator's parameter needs: ``get_params`` and
``set_params`` (so ``regularizer__beta=5`` and ``GridSearchCV`` reach them),
``clone``, a readable ``repr`` (``L0(beta=5)``, in errors too) and one
:meth:`Part.validate` that checks the arguments against
``_parameter_constraints``.
"""

import inspect
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    validate_parameter_constraints,
)

__all__ = ["Part"]


class Part:
    """Base of every part: parameters from the ``__init__`` signature.

    Subclasses store each ``__init__`` argument as an attribute of the same
    name and declare what each may hold in ``_parameter_constraints``
    (scikit-learn's vocabulary: ``Interval``, ``StrOptions``, types, None).
    State made while training ends in ``_`` and is no parameter.

    Examples
    --------
    >>> class Scale(Part):
    ...     _parameter_constraints = {"factor": [Interval(Real, 0, None, closed="neither")]}
    ...
    ...     def __init__(self, factor=1.0):
    ...         self.factor = factor
    >>> Scale(factor=2.0)
    Scale(factor=2.0)
    >>> Scale().set_params(factor=3.0).get_params()
    {'factor': 3.0}
    >>> try:
    ...     Scale(factor=-1).validate()
    ... except ValueError as error:
    ...     print(error)
    The 'factor' parameter of Scale must be a float in the range (0.0, inf). Got -1 instead.
    """

    _parameter_constraints: dict = {}

    @classmethod
    def _get_param_names(cls):
        """The ``__init__`` arguments, sorted (scikit-learn's ``BaseEstimator`` rule)."""
        init = cls.__init__
        if init is object.__init__:
            return []
        params = inspect.signature(init).parameters.values()
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            raise TypeError(
                f"{cls.__name__}.__init__ takes *args; a part names every parameter in "
                "its signature (as scikit-learn estimators do), so that get_params, "
                "set_params and clone can rebuild it."
            )
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return sorted(p.name for p in params if p.name != "self" and p.kind in kinds)

    def get_params(self, deep=True):
        """The parameters, name -> value (with ``name__sub`` of nested parts when ``deep``)."""
        out = {}
        for name in self._get_param_names():
            if not hasattr(self, name):
                raise AttributeError(
                    f"{type(self).__name__}.__init__ takes {name!r} but stores no attribute "
                    f"of that name; a part stores every argument unchanged (self.{name} = "
                    f"{name}), as scikit-learn estimators do."
                )
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set parameters (``name`` or ``name__sub`` of a nested part); returns self."""
        valid = self._get_param_names()
        nested = {}
        for key, value in params.items():
            name, delim, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"{self!r} has no parameter {name!r}; its parameters are {valid}.")
            if delim:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def validate(self, estimator=None):
        """Check the parameters: a ``ValueError`` names the parameter, value and what is allowed.

        ``fit`` calls it before any training, with the estimator that uses the
        part. Subclasses that also check the part against the estimator's
        other settings override it and call ``super().validate(estimator)``
        first. Returns self.
        """
        params = self.get_params(deep=False)
        validate_parameter_constraints(
            self._parameter_constraints, params, caller_name=type(self).__name__
        )
        _reject_bools(self, params)
        return self

    def __repr__(self):
        changed = ", ".join(f"{k}={v!r}" for k, v in _changed_params(self).items())
        return f"{type(self).__name__}({changed})"


def _changed_params(part):
    """The parameters that differ from their ``__init__`` default, in signature order."""
    try:
        params = part.get_params(deep=False)
    except AttributeError:
        return {}
    defaults = {
        name: p.default
        for name, p in inspect.signature(type(part).__init__).parameters.items()
        if name in params
    }
    return {
        name: params[name]
        for name, default in defaults.items()
        if default is inspect.Parameter.empty or _differs(params[name], default)
    }


def _differs(value, default):
    if value is default:
        return False
    if _is_nan(value) and _is_nan(default):
        return False
    return repr(value) != repr(default)


def _is_nan(x):
    return isinstance(x, Real) and not isinstance(x, Integral) and bool(np.isnan(x))


def _reject_bools(part, params):
    """``True`` where a number is asked: scikit-learn's ``Interval`` lets bools through."""
    for name, constraints in part._parameter_constraints.items():
        value = params.get(name)
        numeric = any(isinstance(c, Interval) for c in constraints)
        numeric = numeric and "boolean" not in constraints and bool not in constraints
        if numeric and isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(part).__name__} must be a number, "
                f"not a bool. Got {value!r} instead."
            )
