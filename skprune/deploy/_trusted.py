"""The classes :func:`skprune.load` may name: an explicit list, looked up by exact path.

A file names classes by dotted path (``"skprune.models.MLP"``). Loading never
imports a module or walks attributes because a file says so: a path resolves
only to a class listed here, or to one the caller passed in ``trusted=`` (a
class, matched by its own path; or an exact ``"package.module.Class"`` string,
whose module is imported and whose one attribute must be that class).
"""

import importlib

import torch
from torch import nn

__all__ = ["class_path", "Names"]

#: torch optimisers by name; a name missing from an older torch is skipped.
_TORCH_OPTIMIZERS = (
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
    "ASGD", "Rprop",
)  # fmt: skip
#: torch layers a user module may take as a class argument (``module__activation=nn.ReLU``).
_TORCH_LAYERS = (
    "ReLU", "LeakyReLU", "ELU", "GELU", "SELU", "SiLU", "Tanh", "Sigmoid", "Softplus",
    "Identity", "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
)  # fmt: skip
#: torch learning-rate schedulers a callback may take (``LRScheduler(policy=StepLR)``).
_TORCH_SCHEDULERS = (
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
    "OneCycleLR", "LinearLR", "ConstantLR",
)  # fmt: skip


def class_path(cls):
    """``"module.QualName"``: how a file names ``cls``."""
    return f"{cls.__module__}.{cls.__qualname__}"


#: Where the flat layout (before the subpackages) defined the listed classes. Files
#: saved then name a class by that path (``"skprune.regularizers.L1"``), which still loads.
_FLAT_MODULES = {
    "skprune.estimators._classes": "skprune.estimators",
    "skprune.estimators._checks": "skprune._checks",
    "skprune.training._net": "skprune._net",
    "skprune.training._stopping": "skprune._stopping",
    "skprune.parts._regularizers": "skprune.regularizers",
    "skprune.parts._pruning": "skprune.pruning",
    "skprune.parts._magnitude": "skprune.magnitude",
    "skprune.parts._lobster": "skprune.lobster",
    "skprune.parts._constrained": "skprune.constrained",
    "skprune.parts._gates": "skprune.gates",
    "skprune.parts._optim": "skprune.optim",
    "skprune.parts._schedules": "skprune.schedules",
}


def _by_path(classes):
    """``{path: class}`` for ``classes``: each one's own path, and its flat-layout path."""
    own = {class_path(c): c for c in classes}
    flat = {
        f"{_FLAT_MODULES[c.__module__]}.{c.__qualname__}": c
        for c in classes
        if c.__module__ in _FLAT_MODULES
    }
    return {**flat, **own}


def _estimators():
    from ..estimators._classes import SparseNetClassifier, SparseNetRegressor

    return [SparseNetClassifier, SparseNetRegressor]


def _parts():
    """Modules, regularizers, pruners, gates, schedules, callbacks and optimisers of skprune.

    Listed here by hand, not taken from the registry (which only the estimators
    import); a test checks that every registered part is listed.
    """
    from skorch import callbacks

    from ..estimators._checks import DivergenceCheck
    from ..models import MLP, LeNet5, VGGLike
    from ..parts._channel_pruning import ChannelPruning
    from ..parts._constrained import HardConcrete
    from ..parts._gates import HardConcreteGate
    from ..parts._group_lasso import GroupLasso, GroupThresholdPruning
    from ..parts._input_groups import InputGroupL1
    from ..parts._lobster import LOBSTER, LobsterPruning
    from ..parts._magnitude import MagnitudePruning
    from ..parts._optim import SMGD, LambdaHistory, MAdam, MRMSProp
    from ..parts._pruning import ThresholdPruning
    from ..parts._regularizers import L0, L1, L2, L2L0
    from ..parts._schedules import SigmoidLR
    from ..training._net import SparsityHistory
    from ..training._stopping import EarlyStopping

    torch_names = [
        *(getattr(torch.optim, n, None) for n in _TORCH_OPTIMIZERS),
        *(getattr(nn, n, None) for n in _TORCH_LAYERS),
        *(getattr(torch.optim.lr_scheduler, n, None) for n in _TORCH_SCHEDULERS),
    ]
    return [
        MLP, LeNet5, VGGLike, HardConcreteGate,
        L1, L2, L0, L2L0, LOBSTER, HardConcrete, GroupLasso, InputGroupL1,
        ThresholdPruning, MagnitudePruning, LobsterPruning, ChannelPruning, GroupThresholdPruning,
        SMGD, MAdam, MRMSProp,
        SigmoidLR, LambdaHistory, SparsityHistory, DivergenceCheck, EarlyStopping,
        callbacks.EarlyStopping, callbacks.LRScheduler, callbacks.GradientNormClipping,
        *(cls for cls in torch_names if cls is not None),
    ]  # fmt: skip


class Names:
    """Resolve the class paths of one file: skprune's list plus the caller's ``trusted``.

    Parameters
    ----------
    trusted : iterable of classes or str
        Classes, or exact dotted paths, the caller trusts besides skprune's own.
    """

    def __init__(self, trusted=()):
        self.estimators = _by_path(_estimators())
        self.classes = {**self.estimators, **_by_path(_parts())}
        self.trusted_paths = set()
        for item in trusted:
            if isinstance(item, type):
                self.classes[class_path(item)] = item
            elif isinstance(item, str):
                self.trusted_paths.add(item)
            else:
                raise TypeError(f"trusted holds classes or dotted paths, not {item!r}.")

    def resolve(self, path, field):
        """The class named ``path`` in ``field``; ValueError if nobody listed it."""
        if not isinstance(path, str):
            raise ValueError(f"{field} names a class by {path!r}, not by a dotted path")
        if path in self.classes:
            return self.classes[path]
        if path in self.trusted_paths:
            return _import_exact(path, field)
        raise ValueError(
            f"{field} names the class {path!r}, which skprune does not build; if you "
            f"trust it, pass trusted=[{path!r}] (or the class itself) to skprune.load."
        )

    def estimator(self, path, field):
        """The estimator class named ``path``: one of skprune's, or a trusted subclass."""
        from ..estimators._base import BaseSparseNet

        cls = self.resolve(path, field)
        if not (isinstance(cls, type) and issubclass(cls, BaseSparseNet)):
            raise ValueError(f"{field} names {path!r}, which is not a skprune estimator")
        return cls


def _import_exact(path, field):
    """The class at exactly ``module.Name``, where the caller trusted that string."""
    module_name, _, name = path.rpartition(".")
    try:
        obj = vars(importlib.import_module(module_name)).get(name)
    except ImportError as exc:
        raise ValueError(f"{field} names {path!r}, which cannot be imported: {exc}") from exc
    if not isinstance(obj, type) or class_path(obj) != path:
        raise ValueError(
            f"{field} names {path!r}, which is not a class defined at that path "
            "(only a class's own 'module.Name' path is trusted)"
        )
    return obj
