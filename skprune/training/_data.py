"""Input handling shared by the estimators: images, sample weights, devices."""

import inspect

import numpy as np
import torch

__all__ = ["combined_weights", "part_defaults", "flatten_images", "cuda_indices"]


def combined_weights(sample_weight, target_weights):
    """The product of the (checked) sample and target weights; None when all are equal."""
    if sample_weight is None and target_weights is None:
        return None
    weight = np.ones(len(target_weights)) if sample_weight is None else sample_weight
    if target_weights is not None:
        weight = weight * target_weights
    weight = weight.astype(np.float32)
    if not weight.sum() > 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return None if np.all(weight == weight[0]) else weight


def part_defaults(cls):
    """The estimator parameters that only some parts read, with their defaults."""
    signature = inspect.signature(cls.__init__).parameters
    names = ("threshold", "target_density", "finetune_epochs", "loss_tolerance", "patience")
    return {name: signature[name].default for name in names}


def flatten_images(X):
    """(X as 2-D, per-sample shape): image batches (n, C, H, W) become (n, C·H·W)."""
    if not hasattr(X, "ndim"):  # lists; arrays, DataFrames and sparse matrices have it
        X = np.asarray(X)
    if X.ndim > 2:
        X = np.asarray(X)
        return X.reshape(len(X), -1), X.shape[1:]
    return X, (X.shape[1] if X.ndim == 2 else 0,)


def cuda_indices(device):
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
