"""Checks of parameter values that constraints alone cannot express."""

import torch

__all__ = ["resolve_device"]


def resolve_device(device):
    """The torch device string for ``device`` ("auto" picks CUDA when present).

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    if str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            "The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'. "
            f"Got {device!r} instead."
        ) from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"The 'device' parameter is {device!r} but no CUDA device is available; "
                "use device='auto' or 'cpu'."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"The 'device' parameter is {device!r} but only "
                f"{torch.cuda.device_count()} CUDA device(s) are available."
            )
    elif parsed.type != "cpu":
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu' or a CUDA device. Got {device!r}."
        )
    return str(parsed)
