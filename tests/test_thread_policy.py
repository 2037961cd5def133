"""The default thread policy: threads by the work of a step, one in a joblib worker."""

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed, parallel_config

from skprune import (
    ParetoSearchCV,
    SparseNetClassifier,
    lambda_path,
    set_torch_threads,
)
from skprune.estimators import _inference
from skprune.models import MLP, LeNet5
from skprune.training import _stack_loop, _threads
from skprune.training._threads import WORK_PER_THREAD, policy_threads, step_work

_SEEN = []
_LOAD_OF_OTHERS = _threads._load_of_others

#: 784-1000-10 at batch 64: 51 million multiply-adds per step, past 2 × WORK_PER_THREAD.
# The policy is for CPU threads: on a GPU a step's work is not the CPU's.
_CPU = dict(batch_size=64, max_epochs=1, random_state=0, device="cpu")
_LARGE = dict(module__hidden_layer_sizes=(1000,), **_CPU)
_TINY = dict(module__hidden_layer_sizes=(4,), **_CPU)


@pytest.fixture
def two_free_cores(monkeypatch):
    """The caller runs with 2 threads, and 2 cores are free; all put back afterwards."""
    _SEEN.clear()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(_threads, "_setting", {"n": _threads._UNSET})
    monkeypatch.delenv("SKPRUNE_TORCH_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_free_cores", lambda: 2)
    real = _stack_loop._train_stack
    monkeypatch.setattr(
        _stack_loop,
        "_train_stack",
        lambda *a: _SEEN.append(torch.get_num_threads()) or real(*a),
    )
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images():
    """64 random 28×28 images of 4 classes, flat."""
    rng = np.random.default_rng(0)
    return rng.random((64, 784), dtype=np.float32), np.arange(64) % 4


def test_step_work_counts_linear_and_convolution_multiply_adds():
    mlp, lenet = MLP(64, 10, (100,)), LeNet5(10)
    assert step_work(mlp, torch.zeros(2, 64), 64) == (64 * 100 + 100 * 10) * 64
    # conv1 1·3·3 per output of 6×26×26, conv2 6·3·3 per output of 16×11×11, then 400-120-84-10.
    convs = 9 * 6 * 26 * 26 + 54 * 16 * 11 * 11
    assert step_work(lenet, torch.zeros(1, 1, 28, 28), 1) == convs + 400 * 120 + 120 * 84 + 840
    assert lenet.training and mlp.training  # the probe gave the training mode back


def test_step_work_of_a_module_whose_forward_fails_counts_its_weights():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 5)

        def forward(self, x, needed):
            return self.layer(x)

    assert step_work(Odd(), torch.zeros(1, 3), 10) == 150


def test_policy_threads_by_work_cores_and_busy_machine(monkeypatch):
    assert policy_threads(None, cores=4) == 1
    assert policy_threads(64 * 7_400, cores=4) == 1  # the digits MLP
    assert policy_threads(2 * WORK_PER_THREAD, cores=4) == 2
    assert policy_threads(100 * WORK_PER_THREAD, cores=4) == 4
    # A 2-core machine, torch on 2 threads: idle, then busy with others' work.
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_threads.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(_threads, "_load_of_others", lambda: 0.2)
    assert _threads._free_cores() == 2
    assert policy_threads(100 * WORK_PER_THREAD) == 2
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    monkeypatch.setattr(_threads, "_load_of_others", _LOAD_OF_OTHERS)
    assert _threads._free_cores() == 1
    assert policy_threads(100 * WORK_PER_THREAD) == 1


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_policy_threads_is_one_inside_a_joblib_worker(backend):
    work = 100 * WORK_PER_THREAD
    assert policy_threads(work, cores=2) == 2
    with parallel_config(backend=backend):
        inside = Parallel(n_jobs=2)(delayed(policy_threads)(work, 2) for _ in range(2))
    assert inside == [1, 1]


@pytest.mark.parametrize("engine", [True, False])
def test_fit_threads_follow_the_work(two_free_cores, images, monkeypatch, engine):
    if not engine:  # skorch's loop: record in its forward instead
        monkeypatch.setattr("skprune.engine.fit_net", lambda *args: False)
        real = MLP.forward
        monkeypatch.setattr(
            MLP, "forward", lambda s, x: _SEEN.append(torch.get_num_threads()) or real(s, x)
        )
    for params in [_TINY, _LARGE]:
        SparseNetClassifier(**params).fit(*images)
        assert _SEEN[-1] == (2 if params is _LARGE else 1)
    assert torch.get_num_threads() == 2


def test_stacks_decide_by_their_total_work(two_free_cores, images):
    # 784-64-10 at batch 64: 3.3 million per copy, 13 million for 4 copies.
    clf = SparseNetClassifier(module__hidden_layer_sizes=(64,), **_CPU)
    lambda_path(clf, *images, [1e-4])
    lambda_path(clf, *images, [1e-4, 1e-3, 1e-2, 1e-1])
    assert _SEEN == [1, 2]


def test_prediction_threads_follow_the_rows(two_free_cores, images, monkeypatch):
    seen, forward = _SEEN, _inference.forward_outputs
    monkeypatch.setattr(
        _inference,
        "forward_outputs",
        lambda *a: seen.append(torch.get_num_threads()) or forward(*a),
    )
    clf = SparseNetClassifier(**_LARGE).fit(*images)
    _SEEN.clear()
    clf.predict(images[0][:1])
    clf.predict(np.repeat(images[0], 16, axis=0))  # 1,024 rows at once
    assert _SEEN == [1, 2]


def test_search_with_n_jobs_trains_on_one_thread(two_free_cores, images):
    search = ParetoSearchCV(
        SparseNetClassifier(**_LARGE), lambdas=[1e-4, 1e-3], strategy="grid", cv=2, n_jobs=2
    )
    with parallel_config(backend="threading"):
        search.fit(*images)
    assert _SEEN[:-1] == [1] * (len(_SEEN) - 1) and len(_SEEN) > 1
    assert _SEEN[-1] == 2  # the refit, in the caller's process after the workers


def test_explicit_settings_beat_the_policy(two_free_cores, images, monkeypatch):
    set_torch_threads(3)
    SparseNetClassifier(**_TINY).fit(*images)
    set_torch_threads("auto")
    SparseNetClassifier(**_LARGE).fit(*images)
    monkeypatch.setattr(_threads, "_setting", {"n": _threads._UNSET})  # as never called
    monkeypatch.setenv("SKPRUNE_TORCH_THREADS", "1")
    SparseNetClassifier(**_LARGE).fit(*images)
    assert _SEEN == [3, 2, 1] and torch.get_num_threads() == 2


def test_nested_block_gives_back_the_value_it_found(two_free_cores):
    with _threads.torch_threads():
        with _threads.torch_threads(100 * WORK_PER_THREAD):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_load_of_others_leaves_out_this_process(monkeypatch):
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    now = _threads.time.monotonic()
    # This process ran one core flat out for the last 60 s: the load is all its own.
    marks = [(now - 60, _threads.time.process_time() - 60)]
    monkeypatch.setattr(_threads, "_marks", _threads.deque(marks, maxlen=16))
    assert _threads._load_of_others() == pytest.approx(0.0, abs=0.05)
