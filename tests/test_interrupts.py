"""All or nothing: interrupts at seeded moments, and caches on a full disk (issue 20).

An interrupt (``KeyboardInterrupt``, as Ctrl-C lands between two Python
statements) is raised at the n-th batch, epoch, candidate fit or refit batch,
with n drawn from a seeded generator among the moments an uninterrupted run
goes through. Each time, the search or the estimators must be exactly as they
were before the call: the same attributes (the very same objects) and the same
predictions, or still unfitted.

A cache folder on a full disk (a small tmpfs, mounted when the tests run as
root, else skipped) must cost only the cache: the search warns and finds the
knee it finds without ``memory``.
"""

import collections
import contextlib
import errno
import os
import pathlib
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

import skprune.training._stack_loop as stack_loop
from skprune import ParetoSearchCV, SparseNetClassifier, engine, lambda_path
from skprune.engine import fit_stacked, train_stackable
from skprune.model_selection._candidate import CandidateFit, load_fit
from skprune.model_selection._warm_start import WarmStart

LAMS = [1e-4, 1e-3, 1e-2]


@pytest.fixture(scope="module")
def small_digits():
    """300 digits (8x8, scaled to [0, 1]) and a held-out 100 to predict."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:300], y[:300], X[300:400]


def _clf(**params):
    defaults = dict(
        module__hidden_layer_sizes=(16,), max_epochs=2, batch_size=64, lr=1e-2, random_state=0
    )
    return SparseNetClassifier(**{**defaults, **params})


# -- moments -------------------------------------------------------------------


class Moments:
    """Counts the batches, epochs, candidate fits and refit batches that go by.

    ``interrupt_at(kind, n)`` raises ``KeyboardInterrupt`` at the n-th of them.
    The counts come from the engine's loop (``_fast_step``, ``_record_epoch``),
    from skorch's loop (the :class:`Tick` callback) and from ``CandidateFit.fit``.
    """

    def __init__(self):
        self.seen, self.target, self.n_rows = collections.Counter(), None, None

    def interrupt_at(self, kind, n):
        self.target = (kind, int(n))

    def tick(self, kind):
        self.seen[kind] += 1
        if self.target == (kind, self.seen[kind]):
            raise KeyboardInterrupt

    def batch(self):
        self.tick("batch")
        if self.seen["refit"]:  # inside the refit of a search
            self.tick("refit_batch")


_MOMENTS = [None]  # the Moments of the running test, for Tick


class Tick(Callback):
    """Counts skorch's batches and epochs (a fit the engine does not serve)."""

    def on_batch_end(self, net, **kwargs):
        _MOMENTS[0].batch()

    def on_epoch_end(self, net, **kwargs):
        _MOMENTS[0].tick("epoch")


@pytest.fixture
def moments(monkeypatch):
    """A fresh :class:`Moments`, hooked into both training loops and the candidates' fits."""
    moments = _MOMENTS[0] = Moments()
    fast_step, record_epoch = stack_loop._fast_step, stack_loop._record_epoch
    candidate_fit = CandidateFit.fit

    def counted_fast_step(optimizer):
        step = fast_step(optimizer)

        def counted():
            moments.batch()
            step()

        return counted

    def counted_record_epoch(*args):
        moments.tick("epoch")
        record_epoch(*args)

    def counted_candidate_fit(self, X, y=None, **params):
        moments.tick("refit" if len(X) == moments.n_rows else "fit")
        return candidate_fit(self, X, y, **params)

    monkeypatch.setattr(stack_loop, "_fast_step", counted_fast_step)
    monkeypatch.setattr(stack_loop, "_record_epoch", counted_record_epoch)
    monkeypatch.setattr(CandidateFit, "fit", counted_candidate_fit)
    yield moments
    _MOMENTS[0] = None


def _draw(rng, counts, kinds):
    """A seeded moment ``(kind, n)`` among those an uninterrupted run went through."""
    kinds = [k for k in kinds if counts[k]]
    kind = kinds[rng.integers(len(kinds))]
    return kind, rng.integers(1, counts[kind] + 1)


# -- what "as before" means ----------------------------------------------------


def _fitted_names(obj):
    return sorted(k for k in vars(obj) if k.endswith("_") and not k.startswith("__"))


def _snapshot(obj):
    """The attributes of ``obj`` (and of a pipeline's steps), as the objects they are."""
    objs = [obj, *(step for _, step in getattr(obj, "steps", []))]
    return [(o, dict(vars(o))) for o in objs]


def _assert_as_before(snapshot):
    for obj, before in snapshot:
        after = vars(obj)
        assert sorted(after) == sorted(before), type(obj).__name__
        changed = [k for k in before if after[k] is not before[k]]
        assert not changed, f"{type(obj).__name__}: {changed} replaced"


def _assert_unfitted(estimator):
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    assert _fitted_names(estimator) == []
    for _, step in getattr(estimator, "steps", []):
        assert _fitted_names(step) == []


def _run_interrupted(moments, moment, run, *args):
    """``run(*args)``, interrupted at ``moment``."""
    moments.seen.clear()
    moments.interrupt_at(*moment)
    with pytest.raises(KeyboardInterrupt):
        run(*args)
    assert moments.seen[moment[0]] == moment[1]  # the moment was reached
    moments.target = None


# -- ParetoSearchCV ------------------------------------------------------------


def _search(**params):
    defaults = dict(strategy="grid", lambdas=LAMS, cv=2)
    return ParetoSearchCV(_clf(), **{**defaults, **params})


@pytest.mark.parametrize("vectorize", ["auto", False])
@pytest.mark.parametrize("seed", range(3))
def test_search_first_fit_interrupted_at_seeded_moments_stays_unfitted(
    small_digits, moments, vectorize, seed
):
    X, y, _ = small_digits
    moments.n_rows = len(X)
    _search(vectorize=vectorize).fit(X, y)
    counts = dict(moments.seen)
    rng = np.random.default_rng(seed)
    for moment in [_draw(rng, counts, ["batch", "epoch", "fit"]), ("refit_batch", 1)]:
        search = _search(vectorize=vectorize)
        before = _snapshot(search)
        _run_interrupted(moments, moment, search.fit, X, y)
        _assert_as_before(before)
        _assert_unfitted(search)


@pytest.mark.parametrize("seed", range(4))
def test_search_refit_interrupted_at_seeded_moments_keeps_the_old_search(
    small_digits, moments, seed
):
    X, y, X_new = small_digits
    moments.n_rows = len(X)
    search = _search().fit(X, y)
    expected = search.predict_proba(X_new)
    old_knee, old_best = search.knee_, search.best_estimator_
    # The second fit asks for other λ values, so that a mix of the runs shows.
    search.set_params(lambdas=[2e-4, 5e-3, 5e-2])
    moments.seen.clear()
    _search(lambdas=[2e-4, 5e-3, 5e-2]).fit(X, y)  # the moments the second fit goes through
    counts = dict(moments.seen)
    rng = np.random.default_rng(seed)
    for kind in ["refit_batch", None]:
        moment = _draw(rng, counts, [kind] if kind else ["batch", "epoch", "fit", "refit"])
        before = _snapshot(search)
        _run_interrupted(moments, moment, search.fit, X, y)
        _assert_as_before(before)
        assert search.knee_ is old_knee and search.best_estimator_ is old_best
        np.testing.assert_array_equal(search.predict_proba(X_new), expected)


def test_search_interrupted_after_the_refit_keeps_the_old_search(small_digits, monkeypatch):
    """The last moment: the refit finished, the front and knee not yet recorded."""
    X, y, X_new = small_digits
    search = _search(lambdas=LAMS[:2]).fit(X, y)
    expected = search.predict_proba(X_new)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("skprune.search.knee_record", interrupted)
    search.set_params(lambdas=LAMS[1:])
    before = _snapshot(search)
    with pytest.raises(KeyboardInterrupt):
        search.fit(X, y)
    _assert_as_before(before)
    np.testing.assert_array_equal(search.predict_proba(X_new), expected)
    first = _search(lambdas=LAMS[:2])
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, y)
    _assert_unfitted(first)


def test_search_fit_publishes_every_fitted_attribute_and_only_those(small_digits):
    X, y, _ = small_digits
    search = _search(lambdas=LAMS[:2]).fit(X, y)
    search.set_params(refit=False).fit(X, y)  # no best_estimator_ left from the first fit
    assert isinstance(search.estimator, SparseNetClassifier)  # never left as the wrapper
    assert {"knee_", "lambdas_", "cv_results_", "pareto_front_"} <= set(_fitted_names(search))
    assert not hasattr(search, "best_estimator_")
    assert not [k for k in vars(search) if k in ("_round", "_strategy", "_train_round")]


# -- fit_stacked and lambda_path -------------------------------------------------


def _estimators(X, y, fitted, pipelines):
    """Three classifiers (or pipelines ending in one), the third trained by skorch's loop.

    The engine does not serve a validation split: that one falls back to its own
    fit. Those of ``fitted`` are fitted first.
    """
    ests = [
        _clf(lam=1e-4),
        _clf(lam=1e-2, random_state=1),
        _clf(lam=1e-3, validation_fraction=0.2, callbacks=[Tick()]),
    ]
    if pipelines:
        ests = [make_pipeline(StandardScaler(), est) for est in ests]
    for i in fitted:
        ests[i].fit(X, y)
    return ests


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fitted", [(), (0, 2), (0, 1, 2)])
@pytest.mark.parametrize("pipelines", [False, True])
def test_fit_stacked_interrupted_at_seeded_moments_is_all_or_nothing(
    small_digits, moments, seed, fitted, pipelines
):
    X, y, X_new = small_digits
    fit_stacked(_estimators(X, y, (), pipelines), X, y)
    counts = dict(moments.seen)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        ests = _estimators(X, y, fitted, pipelines)
        snapshots = [_snapshot(est) for est in ests]
        predictions = {i: ests[i].predict_proba(X_new) for i in fitted}
        moment = _draw(rng, counts, ["batch", "epoch"])
        _run_interrupted(moments, moment, fit_stacked, ests, X, y)
        for i, (est, snapshot) in enumerate(zip(ests, snapshots)):
            _assert_as_before(snapshot)
            if i in predictions:
                np.testing.assert_array_equal(est.predict_proba(X_new), predictions[i])
            else:
                _assert_unfitted(est)


def test_fit_stacked_diverging_fallback_restores_every_estimator(small_digits):
    """Any exception, not only an interrupt: here the ``FloatingPointError`` of a fit."""
    X, y, _ = small_digits
    ests = [_clf(lam=1e-4), _clf(lr=1e7, validation_fraction=0.2)]
    snapshots = [_snapshot(est) for est in ests]
    with pytest.raises(FloatingPointError):
        fit_stacked(ests, X, y)
    for est, snapshot in zip(ests, snapshots):
        _assert_as_before(snapshot)
        _assert_unfitted(est)


def test_train_stackable_leaves_what_it_did_not_fit_as_it_was(small_digits):
    X, y, _ = small_digits
    ests = [_clf(), _clf(callbacks=[Callback()]), _clf(lr=1e30)]  # served, unserved, diverges
    snapshots = [_snapshot(est) for est in ests]
    assert train_stackable(ests, X, y, [None] * 3) == [True, False, False]
    check_is_fitted(ests[0])
    for est, snapshot in zip(ests[1:], snapshots[1:]):
        _assert_as_before(snapshot)
        _assert_unfitted(est)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("template_fitted", [False, True])
def test_lambda_path_interrupted_at_seeded_moments_changes_nothing(
    small_digits, moments, monkeypatch, seed, template_fitted
):
    """The template is as before, and the estimators of the path were left unfitted."""
    X, y, X_new = small_digits
    template = _clf()
    lambda_path(template, X, y, LAMS)
    counts = dict(moments.seen)
    if template_fitted:
        template.fit(X, y)
        expected = template.predict_proba(X_new)
    built, fit_stacked = [], engine.fit_stacked

    def seen_fit_stacked(estimators, *args):  # the path's own estimators, kept to look at
        built.extend(estimators)
        return fit_stacked(estimators, *args)

    monkeypatch.setattr(engine, "fit_stacked", seen_fit_stacked)
    before = _snapshot(template)
    moment = _draw(np.random.default_rng(seed), counts, ["batch", "epoch"])
    _run_interrupted(moments, moment, lambda_path, template, X, y, LAMS)
    _assert_as_before(before)
    if template_fitted:
        np.testing.assert_array_equal(template.predict_proba(X_new), expected)
    else:
        _assert_unfitted(template)
    assert len(built) == len(LAMS)
    for est in built:
        _assert_unfitted(est)


# -- a cache that cannot be written ----------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_candidate_fit_failed_write_warns_and_keeps_the_fit(small_digits, tmp_path, monkeypatch):
    X, y, X_new = small_digits
    expected = _clf().fit(X, y).predict_proba(X_new)
    monkeypatch.setattr("skprune.model_selection._candidate.open", _no_space, raising=False)
    candidate = CandidateFit(_clf(), tmp_path)
    with pytest.warns(UserWarning, match=rf"{tmp_path}.*No space left.*kept but not cached"):
        candidate.fit(X, y)
    np.testing.assert_array_equal(candidate.predict_proba(X_new), expected)
    assert os.listdir(tmp_path) == []


def test_warm_start_failed_write_warns_and_keeps_the_fit(small_digits, tmp_path, monkeypatch):
    X, y, X_new = small_digits
    expected = _clf().fit(X, y).predict_proba(X_new)
    monkeypatch.setattr(pathlib.Path, "write_bytes", _no_space)
    clf = _clf(callbacks=[WarmStart(tmp_path)])
    with pytest.warns(UserWarning, match=rf"{tmp_path}.*No space left.*start cold"):
        clf.fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X_new), expected, atol=1e-6)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def full_disk(tmp_path, request):
    """A cache folder on a tmpfs of 256 kB, filled but for ``request.param`` kB (default 0).

    Each cached fit of these tests takes 32 kB. Needs root and mount(8), else skipped.
    """
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount(8) to mount a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        (mount / "memory").mkdir()
        with contextlib.suppress(OSError), open(mount / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        free = 1024 * getattr(request, "param", 0)
        os.truncate(mount / "filler", os.path.getsize(mount / "filler") - free)
        yield mount / "memory"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("full_disk", [0, 72], indirect=True, ids=["full", "fills-up"])
@pytest.mark.parametrize("vectorize", ["auto", False])
def test_search_memory_on_full_disk_warns_and_keeps_the_knee(small_digits, full_disk, vectorize):
    X, y, _ = small_digits
    expected = _search(vectorize=vectorize).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = _search(memory=full_disk, vectorize=vectorize).fit(X, y)
    assert len(_unwritable(caught, full_disk)) == 1  # once per search
    assert not np.isnan(search.cv_results_["mean_test_score"]).any()
    assert search.knee_["lam"] == expected.knee_["lam"]
    np.testing.assert_array_equal(search.lambdas_, expected.lambdas_)
    # What fitted on the disk is whole, and nothing is left half-written.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(load_fit(p, SparseNetClassifier) for p in full_disk.iterdir())
    assert all(p.suffix == ".pkl" for p in full_disk.iterdir())


def test_search_warm_start_on_full_disk_warns_and_trains_every_lambda(small_digits, full_disk):
    X, y, _ = small_digits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = _search(
            memory=full_disk, warm_start=True, strategy="bisection", lambdas=LAMS[::2], budget=4
        )
        search.fit(X, y)
    assert _unwritable(caught, full_disk)
    assert len(search.lambdas_) == 4
    assert not np.isnan(search.cv_results_["mean_test_score"]).any()
    assert list(full_disk.iterdir()) == []


def _unwritable(caught, folder):
    """The caught warnings that a write into ``folder`` failed for want of space."""
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    found = [m for m in messages if "Could not write" in m and str(folder) in m]
    assert all("No space left" in m for m in found)
    return found
