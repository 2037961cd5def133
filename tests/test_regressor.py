"""SparseNetRegressor: the same sparse training with the mean squared error as E."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_regression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skprune import ParetoSearchCV, SparseNetRegressor


@parametrize_with_checks([SparseNetRegressor()])
def test_sparse_net_regressor_check_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def test_regressor_learns_diabetes_with_pruned_weights(diabetes):
    X_train, X_test, y_train, y_test = diabetes
    pipe = make_pipeline(StandardScaler(), SparseNetRegressor(lam=1e-3, random_state=0))
    pipe.fit(X_train, y_train)
    # A converged MLPRegressor(hidden_layer_sizes=(100,)) scores 0.28 here.
    assert pipe.score(X_test, y_test) > 0.25
    assert pipe[-1].density_ < 1
    assert pipe.predict(X_test).shape == y_test.shape


def test_regressor_history_records_the_mean_squared_error(diabetes):
    X_train, _, y_train, _ = diabetes
    reg = SparseNetRegressor(lam=1e-2, max_epochs=3, random_state=0).fit(X_train, y_train)
    assert len(reg.history_[:, "mse"]) == 3
    assert reg.objectives_[0] == reg.history_[-1, "mse"]
    # E is the MSE of the standardised targets: about 1 for a constant prediction.
    assert 0.2 < reg.objectives_[0] < 1.5


def test_regressor_predicts_multi_output_targets():
    X, Y = make_regression(n_samples=200, n_features=5, n_targets=3, random_state=0)
    reg = SparseNetRegressor(max_epochs=40, lam=1e-4, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (200, 3) and reg.n_outputs_ == 3
    assert reg.score(X, Y) > 0.8


def test_targets_are_standardised_so_lam_ignores_their_units():
    X, y = make_regression(n_samples=150, n_features=4, noise=5.0, random_state=0)
    small = SparseNetRegressor(max_epochs=5, lam=1e-3, random_state=0).fit(X, y)
    large = SparseNetRegressor(max_epochs=5, lam=1e-3, random_state=0).fit(X, 1000 * y + 7)
    assert small.density_ == large.density_
    np.testing.assert_allclose(1000 * small.predict(X) + 7, large.predict(X), rtol=1e-4)


def test_pareto_search_on_a_regressor_refits_at_the_knee(diabetes):
    X_train, X_test, y_train, y_test = diabetes
    search = ParetoSearchCV(
        SparseNetRegressor(max_epochs=10, random_state=0),
        strategy="grid",
        lambdas=[1e-4, 1e-3, 1e-2, 3e-2],
        cv=2,
    ).fit(StandardScaler().fit_transform(X_train), y_train)
    assert len(search.pareto_front_) >= 2
    # The loss objective is the cross-validated MSE, in the units of y squared.
    assert search.pareto_front_[:, 0].min() > 1000
    assert search.best_params_["lam"] == search.knee_["lam"]
    assert hasattr(search.best_estimator_, "density_")


def test_regressor_sparsifies_and_saves_like_the_classifier(diabetes, tmp_path):
    import skprune

    X_train, X_test, y_train, _ = diabetes
    reg = SparseNetRegressor(lam=1e-2, max_epochs=5, random_state=0).fit(X_train, y_train)
    dense = reg.predict(X_test)
    np.testing.assert_allclose(reg.sparsify().predict(X_test), dense, rtol=1e-5)
    skprune.save(reg, tmp_path / "reg.skp")
    loaded = skprune.load(tmp_path / "reg.skp")
    np.testing.assert_allclose(loaded.predict(X_test), dense, rtol=1e-5)
    assert loaded.predict(X_test).shape == dense.shape and loaded.density_ == reg.density_
