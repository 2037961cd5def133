import threading
import warnings
from unittest import mock

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skprune import ParetoSearchCV, SparseNetClassifier, engine
from skprune.model_selection._vectorize import _train, vectorize_reason

LAMS = [1e-4, 1e-3, 1e-2, 5e-2]


def _search(vectorize, clf=None, **kwargs):
    clf = clf or SparseNetClassifier(max_epochs=3, random_state=0, device="cpu")
    kwargs.setdefault("cv", 3)
    return ParetoSearchCV(clf, strategy="grid", lambdas=LAMS, vectorize=vectorize, **kwargs)


def _fit_counting(search, X, y, quiet=True):
    """Fit ``search``; return the number of separate ``SparseNetClassifier.fit`` calls."""
    real = SparseNetClassifier.fit
    with mock.patch.object(SparseNetClassifier, "fit", autospec=True, side_effect=real) as fit:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", UserWarning)  # collapsed networks warn
            search.fit(X, y)
    return fit.call_count


def _objectives(search):
    r = search.cv_results_
    keys = [f"split{s}_test_{name}" for s in range(3) for name in ("score", "density")]
    return np.column_stack([r[k] for k in keys])


@pytest.fixture(scope="module")
def blobs_module():
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def separate(blobs_module):
    search = _search(False)
    _fit_counting(search, *blobs_module)
    return search


def test_vectorize_gives_the_objectives_and_knee_of_separate_fits(blobs_module, separate, training):
    search = _search(True)
    with training as seen:
        n_fits = _fit_counting(search, *blobs_module)
    assert n_fits == 1  # the refit at the knee; the 12 (λ, fold) pairs trained together
    assert seen.stacks == [12, 1] and seen.loops == 0  # one stack of 12, then the refit
    assert np.allclose(_objectives(search), _objectives(separate), rtol=1e-4, atol=1e-5)
    assert search.knee_["lam"] == separate.knee_["lam"]
    assert np.array_equal(
        search.cv_results_["pareto_optimal"], separate.cv_results_["pareto_optimal"]
    )


def test_vectorize_n_jobs_trains_stacks_in_parallel(blobs_module, separate, training):
    search, lock = _search("auto", n_jobs=2), threading.Lock()

    def one_at_a_time(*args):
        # Threads share torch's global seed, which every fit sets (loky workers
        # do not); the lock keeps this fast test exact.
        with lock:
            return engine.train_stackable(*args)

    with mock.patch(
        "skprune.model_selection._vectorize.train_stackable", side_effect=one_at_a_time
    ) as stacked:
        with joblib.parallel_config(backend="threading"), training as seen:
            assert _fit_counting(search, *blobs_module) == 1
    assert [len(call.args[0]) for call in stacked.call_args_list] == [6, 6]
    assert seen.stacks == [6, 6, 1] and seen.loops == 0  # each half in one stack, the refit
    assert np.allclose(_objectives(search), _objectives(separate), rtol=1e-4, atol=1e-5)
    assert search.knee_["lam"] == separate.knee_["lam"]


def test_vectorize_auto_falls_back_for_unserved_settings(blobs_module):
    clf = SparseNetClassifier(regularizer="lobster", max_epochs=1, random_state=0)
    assert "LOBSTER()" in vectorize_reason(_search("auto", clf), clf, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with mock.patch("skprune.model_selection._vectorize.train_stackable") as stacked:
            _search("auto", clf, refit=False).fit(*blobs_module)
    stacked.assert_not_called()


@pytest.mark.parametrize(
    "clf_params, search_params, match",
    [
        (dict(regularizer="lobster"), {}, "regularizer LOBSTER\\(\\) is not"),
        ({}, dict(warm_start=True), "warm_start=True adds a WarmStart callback"),
    ],
)
def test_vectorize_true_warns_why_it_falls_back(blobs_module, clf_params, search_params, match):
    clf = SparseNetClassifier(max_epochs=1, random_state=0, **clf_params)
    search = _search(True, clf, refit=False, **search_params)
    with pytest.warns(UserWarning, match=f"vectorize=True\\) trains each .* alone: {match}"):
        n_fits = _fit_counting(search, *blobs_module, quiet=False)
    assert n_fits == len(LAMS) * 3


def _scaled_pipeline(transform_output="default"):
    scaler = StandardScaler().set_output(transform=transform_output)
    return make_pipeline(scaler, SparseNetClassifier(max_epochs=3, random_state=0))


def test_vectorize_pipeline_fits_its_steps_per_fold_and_stacks_the_networks(blobs_module, training):
    X, y = blobs_module
    X = X * 10 + 5  # the scaler changes what the networks see
    on, off = (
        _search(v, _scaled_pipeline(), param_name="sparsenetclassifier__lam") for v in (True, False)
    )
    with training as seen:
        assert _fit_counting(on, X, y) == 1  # the refit: the 12 (λ, fold) pairs trained together
    assert seen.stacks == [12, 1] and seen.loops == 0
    assert _fit_counting(off, X, y) == 1 + len(LAMS) * 3
    assert np.allclose(_objectives(on), _objectives(off), rtol=1e-4, atol=1e-5)
    assert on.knee_["lam"] == off.knee_["lam"]


def test_vectorize_pipeline_gives_each_fit_its_own_fold_steps(blobs_module, training):
    X, y = blobs_module
    folds = [train for train, _ in KFold(3).split(X)]
    stack = [
        (clone(_scaled_pipeline()).set_params(sparsenetclassifier__lam=lam), train, (lam, f))
        for lam in (1e-4, 1e-2)
        for f, train in enumerate(folds)
    ]
    with training as seen:
        fits = _train(stack, X, y, memory=None, keep=True)
    assert seen.stacks == [6] and seen.loops == 0
    for (lam, f), pipe in fits.items():
        own = clone(_scaled_pipeline()).set_params(sparsenetclassifier__lam=lam)
        own.fit(X[folds[f]], y[folds[f]])
        np.testing.assert_allclose(pipe[0].mean_, own[0].mean_)
        np.testing.assert_allclose(pipe.predict_proba(X), own.predict_proba(X), atol=1e-4)
    assert fits[(1e-4, 0)][0] is not fits[(1e-2, 0)][0]  # copies, not one shared scaler


def test_vectorize_pipeline_with_dataframe_output_trains_pair_by_pair(blobs_module):
    pytest.importorskip("pandas")
    search = _search(True, _scaled_pipeline("pandas"), param_name="sparsenetclassifier__lam")
    assert _fit_counting(search, *blobs_module) == 1 + len(LAMS) * 3


def test_vectorize_pipeline_searching_another_step_falls_back(blobs_module):
    pipe = make_pipeline(StandardScaler(), SparseNetClassifier())
    search = _search(True, pipe, param_name="standardscaler__with_mean")
    assert "is not the lam of the last step" in vectorize_reason(search, pipe, {})


def test_vectorize_numpy_false_trains_pair_by_pair(blobs_module):
    with mock.patch("skprune.model_selection._vectorize.train_stackable") as stacked:
        assert _fit_counting(_search(np.False_, refit=False), *blobs_module) == len(LAMS) * 3
    stacked.assert_not_called()


def test_vectorize_uses_and_fills_memory(blobs_module, tmp_path):
    search = _search(True, memory=tmp_path, refit=False)
    _fit_counting(search, *blobs_module)
    assert len(list(tmp_path.glob("*.pkl"))) == len(LAMS) * 3
    with mock.patch("skprune.model_selection._vectorize.train_stackable") as stacked:
        assert _fit_counting(search, *blobs_module) == 0
    stacked.assert_not_called()
    search.set_params(lambdas=LAMS + [2e-1])  # one new λ: its 3 folds alone are trained
    real = engine.train_stackable
    with mock.patch(
        "skprune.model_selection._vectorize.train_stackable", side_effect=real
    ) as stacked:
        _fit_counting(search, *blobs_module)
    assert [len(call.args[0]) for call in stacked.call_args_list] == [3]
    assert len(list(tmp_path.glob("*.pkl"))) == len(LAMS) * 3 + 3


def test_vectorize_diverged_copy_is_refit_alone(blobs_module, separate, training):
    real = engine.train_stack
    # The stack reports its first copy diverged: that pair trains in its own fit.
    with mock.patch("skprune.engine.train_stack", side_effect=lambda g, X: real(g, X) or [0]):
        search = _search(True, refit=False)
        with training as seen:
            assert _fit_counting(search, *blobs_module) == 1
    assert seen.stacks == [12, 1] and seen.loops == 0  # the stack, then that pair's own fit
    assert np.allclose(_objectives(search), _objectives(separate), rtol=1e-4, atol=1e-5)


def test_vectorize_diverging_fit_raises_as_its_own_fit(blobs_module):
    X, y = blobs_module
    clf = SparseNetClassifier(optimizer="sgd", lr=1e30, max_epochs=1, random_state=0)
    search = _search(True, clf, error_score="raise", refit=False)
    with pytest.raises(FloatingPointError, match="Training diverged"):
        search.fit(X * 1e10, y)


def test_vectorize_keyboard_interrupt_propagates(blobs_module):
    clf = SparseNetClassifier(max_epochs=1, random_state=0)
    search = _search(True, clf)
    with mock.patch("skprune.engine.train_stack", side_effect=KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            search.fit(*blobs_module)
    assert search.estimator is clf and not hasattr(search, "_train_round")


def test_vectorize_rejects_bad_values(blobs_module):
    with pytest.raises(ValueError, match="'vectorize' parameter of ParetoSearchCV must be"):
        _search("always").fit(*blobs_module)
