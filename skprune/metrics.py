"""Counting sparsity: densities are counted on the weights, never estimated."""

import torch
from torch import nn

__all__ = ["regularized_layers", "count_nonzero", "layer_density"]

#: Layer types whose weights ``regularized_layers="all"`` selects.
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def regularized_layers(module, spec="dense"):
    """The ``(name, layer)`` pairs whose ``weight`` is regularised and pruned.

    Parameters
    ----------
    module : torch.nn.Module
    spec : {"dense", "all"} or list of str, default="dense"
        ``"dense"``: every ``nn.Linear`` (the papers' choice); ``"all"``: linear
        and convolutional layers; a list: those sub-module names.

    Examples
    --------
    >>> from skprune.models import LeNet5
    >>> [name for name, _ in regularized_layers(LeNet5())]
    ['layer1', 'layer2', 'layer3']
    >>> [name for name, _ in regularized_layers(LeNet5(), "all")][:2]
    ['conv1', 'conv2']
    """
    modules = dict(module.named_modules())
    if isinstance(spec, str):
        kinds = nn.Linear if spec == "dense" else _WEIGHTED
        return [(n, m) for n, m in modules.items() if n and isinstance(m, kinds)]
    unknown = [name for name in spec if name not in modules]
    if unknown:
        raise ValueError(
            f"The 'regularized_layers' parameter names layers {unknown} that the "
            f"module does not have; its layers are {[n for n in modules if n]}."
        )
    return [(name, modules[name]) for name in spec]


@torch.no_grad()
def count_nonzero(weights):
    """(non-zeros, total) over a list of tensors.

    Examples
    --------
    >>> count_nonzero([torch.tensor([0.0, 1.0]), torch.tensor([[2.0, 0.0, 0.0]])])
    (2, 5)
    """
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
    return nonzero, sum(w.numel() for w in weights)


@torch.no_grad()
def layer_density(named_weights):
    """Dict name -> share of non-zero entries, for ``(name, tensor)`` pairs."""
    return {name: int(torch.count_nonzero(w)) / w.numel() for name, w in named_weights}
