"""Search logic on a stub estimator whose loss and density per (λ, fold) are known.

No network trains here: ``_TableNet`` reads its objectives from a table, so the
front, the knee, the standard errors and the fold knees have exact answers.
"""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import PredefinedSplit

from skprune import ParetoSearchCV
from skprune.strategies import (
    Bisection,
    Dichotomic,
    Grid,
    SearchResults,
    SearchStrategy,
    StochasticDichotomic,
)

N_FOLDS, PER_FOLD = 3, 10


class _TableNet(ClassifierMixin, BaseEstimator):
    """Loss, density and Ω per (λ, fold) from ``table(lam) -> rows per fold``.

    Column 0 of X is the fold of each sample, column 1 its label: the fold a
    fit belongs to is the one missing from its training data. Every sample's
    label gets probability ``exp(−loss)``, so the validation cross-entropy is
    the table's loss; ``predict`` is right on the first ``1 − loss`` share of
    the samples, so ``scoring="accuracy"`` sees an error rate of ``loss``.
    """

    def __init__(self, lam=0.0, table=None, max_epochs=1):
        self.lam = lam
        self.table = table
        self.max_epochs = max_epochs

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        missing = set(range(N_FOLDS)) - set(X[:, 0].astype(int))
        fold = missing.pop() if missing else 0  # the refit sees every fold
        row = np.asarray(self.table(self.lam), dtype=float)[fold]
        self.error_, self.density_ = row[0], row[1]
        self.objectives_ = (row[0], row[2] if len(row) > 2 else row[1])
        return self

    def predict_proba(self, X):
        p = np.exp(-self.error_)
        right = X[:, 1].astype(int)[:, None] == self.classes_
        return np.where(right, p, 1 - p)

    def predict(self, X):
        right = np.arange(len(X)) < round((1 - self.error_) * len(X))
        return np.where(right, X[:, 1], X[:, 1] + 1)


def _data():
    X = np.column_stack([np.repeat(np.arange(N_FOLDS), PER_FOLD), np.arange(30) % 2])
    return X.astype(float), X[:, 1].astype(int)


def _search(table, **kwargs):
    X, _ = _data()
    return ParetoSearchCV(_TableNet(table=table), cv=PredefinedSplit(X[:, 0]), **kwargs)


def _fit(table, **kwargs):
    return _search(table, **kwargs).fit(*_data())


#: Five λ with three folds' error and density; mean errors
#: [0.12, 0.14, 0.3167, 0.4633, 1.1], standard errors [0.0231, 0.0115, ...].
#: The chord picks 3e-2, the ideal point 1e-2, one standard error 1e-3.
LAMS = [1e-4, 1e-3, 1e-2, 3e-2, 1e-1]
ERRORS = np.array(
    [
        [0.08, 0.16, 0.12],
        [0.12, 0.16, 0.14],
        [0.30, 0.33, 0.32],
        [0.40, 0.50, 0.49],
        [1.00, 1.10, 1.20],
    ]
)
DENSITY = [1.0, 0.55, 0.22, 0.04, 0.02]


def _known(lam):
    i = LAMS.index(lam)
    return [(ERRORS[i, f], DENSITY[i]) for f in range(N_FOLDS)]


@pytest.mark.parametrize(
    "knee, lam, fold_lams",
    [
        ("chord", 3e-2, [3e-2, 3e-2, 3e-2]),
        ("ideal", 1e-2, [1e-2, 3e-2, 1e-2]),
        ("one_se", 1e-3, [1e-4, 1e-3, 1e-3]),
    ],
)
def test_search_knee_rules_give_the_known_knee_and_fold_knees(knee, lam, fold_lams):
    search = _fit(_known, strategy="grid", lambdas=LAMS, knee=knee)
    assert search.knee_["lam"] == lam and search.best_params_ == {"lam": lam}
    assert search.knee_["fold_lams"] == fold_lams
    assert search.knee_["stability"] == pytest.approx(fold_lams.count(lam) / 3)
    assert search.knee_["rule"] == knee


def test_search_standard_error_is_the_sample_std_over_root_n_folds():
    search = _fit(_known, strategy="grid", lambdas=LAMS)
    expected = ERRORS.std(axis=1, ddof=1) / np.sqrt(N_FOLDS)
    assert np.allclose(search.cv_results_["sem_test_score"], expected)
    knee = search.knee_
    assert knee["loss"] == pytest.approx(ERRORS[3].mean())
    assert knee["loss_se"] == pytest.approx(expected[3])
    assert np.allclose(search.loss_path_, ERRORS) and np.allclose(
        search.density_path_[:, 0], DENSITY
    )
    expected_front = [[ERRORS[i].mean(), DENSITY[i]] for i in (4, 3, 2, 1, 0)]
    assert np.allclose(search.pareto_front_, expected_front)


def test_search_accuracy_scoring_makes_the_loss_an_error_rate():
    table = {1e-3: [(0.1, 0.9)] * 3, 1e-2: [(0.2, 0.3)] * 3, 1e-1: [(0.6, 0.1)] * 3}
    search = _fit(table.get, strategy="grid", lambdas=list(table), scoring="accuracy")
    assert search.cv_results_["mean_test_score"].tolist() == pytest.approx([0.9, 0.8, 0.4])
    assert search.pareto_front_[:, 0].tolist() == pytest.approx([0.6, 0.2, 0.1])
    assert search.knee_["lam"] == 1e-2
    assert search.knee_["accuracy"] == pytest.approx(0.8)
    assert search.knee_["loss"] == pytest.approx(0.2)


def test_search_omega_complexity_builds_the_front_on_omega():
    # 1e-3 and 1e-2 have the same density, so 1e-2 is dominated; its Ω is smaller.
    table = {
        1e-4: [(0.10, 0.9, 900.0)] * 3,
        1e-3: [(0.12, 0.5, 100.0)] * 3,
        1e-2: [(0.30, 0.5, 20.0)] * 3,
        1e-1: [(0.90, 0.1, 10.0)] * 3,
    }
    lams = list(table)
    by_omega = _fit(table.get, strategy="grid", lambdas=lams, complexity="omega")
    assert by_omega.pareto_front_[:, 1].tolist() == [10.0, 20.0, 100.0, 900.0]
    assert by_omega.knee_["lam"] == 1e-3 and by_omega.knee_["omega"] == 100.0
    by_density = _fit(table.get, strategy="grid", lambdas=lams)
    assert np.allclose(by_density.pareto_front_[:, 1], [0.1, 0.5, 0.9])
    assert not by_density.cv_results_["pareto_optimal"][2]


def _smooth(lam):
    """A front with its knee near λ = 1e-3: density falls with λ, the error rises past 1e-3."""
    error = 0.05 + 0.9 * min(1.0, (lam / 2e-2) ** 2)
    density = 1 / (1 + lam / 1e-4)
    return [(error, density)] * N_FOLDS


def test_bisection_ends_before_its_budget_once_the_knee_is_resolved():
    search = _fit(_smooth, strategy="bisection", budget=12)
    lams = search.lambdas_
    assert 5 < len(lams) < 12
    k = int(np.flatnonzero(lams == search.knee_["lam"])[0])
    assert np.log10(lams[k + 1] / lams[k]) <= 0.5 and np.log10(lams[k] / lams[k - 1]) <= 0.5
    finer = _fit(_smooth, strategy=Bisection(resolution=0.05), budget=12)
    assert len(finer.lambdas_) == 12


def test_strategy_instance_is_cloned_and_settable_through_the_search():
    strategy = Bisection(resolution=0.25)
    search = _search(_smooth, strategy=strategy, budget=6)
    assert search.get_params()["strategy__resolution"] == 0.25
    search.set_params(strategy__resolution=0.3).fit(*_data())
    assert not hasattr(strategy, "lambdas_") and not hasattr(search.strategy, "budget_")
    # routed as regularizer__<name> is in the estimators: the instance itself is never changed
    assert clone(search).get_params()["strategy__resolution"] == 0.3
    assert strategy.resolution == 0.25


@pytest.mark.parametrize(
    "strategy, match",
    [
        (Bisection(resolution=-1.0), "'resolution' parameter of Bisection must be"),
        (Bisection(n_start=1), "'n_start' parameter of Bisection must be"),
        (Dichotomic(tol=-1), "'tol' parameter of Dichotomic must be"),
        ("golden", "'strategy' parameter of ParetoSearchCV must be"),
    ],
)
def test_search_rejects_bad_strategy_options(strategy, match):
    with pytest.raises(ValueError, match=match):
        _search(_smooth, strategy=strategy).fit(*_data())


def test_grid_thins_a_long_list_evenly_and_defaults_to_nine_weights():
    assert Grid().initialize([1e-4, 1e-3, 1e-2, 1e-1, 0.5], budget=3).first() == [1e-4, 1e-2, 0.5]
    assert len(Grid().initialize().first()) == 9
    assert Grid().initialize().propose(None) == []


def test_dichotomic_proposes_the_equal_weight_and_stops():
    table = {1e-5: [(0.1, 1.0, 400.0)] * 3, 1e-1: [(0.9, 0.1, 0.0)] * 3}

    def lookup(lam):  # every other λ lands between the two ends
        return table.get(lam, [(0.6, 0.5, 100.0)] * 3)

    search = _fit(lookup, strategy="dichotomic", budget=8)
    # The ends, then λ = 0.8 / 400.8 (Algorithm 3, line 11), then only weights
    # within 1e-3 of it: the search stops.
    assert np.allclose(search.lambdas_, [1e-5, 0.8 / 400.8, 1e-1])
    stochastic = _fit(lookup, strategy=StochasticDichotomic(), random_state=0, budget=8)
    assert len(stochastic.lambdas_) >= 3


class _EveryOther(SearchStrategy):
    """A user strategy: the interval's ends, then the knee's λ times ``factor``."""

    def __init__(self, factor=2.0):
        self.factor = factor

    def first(self):
        return list(self.lambdas_)

    def propose(self, results):
        assert isinstance(results, SearchResults)
        assert results.knee in results.front
        return [results.knee_lam * self.factor]


def test_a_user_strategy_drives_the_search_until_it_proposes_known_weights():
    search = _fit(_smooth, strategy=_EveryOther(), lambdas=(1e-4, 1e-2), budget=8)
    # Of the two ends the chord picks the sparser, 1e-2, which the strategy
    # doubles; 2e-2 loses most accuracy, the knee stays at 1e-2, 2e-2 is known.
    assert search.cv_results_["param_lam"].tolist() == [1e-4, 1e-2, 2e-2]
    assert search.knee_["lam"] == 1e-2
