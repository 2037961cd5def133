"""ParetoSearchCV(complexity=...) and knee="tolerance": choosing by cost."""

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skprune import ParetoSearchCV, SparseNetClassifier
from skprune.model_selection._objectives import measure_latency, n_features_used
from skprune.model_selection._pareto import knee_tolerance

LAMS = [1e-5, 3e-3, 3e-2]


@pytest.fixture(scope="module")
def small():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16).astype(np.float32), y[:300]


def _search(**params):
    # Adam's steps (lr) no larger than the threshold: groups reach zero element by element.
    est = SparseNetClassifier(
        regularizer="group_l1", lr=0.01, threshold=0.01, max_epochs=4, random_state=0
    )
    return ParetoSearchCV(est, **{"strategy": "grid", "lambdas": LAMS, "cv": 2, **params})


@pytest.fixture(scope="module")
def flops_search(small):
    return _search(complexity="flops", knee="tolerance", tolerance=0.05).fit(*small)


def test_complexity_flops_is_the_front_axis(flops_search):
    s = flops_search
    flops = s.cv_results_["mean_test_flops"]
    np.testing.assert_array_equal(s.pareto_front_[:, 1], flops[s.pareto_index_])
    assert s.knee_["flops"] == flops[s.knee_["cv_index"]]
    assert s.cv_results_["rank_test_flops"][np.argmin(flops)] == 1  # ascending: fewest first
    assert flops.max() <= 64 * 100 + 100 * 10 and flops.min() < flops.max()


def test_knee_tolerance_picks_the_cheapest_within_tolerance(flops_search):
    s = flops_search
    accuracy = s.cv_results_["mean_test_score"]  # scoring=None: accuracy for a tolerance knee
    flops = s.cv_results_["mean_test_flops"]
    within = accuracy >= accuracy.max() - 0.05
    assert s.knee_["flops"] == flops[within].min()
    assert s.knee_["loss"] == pytest.approx(1 - accuracy[s.knee_["cv_index"]])


def test_knee_tolerance_pure_rule_on_a_known_front():
    front = [[0.2, 1.0], [0.06, 5.0], [0.05, 9.0]]
    assert knee_tolerance(front, 0.01) == 1
    assert knee_tolerance(front, 0.0) == 2
    assert knee_tolerance(front, 0.5) == 0


def test_complexity_callable_receives_the_fitted_estimator(small):
    seen = []

    def cost(est):
        seen.append(type(est).__name__)
        return est.n_nonzero_

    s = _search(complexity=cost).fit(*small)
    assert set(seen) == {"SparseNetClassifier"}
    assert "mean_test_complexity" in s.cv_results_ and "complexity" in s.knee_
    np.testing.assert_array_equal(
        s.pareto_front_[:, 1], s.cv_results_["mean_test_complexity"][s.pareto_index_]
    )


def test_complexity_callable_must_return_a_number(small):
    s = _search(complexity=lambda est: "cheap", error_score="raise")
    with pytest.raises(TypeError, match="'complexity' callable of ParetoSearchCV must return"):
        s.fit(*small)


def test_complexity_features_counts_inputs_with_a_surviving_weight(small):
    s = _search(complexity="features").fit(*small)
    features = s.cv_results_["mean_test_features"]
    assert features.max() <= 64 and features.min() < features.max()
    assert n_features_used(s.best_estimator_) <= 64


def test_complexity_latency_is_measured_on_a_sparsified_copy(small):
    X, y = small
    clf = SparseNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    seconds = measure_latency(clf, X[:10], batch_size=32, repeats=3)
    assert 0 < seconds < 1
    assert not getattr(clf.net_, "_skprune_sparse", None)  # the estimator itself is left dense
    s = _search(complexity="latency", latency_batch_size=16).fit(X, y)
    assert (s.cv_results_["mean_test_latency"] > 0).all()


def test_plot_pareto_names_the_complexity(flops_search):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skprune.plotting import plot_pareto

    ax = plot_pareto(flops_search)
    assert "multiply-adds" in ax.get_xlabel() and "accuracy" in ax.get_ylabel()


def test_knee_tolerance_needs_tolerance(small):
    with pytest.raises(ValueError, match="'tolerance' parameter of ParetoSearchCV is required"):
        _search(knee="tolerance").fit(*small)


def test_tolerance_without_its_knee_warns(small):
    with pytest.warns(UserWarning, match="'tolerance' parameter .* is ignored with knee='chord'"):
        _search(tolerance=0.01, lambdas=[1e-5, 1e-3]).fit(*small)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tolerance": -0.1, "knee": "tolerance"}, "'tolerance' parameter"),
        ({"complexity": "speed"}, "'complexity' parameter"),
        ({"latency_batch_size": 0}, "'latency_batch_size' parameter"),
        ({"knee": "cheapest"}, "'knee' parameter"),
    ],
)
def test_search_rejects_bad_complexity_and_knee_settings(small, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        _search(**params).fit(*small)
