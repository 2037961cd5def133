"""Torch's process-wide state while skprune trains or predicts: threads, denormals, seed.

Threads follow the work (:func:`policy_threads`). A step of few
multiply-adds (the digits MLP: 7,400 per sample, 0.5 million per batch of
64) is over before a second thread has its share: the threads wait on each
other at every operation, and such a fit became tens of times slower on two
threads. A step of many (784-1000-1000-10: 1.8 million per sample, 115
million per batch) splits well. So ``fit``, ``partial_fit``, prediction and
the engine use one torch thread per :data:`WORK_PER_THREAD` multiply-adds of
a step (two from 8 million), at least one and at most the cores that other
processes leave free; one inside a joblib worker, where a search already
runs fits in parallel. The caller's setting is restored afterwards. The
"Threads" section of the engine guide has the measurements.

:func:`set_torch_threads` fixes the number for the process; the environment
variable ``SKPRUNE_TORCH_THREADS`` fixes it for processes started later
(``n_jobs`` workers), as ``OMP_NUM_THREADS`` does for OpenMP. Either beats
the policy.
"""

import math
import os
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from numbers import Integral

import torch
from joblib.parallel import get_active_backend

__all__ = [
    "WORK_PER_THREAD",
    "set_torch_threads",
    "get_torch_threads",
    "policy_threads",
    "step_work",
    "torch_threads",
    "flush_denormals",
    "seeded_rng",
]

#: Multiply-adds per step (forward, per sample × rows at once × stacked copies)
#: that each torch thread needs to pay for itself; measured on 2 cores (engine
#: guide, "Threads").
WORK_PER_THREAD = 4_000_000

_UNSET = object()
_setting = {"n": _UNSET}
_lock = threading.Lock()
_active = {"depth": 0, "previous": None}
_seeded = threading.RLock()
_probing = threading.Lock()
#: module -> (sample shape, multiply-adds per sample); weak, as the inference cache.
_MACS = weakref.WeakKeyDictionary()
#: (monotonic time, CPU time of this process) every 5 s or more, for :func:`_load_of_others`.
_marks = deque([(time.monotonic(), time.process_time())], maxlen=16)
_COUNTED = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)


def set_torch_threads(n):
    """Set the number of torch threads skprune trains and predicts with.

    Parameters
    ----------
    n : int >= 1, "auto" or None
        Threads for every ``fit``, ``partial_fit``, prediction and
        :func:`~skprune.lambda_path` of this process. "auto" (the default,
        unless the environment variable ``SKPRUNE_TORCH_THREADS`` holds an
        integer) chooses by the work of each step (:func:`policy_threads`);
        None leaves torch's own setting (``torch.get_num_threads()``) alone.

    Examples
    --------
    >>> from skprune import set_torch_threads
    >>> set_torch_threads(4)       # always 4, whatever the network
    >>> set_torch_threads("auto")  # back to the default: by the work
    """
    bad = not isinstance(n, Integral) or isinstance(n, bool) or n < 1
    if n is not None and n != "auto" and bad:
        raise ValueError(
            f"The number of torch threads must be an int >= 1, 'auto' or None. Got {n!r}."
        )
    _setting["n"] = n


def get_torch_threads():
    """The threads skprune trains with: an int, "auto" (by the work) or None (torch's own)."""
    n = _setting["n"]
    if n is _UNSET:
        return _threads_from_env(os.environ.get("SKPRUNE_TORCH_THREADS"))
    return n


def _threads_from_env(value):
    """The integer >= 1 in ``SKPRUNE_TORCH_THREADS`` (``value``; unset: ``"auto"``).

    Read at use, so that a bad value fails every fit and prediction with a
    message naming the variable, not with ``int()``'s.

    Examples
    --------
    >>> _threads_from_env(None), _threads_from_env(" 4 ")
    ('auto', 4)
    """
    if value is None:
        return "auto"
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


def policy_threads(work, cores=None):
    """Threads for a step of ``work`` multiply-adds: one per :data:`WORK_PER_THREAD`.

    One thread when ``work`` is None (unknown) or inside a joblib worker (a
    search with ``n_jobs`` > 1 already fills the cores), else
    ``work // WORK_PER_THREAD``, at least 1 and at most ``cores``. By default
    ``cores`` are those free now (:func:`_free_cores`): threads that wait
    for a core held by another process make each step many times slower.

    Examples
    --------
    >>> policy_threads(64 * 7_400, cores=2)  # digits MLP 64-100-10, batch 64
    1
    >>> policy_threads(64 * 1_794_000, cores=2)  # 784-1000-1000-10, batch 64
    2
    >>> policy_threads(64 * 1_794_000, cores=1)  # the other core is busy
    1
    """
    if work is None or _in_joblib_worker():
        return 1
    cores = _free_cores() if cores is None else cores
    return int(max(1, min(cores, work // WORK_PER_THREAD)))


def _in_joblib_worker():
    """Whether this code runs in a worker of a joblib ``Parallel`` (any backend).

    joblib runs each task under the backend it nests, whose
    ``nesting_level`` is 1 or more; the caller's is 0.
    """
    backend, _ = get_active_backend()
    return (getattr(backend, "nesting_level", 0) or 0) > 0


def _free_cores():
    """Cores torch may use now: its own count, within this process's CPUs and the load.

    torch's count follows ``OMP_NUM_THREADS``, which joblib sets to its share
    of the cores in the workers it starts. The load: the machine's cores
    less the threads other processes ran over the last minute (the load
    average less this process's own share).
    """
    outside = _active["previous"] if _active["depth"] else torch.get_num_threads()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        cpus = os.cpu_count() or 1
    # Threads that wait for a core held by another process make every step
    # wait (engine guide, "Threads": 784-1000-1000-10 took 0.3-4.1 s a pass
    # on two threads beside one busy process, 0.45 s on one).
    idle = (os.cpu_count() or cpus) - round(_load_of_others())
    return max(1, min(outside, cpus, idle))


def _load_of_others():
    """Runnable threads of other processes, on average over the last minute (0 if unknown)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return 0.0
    now, cpu = time.monotonic(), time.process_time()
    if now - _marks[-1][0] >= 5:
        _marks.append((now, cpu))
    # This process's share: its CPU time (all threads) over the wall time
    # since the newest mark a minute old, the span of the 1-minute load.
    then, cpu_then = next((m for m in reversed(_marks) if now - m[0] >= 60), _marks[0])
    own = (cpu - cpu_then) / max(now - then, 1e-3)
    return max(0.0, load - own)


def step_work(module, X, rows):
    """Multiply-adds of one forward of ``rows`` samples like ``X[0]`` (a CPU tensor, else None).

    Counted per sample by a forward of ``X[:1]`` (no gradient, eval mode),
    cached per module: ``in × out`` for a linear layer, ``in / groups × kh ×
    kw`` per output element for a convolution (LeNet-5: 0.2 million, its
    convolutions included). A module whose forward fails is counted by its
    weights: the multiply-adds of its linear layers.
    """
    if not isinstance(X, torch.Tensor) or X.device.type != "cpu" or not len(X):
        return None
    shape = tuple(X.shape[1:])
    with _probing:  # the probe switches the module to eval mode for a moment
        cached = _MACS.get(module)
        if cached is None or cached[0] != shape:
            cached = _MACS[module] = (shape, _macs_per_sample(module, X[:1]))
    return cached[1] * int(rows)


def _macs_per_sample(module, x):
    counts = []

    def count(layer, _, out):  # shapes only: a parametrized weight is not computed
        if isinstance(layer, torch.nn.Linear):
            per_output = layer.in_features
        else:
            per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        counts.append(per_output * out[0].numel())

    layers = [m for m in module.modules() if isinstance(m, _COUNTED)]
    hooks = [layer.register_forward_hook(count) for layer in layers]
    modes = [m.training for m in module.modules()]
    try:
        with torch.no_grad():
            module.eval()(x)
    except Exception:  # counted by its weights below
        counts = None
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in zip(module.modules(), modes):
            m.training = training
    if counts is None:
        return sum(p.numel() for p in module.parameters() if p.dim() > 1)
    return sum(counts)


@contextmanager
def torch_threads(work=None):
    """Run the block with the threads for ``work``; restore the caller's after.

    ``work`` are the multiply-adds of one step (:func:`step_work`; None:
    unknown, one thread). :func:`set_torch_threads` or
    ``SKPRUNE_TORCH_THREADS``, when set, decide instead of
    :func:`policy_threads`. Nested and concurrent blocks (threading backends)
    share one setting: the first to enter saves the caller's value, the last
    to leave restores it, also when the block raises; a nested block gives
    back the value it found.
    """
    n = get_torch_threads()
    if n is None:
        yield
        return
    if n == "auto":
        n = policy_threads(work)
    with _lock:
        found = torch.get_num_threads()
        if _active["depth"] == 0:
            _active["previous"] = found
        _active["depth"] += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _lock:
            _active["depth"] -= 1
            torch.set_num_threads(found if _active["depth"] else _active["previous"])


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
