"""What happens when things go wrong: interrupts, divergence, caches, module checks (issue 10).

The interrupt tests raise ``KeyboardInterrupt`` from a skorch callback (as a
Ctrl-C lands between two Python statements of the training loop) or from a
timer in the main thread (``_thread.interrupt_main``, as Ctrl-C does), at
seeded random moments, and check three things every time: the interrupt
propagates, no fit with fewer epochs than asked is in ``memory``, and the
search resumed from ``memory`` finds the knee of an uninterrupted one.
"""

import _thread
import collections
import contextlib
import os
import signal
import sys
import threading
import uuid
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback
from torch import nn

from skprune import ParetoSearchCV, SparseNetClassifier
from skprune.model_selection._candidate import _MAGIC, CandidateFit, dump_fit, load_fit

#: Batches (or epochs) seen per interrupt plan, in this process.
_SEEN = collections.Counter()


class InterruptAt(Callback):
    """Raises ``KeyboardInterrupt`` at the moment written in the file ``plan``.

    The plan (``"<token> <hook> <n>"``) lives outside the callback's
    parameters, so that interrupted and resumed searches share their cache
    keys; without the file the callback does nothing. Each process counts
    its own batches (``hook="batch"``) or epochs (``hook="epoch"``).
    """

    def __init__(self, plan):
        self.plan = plan

    def _tick(self, hook):
        try:
            token, when, n = Path(self.plan).read_text().split()
        except FileNotFoundError:
            return
        if when == hook:
            _SEEN[token] += 1
            if _SEEN[token] == int(n):
                raise KeyboardInterrupt

    def on_batch_end(self, net, **kwargs):
        self._tick("batch")

    def on_epoch_end(self, net, **kwargs):
        self._tick("epoch")


def _write_plan(plan, hook, n):
    Path(plan).write_text(f"{uuid.uuid4().hex} {hook} {n}")


MAX_EPOCHS = 2
LAMBDAS = [1e-4, 1e-3, 1e-2, 5e-2]


def _search(plan, memory, n_jobs=None):
    clf = SparseNetClassifier(
        max_epochs=MAX_EPOCHS, batch_size=32, random_state=0, callbacks=[InterruptAt(plan)]
    )
    return ParetoSearchCV(
        clf, strategy="grid", lambdas=LAMBDAS, cv=2, memory=memory, n_jobs=n_jobs, refit=False
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(X, y, knee λ of the uninterrupted search): one training per (λ, fold), no cache."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=90, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    X = X.astype(np.float32)
    plan = tmp_path_factory.mktemp("plan") / "none"
    return X, y, _search(plan, None).fit(X, y).knee_["lam"]


def _cached_epochs(memory):
    """``len(history_)`` and the epochs asked of every fit in ``memory``."""
    epochs = []
    for path in sorted(Path(memory).glob("*.pkl")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a damaged entry fails the test
            fitted = load_fit(path, SparseNetClassifier)
        epochs.append((len(fitted.history_), fitted.net_.max_epochs))
    return epochs


def _interrupt_and_resume(tmp_path, reference, rng, n_jobs=None, same_knee=True):
    """Interrupt one search at a random batch or epoch; check the cache and the resume.

    ``same_knee=False`` for threads: fits that run at once in one process share
    torch's global random generator, so even uninterrupted ones differ.
    """
    X, y, knee = reference
    plan, memory = tmp_path / "plan", tmp_path / "memory"
    # 4 λ x 2 folds x 2 epochs x 2 batches of 32 (45 training samples per fold).
    hook, n = (
        ("batch", rng.integers(1, 32)) if rng.random() < 0.7 else ("epoch", rng.integers(1, 16))
    )
    if n_jobs:  # each of the two workers counts its own half
        n = max(1, n // 2)
    _write_plan(plan, hook, n)
    with pytest.raises(KeyboardInterrupt):
        _search(plan, memory, n_jobs).fit(X, y)
    assert all(seen == asked for seen, asked in _cached_epochs(memory))
    plan.unlink()
    resumed = _search(plan, memory, n_jobs).fit(X, y)
    assert resumed.knee_["lam"] == knee or not same_knee
    assert len(_cached_epochs(memory)) == len(LAMBDAS) * 2


def _ctrl_c_and_resume(tmp_path, reference, moment, n_jobs=None):
    """Ctrl-C the main thread at ``moment``; check the cache and the resumed knee.

    ``moment`` is a number of Python calls made by the search in this process
    (a moment that does not depend on the machine's speed).
    """
    X, y, knee = reference
    plan, memory = tmp_path / "plan", tmp_path / "memory"
    assert _interrupt_main_at_call(moment, lambda: _search(plan, memory, n_jobs).fit(X, y))
    assert all(seen == asked for seen, asked in _cached_epochs(memory))
    assert _search(plan, memory, n_jobs).fit(X, y).knee_["lam"] == knee


@pytest.fixture(scope="module")
def n_calls(reference, tmp_path_factory):
    """Python calls made by an uninterrupted search, from a fresh ``memory``."""
    X, y, _ = reference
    folder = tmp_path_factory.mktemp("count")
    count = [0]

    def hook(frame, event, arg):
        count[0] += event == "call"

    sys.setprofile(hook)
    try:
        _search(folder / "plan", folder / "memory").fit(X, y)
    finally:
        sys.setprofile(None)
    return count[0]


def _interrupt_main_at_call(n, run):
    """Run ``run()`` and press Ctrl-C at its ``n``-th Python call, then every 20 ms.

    True if ``run`` ended by ``KeyboardInterrupt``. Ctrl-C is pressed again,
    as a user does, because CPython ignores an interrupt that lands in a
    finaliser ("Exception ignored in ..."); a thread presses, since an
    interrupt landing in the profile hook switches the hook off.
    """
    count, reached, stop = [0], threading.Event(), threading.Event()

    def hook(frame, event, arg):
        if event == "call":
            count[0] += 1
            if count[0] == n:
                reached.set()  # first: the interrupt may land in this very hook
                _thread.interrupt_main()

    def press():
        while not reached.wait(0.01):
            if stop.is_set():
                return
        while not stop.wait(0.02):
            _thread.interrupt_main()

    presser = threading.Thread(target=press)
    presser.start()
    sys.setprofile(hook)
    try:
        with _python_sigint():
            run()
    except KeyboardInterrupt:
        return True
    finally:
        _stop(lambda: (sys.setprofile(None), stop.set(), presser.join()))
    return False


@contextlib.contextmanager
def _python_sigint():
    """Python's own SIGINT handler, which ``interrupt_main`` needs to raise.

    A process started in the background by a shell inherits SIGINT ignored,
    and then ``interrupt_main`` does nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(stop_pressing):
    """Stop pressing Ctrl-C, absorbing the presses that land meanwhile."""
    while True:
        try:
            stop_pressing()
            _python_call()  # a press pending from before the stop lands here
            return
        except KeyboardInterrupt:
            pass


def _python_call():
    return None


# -- interrupts ------------------------------------------------------------


@pytest.mark.parametrize("hook, n", [("batch", 3), ("epoch", 1)])
def test_fit_interrupt_propagates_and_leaves_unfitted(blobs, tmp_path, hook, n):
    X, y = blobs
    plan = tmp_path / "plan"
    _write_plan(plan, hook, n)
    clf = SparseNetClassifier(max_epochs=3, random_state=0, callbacks=[InterruptAt(plan)])
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    assert not hasattr(clf, "history_")


def test_fit_interrupt_keeps_the_earlier_fit(blobs, tmp_path):
    X, y = blobs
    plan = tmp_path / "plan"
    clf = SparseNetClassifier(max_epochs=2, random_state=0, callbacks=[InterruptAt(plan)])
    before = clf.fit(X, y).predict_proba(X)
    net, history = clf.net_, clf.history_
    _write_plan(plan, "epoch", 1)
    with pytest.raises(KeyboardInterrupt):
        clf.set_params(random_state=1).fit(X, y)
    assert clf.net_ is net and clf.history_ is history
    np.testing.assert_array_equal(clf.predict_proba(X), before)


@pytest.mark.parametrize("seed", range(3))
def test_search_sequential_interrupt_resumes_to_same_knee(tmp_path, reference, seed):
    _interrupt_and_resume(tmp_path, reference, np.random.default_rng(seed))


def test_search_parallel_worker_interrupt_propagates(tmp_path, reference):
    with joblib.parallel_config(backend="threading"):
        _interrupt_and_resume(tmp_path, reference, np.random.default_rng(0), 2, same_knee=False)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("seed", range(2))
def test_search_parent_interrupt_resumes_to_same_knee(tmp_path, reference, n_calls, seed):
    moment = np.random.default_rng(seed).integers(1, 0.95 * n_calls)
    _ctrl_c_and_resume(tmp_path, reference, moment)
    assert not list((tmp_path / "memory").glob("*.part"))


class _HalfWriter:
    """A file whose ``write`` writes half of its bytes, then is interrupted."""

    def __init__(self, *args):
        self.file = open(*args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def write(self, data):
        self.file.write(data[: len(data) // 2])
        raise KeyboardInterrupt


def _interrupted(*args):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "where",
    ["skprune.model_selection._candidate.open", "skprune.model_selection._candidate.os.replace"],
)
def test_candidate_fit_interrupt_while_caching_writes_nothing(blobs, tmp_path, monkeypatch, where):
    X, y = blobs
    fake = _HalfWriter if where.endswith("open") else _interrupted
    monkeypatch.setattr(where, fake, raising=False)
    candidate = CandidateFit(SparseNetClassifier(max_epochs=1, random_state=0), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        candidate.fit(X, y)
    assert os.listdir(tmp_path) == []


# -- divergence --------------------------------------------------------------


@pytest.mark.parametrize("loop", ["engine", "skorch"])
def test_fit_divergence_raises_and_leaves_unfitted(digits, loop):
    X, _, y, _ = digits
    # At lr=1e6 every number stays finite; the cross-entropy explodes. A
    # callback keeps the fit on skorch's loop; both loops check every epoch.
    callbacks = [Callback()] if loop == "skorch" else None
    clf = SparseNetClassifier(lr=1e6, max_epochs=5, random_state=0, callbacks=callbacks)
    epoch = 1
    match = (
        rf"diverged at epoch {epoch}: the training cross-entropy .* over 100·ln K .*lr=1000000\.0"
    )
    with pytest.raises(FloatingPointError, match=match):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)


# -- the cache ---------------------------------------------------------------


def _truncate(path, X, y):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_last_byte(path, X, y):
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))


def _garbage(path, X, y):
    path.write_bytes(b"not a pickle")


def _other_fit(path, X, y):
    """Another valid fit's pickle under this entry's header and checksum."""
    other = path.with_name("other")
    dump_fit(SparseNetClassifier(max_epochs=1, lam=0.5, random_state=1).fit(X, y), other)
    head = len(_MAGIC) + 32
    path.write_bytes(path.read_bytes()[:head] + other.read_bytes()[head:])
    other.unlink()


def _unfitted(path, X, y):
    dump_fit(SparseNetClassifier(), path)


def _other_object(path, X, y):
    dump_fit({"lam": 1e-3}, path)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "checksum"),
        (_flip_last_byte, "checksum"),
        (_garbage, "checksum"),
        (_other_fit, "checksum"),
        (_unfitted, "not fitted"),
        (_other_object, "holds a dict"),
    ],
)
def test_candidate_fit_damaged_entry_warns_retrains_and_replaces(blobs, tmp_path, damage, reason):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, random_state=0)
    CandidateFit(clf, tmp_path).fit(X, y)
    (path,) = tmp_path.glob("*.pkl")
    expected = load_fit(path, SparseNetClassifier).predict_proba(X)
    damage(path, X, y)
    match = rf"cached fit .*{path.name}.* corrupt or truncated \(.*{reason}"
    with pytest.warns(UserWarning, match=match):
        refit = CandidateFit(SparseNetClassifier(max_epochs=1, random_state=0), tmp_path)
        refit.fit(X, y)
    np.testing.assert_allclose(refit.predict_proba(X), expected)
    assert load_fit(path, SparseNetClassifier) is not None


def test_search_damaged_entry_keeps_the_knee(tmp_path, reference):
    X, y, knee = reference
    plan, memory = tmp_path / "plan", tmp_path / "memory"
    _search(plan, memory).fit(X, y)
    path = sorted(memory.glob("*.pkl"))[3]
    _truncate(path, X, y)
    with pytest.warns(UserWarning, match=path.name):
        assert _search(plan, memory).fit(X, y).knee_["lam"] == knee


def _no_training(*args, **kwargs):
    raise AssertionError("trained before the memory was checked")


@pytest.mark.parametrize(
    "memory, match",
    [
        ("", r"'memory'.*got ''.*working directory"),
        ("   ", r"'memory'.*got '   '.*working directory"),
        ("file", r"'memory'.*must be a folder.*which is a file"),
    ],
)
def test_search_bad_memory_fails_before_training(blobs, tmp_path, monkeypatch, memory, match):
    X, y = blobs
    (tmp_path / "file").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(SparseNetClassifier, "fit", _no_training)
    search = ParetoSearchCV(SparseNetClassifier(), strategy="grid", lambdas=[1e-3], memory=memory)
    with pytest.raises(ValueError, match=match):
        search.fit(X, y)
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a read-only /proc")
def test_search_read_only_memory_fails_before_training(blobs, monkeypatch):
    # /proc cannot be written even by root, unlike a folder with mode 0o500.
    X, y = blobs
    monkeypatch.setattr(SparseNetClassifier, "fit", _no_training)
    search = ParetoSearchCV(SparseNetClassifier(), strategy="grid", lambdas=[1e-3], memory="/proc")
    with pytest.raises(ValueError, match=r"'memory'.*folder that can be written.*'/proc'"):
        search.fit(X, y)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_candidate_fit_read_only_folder_rejected(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(ValueError, match=r"'memory'.*can be written"):
        CandidateFit(SparseNetClassifier(), folder)


def test_candidate_fit_missing_memory_created(tmp_path):
    CandidateFit(SparseNetClassifier(), tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


# -- the module --------------------------------------------------------------


class FourOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(8, 4)

    def forward(self, x):
        return self.dense(x)


class NoDense(nn.Module):
    """Weights as bare parameters: nothing the estimator can regularise or prune."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 8) * 0.1)

    def forward(self, x):
        return x @ self.w.T


class WithDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(8, 3)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.dense(self.drop(x))


def test_fit_module_wrong_output_count_raises(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\).*returned \(2, 4\)"):
        SparseNetClassifier(FourOutputs(), max_epochs=1).fit(X, y)


@pytest.mark.parametrize(
    "params", [{"pruning": "auto"}, {"pruning": "global", "target_density": 0.5}]
)
def test_fit_module_without_regularisable_layers_raises(blobs, params):
    X, y = blobs
    clf = SparseNetClassifier(NoDense(), max_epochs=1, **params)
    with pytest.raises(ValueError, match=r"no layers to regularise or prune.*regularized_layers"):
        clf.fit(X, y)


def test_fit_dropout_in_regularized_layers_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(WithDropout(), regularized_layers=["dense", "drop"], max_epochs=1)
    with pytest.raises(ValueError, match=r"'regularized_layers'.*\['drop'\].*no weight"):
        clf.fit(X, y)


def test_fit_hidden_layer_size_zero_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(module__hidden_layer_sizes=(0,), max_epochs=1)
    with pytest.raises(ValueError, match=r"'hidden_layer_sizes'.*positive ints.*\(0,\)"):
        clf.fit(X, y)


def test_predict_image_of_other_shape_raises():
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 1, 8, 8), dtype=np.float32), np.arange(30) % 3
    clf = SparseNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"shape \(1, 4, 16\).*fitted on .*\(1, 8, 8\)"):
        clf.predict(X.reshape(30, 1, 4, 16))


# -- parameters that were ignored or misread ---------------------------------


def test_fit_target_density_under_threshold_pruning_warns(blobs):
    X, y = blobs
    clf = SparseNetClassifier(pruning="batch", target_density=0.5, max_epochs=1)
    with pytest.warns(UserWarning, match=r"'target_density' parameter \(0\.5\) is ignored"):
        clf.fit(X, y)


@pytest.mark.parametrize("name", ["batch_size", "max_epochs", "patience", "finetune_epochs"])
def test_fit_bool_for_integer_parameter_raises(blobs, name):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1).set_params(**{name: True})
    with pytest.raises(TypeError, match=rf"'{name}' parameter.*must be an int, not a bool"):
        clf.fit(X, y)


@pytest.mark.parametrize("key", ["callbacks__foo", "callbacks__foo__bar"])
def test_fit_routed_parameter_of_unknown_callback_raises(blobs, key):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, **{key: 1})
    with pytest.raises(ValueError, match=rf"\['{key}'\].*name no callback.*print_log"):
        clf.fit(X, y)


def test_fit_routed_parameter_of_known_callback_accepted(blobs):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, callbacks__print_log__floatfmt=".2f")
    assert clf.fit(X, y).net_.callbacks_[-1][1].floatfmt == ".2f"


def test_fit_validation_fraction_below_class_count_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(validation_fraction=0.01, max_epochs=1)
    with pytest.raises(ValueError, match=r"'validation_fraction'.*0\.01.*fewer than the 3"):
        clf.fit(X, y)


def test_fit_class_seen_once_warns_unstratified(blobs):
    X, y = blobs
    y = y.copy()
    y[0] = 3
    clf = SparseNetClassifier(validation_fraction=0.2, max_epochs=1)
    with pytest.warns(UserWarning, match=r"single sample.*validation_fraction=0\.2.*random"):
        clf.fit(X, y)


# -- many random moments (make bench) -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_search_sequential_interrupt_many_moments(tmp_path, reference, seed):
    _interrupt_and_resume(tmp_path, reference, np.random.default_rng(seed))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(150, 158))
def test_search_threads_worker_interrupt_many_moments(tmp_path, reference, seed):
    with joblib.parallel_config(backend="threading"):
        _interrupt_and_resume(tmp_path, reference, np.random.default_rng(seed), 2, False)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("seed", range(200, 208))
def test_search_parent_interrupt_many_moments(tmp_path, reference, n_calls, seed):
    moment = np.random.default_rng(seed).integers(1, 0.95 * n_calls)
    _ctrl_c_and_resume(tmp_path, reference, moment)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(300, 302))
def test_search_loky_worker_interrupt_many_moments(tmp_path, reference, seed):
    _interrupt_and_resume(tmp_path, reference, np.random.default_rng(seed), n_jobs=2)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_search_loky_parent_interrupt_propagates(tmp_path, reference):
    _ctrl_c_and_resume(tmp_path, reference, 3000, n_jobs=2)  # while dispatching


def test_search_rejects_a_bool_budget(digits):
    X, _, y, _ = digits
    with pytest.raises(TypeError, match="'budget' parameter of ParetoSearchCV must be an int"):
        ParetoSearchCV(SparseNetClassifier(max_epochs=1), budget=True).fit(X, y)


def test_threaded_fits_with_equal_seeds_are_equal(digits):
    from joblib import Parallel, delayed

    X, _, y, _ = digits

    def fit(seed):
        return SparseNetClassifier(max_epochs=2, random_state=seed).fit(X, y).predict_proba(X)

    probas = Parallel(n_jobs=4, backend="threading")(delayed(fit)(s) for s in [0, 1, 0, 1])
    np.testing.assert_array_equal(probas[0], probas[2])
    np.testing.assert_array_equal(probas[1], probas[3])
