"""The parts the loop calls: regularizers, pruners, gates, optimisers, schedules, registry."""

from ._channel_pruning import ChannelPruning
from ._constrained import HardConcrete
from ._gates import HardConcreteGate
from ._group_lasso import GroupLasso, GroupThresholdPruning
from ._input_groups import InputGroupL1
from ._lobster import LOBSTER, LobsterPruning
from ._magnitude import MagnitudePruning
from ._optim import SMGD, MAdam, MRMSProp, MultiObjectiveOptimizer
from ._pruning import Pruner, ThresholdPruning
from ._regularizers import L0, L1, L2, L2L0, ElementwiseRegularizer, Regularizer
from ._schedules import SigmoidLR

__all__ = [
    "Regularizer",
    "ElementwiseRegularizer",
    "L0",
    "L1",
    "L2",
    "L2L0",
    "GroupLasso",
    "GroupThresholdPruning",
    "InputGroupL1",
    "Pruner",
    "ThresholdPruning",
    "MagnitudePruning",
    "ChannelPruning",
    "LOBSTER",
    "LobsterPruning",
    "HardConcrete",
    "HardConcreteGate",
    "SMGD",
    "MAdam",
    "MRMSProp",
    "MultiObjectiveOptimizer",
    "SigmoidLR",
]
