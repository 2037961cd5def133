"""Names of the built-in parts, mapped to their classes.

The estimators resolve every string parameter here (``regularizer="l1"``,
``pruning="batch"``, ``optimizer="madam"``, ...); the search's strategies and
knee rules are named in :mod:`skprune.model_selection`. No other module imports
this one, so the parts never import each other through it. Adding a built-in
part is one class in its own module plus one line below.
"""

import torch
from sklearn.base import clone

from ._channel_pruning import ChannelPruning
from ._constrained import HardConcrete
from ._group_lasso import GroupLasso, GroupThresholdPruning
from ._input_groups import InputGroupL1
from ._lobster import LOBSTER, LobsterPruning
from ._magnitude import MagnitudePruning
from ._optim import SMGD, MAdam, MRMSProp
from ._pruning import ThresholdPruning
from ._regularizers import L0, L1, L2, L2L0

__all__ = [
    "REGULARIZERS",
    "PRUNERS",
    "OPTIMIZERS",
    "build_part",
    "optimizer_and_kwargs",
]

#: ``regularizer=`` name -> Regularizer class
REGULARIZERS = {
    "l1": L1,
    "l2": L2,
    "l0": L0,
    "l2_l0": L2L0,
    "lobster": LOBSTER,
    "hard_concrete": HardConcrete,
    "group_l1": GroupLasso,
    "input_group_l1": InputGroupL1,
}

#: ``pruning=`` name -> (Pruner class, the arguments the name fixes)
PRUNERS = {
    "batch": (ThresholdPruning, {"when": "batch"}),
    "epoch": (ThresholdPruning, {"when": "epoch"}),
    "after": (ThresholdPruning, {"when": "after"}),
    "global": (MagnitudePruning, {"method": "global"}),
    "layerwise": (MagnitudePruning, {"method": "layerwise"}),
    "random": (MagnitudePruning, {"method": "random"}),
    "lobster": (LobsterPruning, {}),
    "channel": (ChannelPruning, {}),
    "group": (GroupThresholdPruning, {"when": "batch"}),
}

#: ``optimizer=`` name -> torch optimiser class
OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "rmsprop": torch.optim.RMSprop,
    "smgd": SMGD,
    "madam": MAdam,
    "mrmsprop": MRMSProp,
}

#: torch's single-tensor Adam loop is Python over parameters; the fused CPU
#: kernel does the same update in one call (CUDA picks foreach itself).
_FUSED_ON_CPU = (torch.optim.Adam,)


def build_part(estimator, kind, spec, names=None):
    """The part ``spec`` (a name or an instance) for ``estimator``, with its routed settings.

    ``kind`` is ``"regularizer"``, ``"pruning"`` or ``"strategy"`` (of a
    :class:`~skprune.ParetoSearchCV`, which passes its own table of ``names``:
    the strategies live with the search); ``<kind>__<name>=value`` parameters set
    the part's own arguments. A part built from a name also takes the estimator
    parameters it declares in ``estimator_params``; an instance is cloned, so
    the estimator's parameter is never changed by a fit.
    """
    routed = estimator._prefixed_params(kind)
    if isinstance(spec, str):
        cls, fixed = (names[spec], {}) if names is not None else _KINDS[kind](spec)
    else:
        cls, fixed = type(spec), {}
    allowed = sorted(set(cls._get_param_names()) - set(fixed))
    unknown = sorted(set(routed) - set(allowed))
    if unknown:
        raise ValueError(
            f"{kind}={spec!r} got unknown parameters {[f'{kind}__{k}' for k in unknown]}; "
            f"it takes {[f'{kind}__{k}' for k in allowed] or 'none'}."
        )
    if not isinstance(spec, str):
        return clone(spec).set_params(**routed)
    own = {name: getattr(estimator, name) for name in getattr(cls, "estimator_params", ())}
    return cls(**{**own, **fixed, **routed})


#: part kind -> name -> (class, the arguments the name fixes)
_KINDS = {
    "regularizer": lambda name: (REGULARIZERS[name], {}),
    "pruning": PRUNERS.__getitem__,
}


def optimizer_and_kwargs(estimator, device):
    """``(optimizer class, kwargs)`` for ``estimator.optimizer`` on ``device``."""
    spec, kwargs = estimator.optimizer, estimator._prefixed_params("optimizer")
    if not isinstance(spec, str):
        return spec, kwargs
    cls = OPTIMIZERS[spec]
    if cls in _FUSED_ON_CPU and torch.device(device).type == "cpu":
        kwargs = {"fused": True, **kwargs}
    return cls, kwargs
