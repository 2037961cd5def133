"""Torch's process-wide state while skprune trains or predicts: threads, denormals, seed.

The networks skprune trains are small: their operations are too short to
split over threads, and the threads then compete with each other, with the
``n_jobs`` workers of a search and with anything else on the machine (see
the "Threads" section of the engine guide for the measured figures). So
``fit``, ``partial_fit``, prediction and the engine run under
``torch.set_num_threads(1)`` and restore the caller's setting afterwards.

:func:`set_torch_threads` changes it for the process; the environment
variable ``SKPRUNE_TORCH_THREADS`` sets it for processes started later
(``n_jobs`` workers), as ``OMP_NUM_THREADS`` does for OpenMP.
"""

import os
import threading
from contextlib import contextmanager
from numbers import Integral

import torch

__all__ = [
    "set_torch_threads",
    "get_torch_threads",
    "torch_threads",
    "flush_denormals",
    "seeded_rng",
]

_UNSET = object()
_setting = {"n": _UNSET}
_lock = threading.Lock()
_active = {"depth": 0, "previous": None}
_seeded = threading.RLock()


def set_torch_threads(n):
    """Set the number of torch threads skprune trains and predicts with.

    Parameters
    ----------
    n : int >= 1 or None
        Threads for every ``fit``, ``partial_fit``, prediction and
        :func:`~skprune.lambda_path` of this process; None leaves torch's own
        setting (``torch.get_num_threads()``) alone. The default is 1, or the
        integer in the environment variable ``SKPRUNE_TORCH_THREADS``.

    Examples
    --------
    >>> from skprune import set_torch_threads
    >>> set_torch_threads(4)   # large networks, an idle machine
    >>> set_torch_threads(1)   # back to the default
    """
    if n is not None and (not isinstance(n, Integral) or isinstance(n, bool) or n < 1):
        raise ValueError(f"The number of torch threads must be an int >= 1 or None. Got {n!r}.")
    _setting["n"] = n


def get_torch_threads():
    """The threads skprune trains with: an int, or None for torch's own setting."""
    n = _setting["n"]
    if n is _UNSET:
        return _threads_from_env(os.environ.get("SKPRUNE_TORCH_THREADS"))
    return n


def _threads_from_env(value):
    """The integer >= 1 in ``SKPRUNE_TORCH_THREADS`` (``value``; None when unset gives 1).

    Read at use, so that a bad value fails every fit and prediction with a
    message naming the variable, not with ``int()``'s.

    Examples
    --------
    >>> _threads_from_env(None), _threads_from_env(" 4 ")
    (1, 4)
    """
    if value is None:
        return 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(
            "The environment variable SKPRUNE_TORCH_THREADS must be an integer >= 1. "
            f"Got {value!r} instead."
        )
    return n


@contextmanager
def torch_threads():
    """Run the block with :func:`get_torch_threads` threads; restore the caller's after.

    Nested and concurrent blocks (threading backends) share one setting: the
    first to enter saves the caller's value, the last to leave restores it,
    also when the block raises.
    """
    n = get_torch_threads()
    if n is None:
        yield
        return
    with _lock:
        if _active["depth"] == 0:
            _active["previous"] = torch.get_num_threads()
        _active["depth"] += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _lock:
            _active["depth"] -= 1
            if _active["depth"] == 0:
                torch.set_num_threads(_active["previous"])


def _flushing():
    """Whether this thread flushes denormal floats to zero now (probed: torch has no getter)."""
    return float(torch.tensor([1e-38]) * 0.25) == 0.0


@contextmanager
def flush_denormals():
    """Train with denormal floats flushed to zero on this thread; restore the setting after.

    Adam's moments of a weight whose gradient is exactly 0 (a pruned weight
    on an input that is always 0, such as the border pixels of digits) decay
    by β each step into the denormal range (below 1.2e-38 in float32), where
    every CPU operation on them is many times slower: a 16-λ stack on digits
    took twice as long per epoch from epoch 13 on. Flushed, those numbers
    become 0; an update they would have made is below 1e-30. TensorFlow
    flushes denormals by default for the same reason. CPU only (no effect
    on CUDA, which keeps its own setting); the setting is per thread, so with
    more than one torch thread (:func:`set_torch_threads`) only the work done
    on the calling thread is flushed.
    """
    before = _flushing()
    if not before:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not before:
            torch.set_flush_denormal(False)


@contextmanager
def seeded_rng(seed, cuda_devices):
    """Run the block with torch's global generator seeded, then give the caller's back.

    That generator is shared by threads (joblib's threading backend): one
    seeded block at a time, so that equal seeds give equal networks.
    """
    with _seeded, torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield
