import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skprune import (
    SparseNetClassifier,
    get_torch_threads,
    lambda_path,
    set_torch_threads,
)
from skprune.estimators import _inference
from skprune.training import _threads
from skprune.training._threads import torch_threads

_SEEN = []  # callbacks are cloned when a fit begins: they record here


class _Record(Callback):
    """Records torch's thread count when training begins; raises ``error`` if set."""

    def __init__(self, error=None):
        self.error = error

    def on_train_begin(self, net, **kwargs):
        _SEEN.append(torch.get_num_threads())
        if self.error is not None:
            raise self.error


@pytest.fixture
def caller_threads():
    """The caller runs with 2 threads; everything is put back afterwards."""
    _SEEN.clear()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    _threads._setting["n"] = _threads._UNSET  # as set_torch_threads was never called
    torch.set_num_threads(before)


def test_torch_threads_fit_runs_with_one_thread_and_restores(blobs, caller_threads):
    seen = _SEEN
    SparseNetClassifier(max_epochs=1, callbacks=[_Record()]).fit(*blobs)
    assert seen == [1] and torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_torch_threads_restored_when_fit_raises(blobs, caller_threads, error):
    seen = _SEEN
    clf = SparseNetClassifier(max_epochs=1, callbacks=[_Record(error)])
    with pytest.raises(type(error)):
        clf.fit(*blobs)
    assert seen == [1] and torch.get_num_threads() == caller_threads


def test_torch_threads_partial_fit_predict_and_the_engine(blobs, caller_threads, monkeypatch):
    X, y = blobs
    seen, forward = _SEEN, _inference.forward_outputs
    monkeypatch.setattr(
        _inference,
        "forward_outputs",
        lambda *a: seen.append(torch.get_num_threads()) or forward(*a),
    )
    clf = SparseNetClassifier(max_epochs=1, callbacks=[_Record()])
    clf.partial_fit(X, y, classes=np.unique(y)).predict(X)
    lambda_path(SparseNetClassifier(max_epochs=1), X, y, [1e-4])[0].predict_proba(X)
    assert seen == [1, 1, 1] and torch.get_num_threads() == caller_threads


def test_set_torch_threads_overrides_the_default(blobs, caller_threads):
    seen = _SEEN
    set_torch_threads(3)
    SparseNetClassifier(max_epochs=1, callbacks=[_Record()]).fit(*blobs)
    set_torch_threads(None)  # torch's own setting, left alone
    SparseNetClassifier(max_epochs=1, callbacks=[_Record()]).fit(*blobs)
    assert seen == [3, caller_threads] and torch.get_num_threads() == caller_threads


def test_torch_threads_nested_blocks_restore_the_outermost(caller_threads):
    with torch_threads():
        with torch_threads():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == caller_threads


def test_torch_threads_environment_variable(monkeypatch, caller_threads):
    monkeypatch.setenv("SKPRUNE_TORCH_THREADS", "4")
    assert get_torch_threads() == 4
    monkeypatch.delenv("SKPRUNE_TORCH_THREADS")
    assert get_torch_threads() == "auto"


@pytest.mark.parametrize("n", [0, -2, 1.5, True, "2"])
def test_set_torch_threads_rejects_bad_values(n):
    with pytest.raises(
        ValueError, match="number of torch threads must be an int >= 1, .auto. or None"
    ):
        set_torch_threads(n)


class _Flushing(torch.nn.Module):
    """A linear model that records, at every forward, whether denormals are flushed."""

    def __init__(self, n_features=2, n_classes=2):
        super().__init__()
        self.layer1 = torch.nn.Linear(n_features, n_classes)

    def forward(self, x):
        _SEEN.append(_threads._flushing())
        return self.layer1(x)


@pytest.mark.parametrize("engine", [True, False])
def test_training_flushes_denormals_and_restores(blobs, monkeypatch, engine):
    _SEEN.clear()
    if not engine:  # skorch's loop
        monkeypatch.setattr("skprune.engine.fit_net", lambda *args: False)
    X, y = blobs
    clf = SparseNetClassifier(
        _Flushing, module__n_features=X.shape[1], module__n_classes=len(set(y)), max_epochs=1
    )
    clf.fit(X, y)
    lambda_path(clf, X, y, [1e-4])
    assert _SEEN and all(_SEEN) and not _threads._flushing()
    # A denormal float32 survives outside training.
    assert float(torch.tensor([1e-38]) * 0.25) > 0


def test_flush_denormals_keeps_the_callers_flushing():
    torch.set_flush_denormal(True)
    try:
        with _threads.flush_denormals():
            assert _threads._flushing()
        assert _threads._flushing()
    finally:
        torch.set_flush_denormal(False)
    assert not _threads._flushing()


@pytest.mark.parametrize("value", ["abc", "0", "-3", "", "2.5"])
def test_torch_threads_bad_environment_variable_names_it(blobs, monkeypatch, value):
    monkeypatch.setattr(_threads, "_setting", {"n": _threads._UNSET})
    clf = SparseNetClassifier(max_epochs=1).fit(*blobs)
    monkeypatch.setenv("SKPRUNE_TORCH_THREADS", value)
    match = rf"SKPRUNE_TORCH_THREADS must be an integer >= 1\. Got {value!r} instead\."
    for call in [get_torch_threads, lambda: clf.predict(blobs[0]), lambda: clf.fit(*blobs)]:
        with pytest.raises(ValueError, match=match):
            call()
