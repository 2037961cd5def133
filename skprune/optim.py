"""Optimisers by name.

Weight updates stay in torch optimisers: a name resolves to an optimiser class
and its default keyword arguments, which ``optimizer__<name>=...`` overrides.
"""

import torch

__all__ = ["OPTIMIZERS", "make_optimizer"]


def _fused_if_cpu(estimator, device):
    # torch's single-tensor Adam/RMSprop loop is Python over parameters; the fused
    # CPU kernel does the same update in one call (CUDA picks foreach itself).
    return {"fused": True} if device.type == "cpu" else {}


#: name -> (torch optimiser class, factory(estimator, device) -> default kwargs)
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, lambda estimator, device: {}),
    "adam": (torch.optim.Adam, _fused_if_cpu),
    "rmsprop": (torch.optim.RMSprop, lambda estimator, device: {}),
}


def make_optimizer(estimator, device):
    """``(optimizer class, kwargs)`` for ``estimator.optimizer`` on ``device``."""
    spec = estimator.optimizer
    user_kwargs = estimator._prefixed_params("optimizer")
    if isinstance(spec, str):
        cls, defaults = OPTIMIZERS[spec]
        return cls, {**defaults(estimator, device), **user_kwargs}
    return spec, user_kwargs
