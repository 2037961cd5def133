"""Feature selection: importances, the input-group ℓ1 part, SparseNetSelector, the feature path."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.feature_selection import SelectFromModel
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from skprune import SparseNetClassifier, SparseNetRegressor, SparseNetSelector, lambda_path
from skprune.estimators._importances import feature_importances
from skprune.feature_selection import feature_path, select_on_path
from skprune.feature_selection._path import drop_lambdas
from skprune.models import MLP, LeNet5
from skprune.parts import InputGroupL1
from skprune.parts._input_groups import prune_columns_

FAST = dict(max_epochs=3, random_state=0)
GROUP = dict(regularizer="input_group_l1", regularized_layers=["layer1"])


@pytest.fixture(scope="module")
def wide():
    """60 inputs, 6 of them informative (the first six: shuffle=False)."""
    X, y = make_classification(
        n_samples=200, n_features=60, n_informative=6, n_redundant=0, shuffle=False,
        class_sep=2.0, random_state=0,
    )  # fmt: skip
    return X.astype(np.float32), y


# -- feature_importances_ ------------------------------------------------------


def test_feature_importances_are_column_norms_of_units_that_reach_the_output():
    mlp = MLP(3, 2, (2,))
    with torch.no_grad():
        mlp.layer1.weight.copy_(torch.tensor([[3.0, 0.0, 1.0], [4.0, 0.0, 2.0]]))
        mlp.layer2.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(feature_importances(mlp, (3,)), [5.0, 0.0, np.sqrt(5.0)])
    with torch.no_grad():
        mlp.layer2.weight[:, 1] = 0.0  # hidden unit 2 no longer reaches the output
    np.testing.assert_allclose(feature_importances(mlp, (3,)), [3.0, 0.0, 1.0])


def test_feature_importances_of_a_convolution_are_its_dense_matrix_column_norms():
    net = LeNet5(n_classes=3, input_shape=(2, 10, 10))
    conv = nn.Conv2d(2, 6, kernel_size=3).double()
    conv.load_state_dict({k: v.double() for k, v in net.conv1.state_dict().items()})
    with torch.no_grad():
        conv.bias.zero_()
    dense = torch.autograd.functional.jacobian(
        lambda x: conv(x[None]).flatten(), torch.zeros(2, 10, 10, dtype=torch.double)
    )
    expected = dense.flatten(1).norm(dim=0).numpy()
    np.testing.assert_allclose(feature_importances(net, (200,)), expected, rtol=1e-6)
    np.testing.assert_allclose(feature_importances(net, (2, 10, 10)), expected, rtol=1e-6)


def test_feature_importances_zero_for_a_pruned_input_and_kept_by_sparsify(blobs):
    X, y = blobs
    clf = SparseNetClassifier(**FAST).fit(X, y)
    with torch.no_grad():
        clf.net_.module_.layer1.weight[:, 2] = 0.0
    before = clf.feature_importances_
    assert before.shape == (X.shape[1],) and before[2] == 0 and (np.delete(before, 2) > 0).all()
    np.testing.assert_array_equal(clf.sparsify().feature_importances_, before)


def test_select_from_model_works_on_a_plain_fitted_network(blobs):
    X, y = blobs
    selector = SelectFromModel(SparseNetClassifier(**FAST), max_features=3, threshold=-np.inf)
    assert selector.fit(X, y).transform(X).shape == (len(X), 3)
    assert selector.get_support().sum() == 3


# -- the input-group ℓ1 regularizer --------------------------------------------


@pytest.mark.parametrize("shape", [(4, 5), (4, 3, 2, 2)])
def test_input_group_l1_penalty_and_grad_match_autograd(shape):
    w = torch.randn(*shape, dtype=torch.double)
    w[:, 1] = 0.0
    reg = InputGroupL1()
    expected = sum(w[:, j].norm() for j in range(shape[1]))
    torch.testing.assert_close(reg.penalty([w]), expected)
    leaf = w.clone().requires_grad_()
    (auto,) = torch.autograd.grad(sum(leaf[:, j].norm() for j in range(shape[1]) if j != 1), leaf)
    torch.testing.assert_close(reg.grad(w), auto)  # 0 on the zero column


def test_prune_columns_judges_each_stacked_copy_on_its_own():
    w = torch.tensor([[[0.001, 1.0]], [[1.0, 0.001]]])  # K = 2 copies of a 1×2 weight
    prune_columns_(w, 0.01, stacked=True)
    torch.testing.assert_close(w, torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]]))


def test_input_group_l1_trains_stacked_and_lambda_path_serves_it(blobs):
    X, y = blobs
    net = SparseNetClassifier(**GROUP, **FAST)
    assert clone(net).fit(X, y).training_loop_ == "stacked"
    path = lambda_path(net, X, y, [1e-3, 0.2])
    assert [e.training_loop_ for e in path] == ["stacked", "stacked"]
    alone = clone(net).set_params(lam=0.2).fit(X, y)
    np.testing.assert_allclose(path[1].feature_importances_, alone.feature_importances_, atol=1e-4)


def test_input_group_l1_network_saves_and_loads(blobs, tmp_path):
    import skprune

    X, y = blobs
    clf = SparseNetClassifier(**GROUP, **FAST).fit(X, y)
    skprune.save(clf, tmp_path / "net.skp")
    loaded = skprune.load(tmp_path / "net.skp")
    np.testing.assert_array_equal(loaded.feature_importances_, clf.feature_importances_)


def test_input_group_l1_removes_whole_columns(wide):
    X, y = wide
    clf = SparseNetClassifier(**GROUP, lam=0.3, optimizer="sgd", max_epochs=15, random_state=0)
    weight = clf.fit(X, y).net_.module_.layer1.weight.detach()
    norms = weight.norm(dim=0)
    assert (norms == 0).sum() > 0  # whole inputs dropped
    assert (clf.feature_importances_ == 0).sum() == (norms == 0).sum()


# -- SparseNetSelector -----------------------------------------------------------


@parametrize_with_checks([SparseNetSelector(max_epochs=2)])
def test_sparse_net_selector_check_estimator(estimator, check):
    # Every check, on short training; the defaults' run is the slow test below.
    check(estimator)


@pytest.mark.slow
def test_sparse_net_selector_check_estimator_with_defaults_skips_nothing(monkeypatch):
    from sklearn.utils.estimator_checks import check_estimator

    monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # else scikit-learn skips the array API check
    results = check_estimator(SparseNetSelector(), on_fail="raise", on_skip=None)
    assert {r["status"] for r in results} == {"passed"}


@pytest.mark.parametrize("k", [5, 20, 50])
def test_selector_keeps_exactly_k_inputs(wide, k):
    X, y = wide
    selector = SparseNetSelector(k, max_epochs=3, random_state=0).fit(X, y)
    assert selector.get_support().sum() == k == selector.n_features_
    assert selector.transform(X).shape == (len(X), k)


def test_selector_picks_the_informative_inputs(wide):
    X, y = wide
    selector = SparseNetSelector(6, max_epochs=50, random_state=0).fit(X, y)
    # At least 5 of the 6 (make_classification makes some informative inputs weak);
    # 6 inputs drawn at random out of 60 hold 0.6 of them on average.
    assert len(set(selector.get_support(indices=True)) & set(range(6))) >= 5


def test_selector_takes_a_share_and_checks_k(blobs):
    X, y = blobs
    assert SparseNetSelector(0.25, **FAST).fit(X, y).n_features_ == 2
    with pytest.raises(ValueError, match="'n_features_to_select'.*at most.*8. Got 9"):
        SparseNetSelector(9, **FAST).fit(X, y)


def test_selector_uses_the_estimator_given_or_a_regressor_for_continuous_targets():
    X, y = make_regression(n_samples=80, n_features=6, random_state=0)
    selector = SparseNetSelector(2, **FAST).fit(X, y)
    assert isinstance(selector.estimator_, SparseNetRegressor)
    assert selector.estimator_.regularizer == "input_group_l1"
    given = SparseNetRegressor(regularizer="l1", **FAST)
    assert SparseNetSelector(2, estimator=given).fit(X, y).estimator_.regularizer == "l1"


def test_selection_frequency_is_the_share_of_folds_selecting_each_input(wide):
    X, y = wide
    selector = SparseNetSelector(6, cv=3, max_epochs=5, random_state=0).fit(X, y)
    frequency = selector.selection_frequency_
    assert set(np.round(frequency * 3, 6)) <= {0.0, 1.0, 2.0, 3.0}
    assert frequency.sum() == pytest.approx(6.0)  # each fold keeps exactly 6
    assert frequency[selector.support_].min() >= frequency[~selector.support_].max()
    alone = SparseNetSelector(6, max_epochs=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(alone.selection_frequency_, alone.support_.astype(float))


def test_selector_in_a_pipeline_under_grid_search(blobs):
    X, y = blobs
    pipe = make_pipeline(SparseNetSelector(**FAST), LogisticRegression())
    grid = {"sparsenetselector__n_features_to_select": [2, 4]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    k = search.best_params_["sparsenetselector__n_features_to_select"]
    assert search.best_estimator_[0].transform(X).shape == (len(X), k)
    assert set(search.cv_results_["param_sparsenetselector__n_features_to_select"]) == {2, 4}


def test_selector_keeps_dataframe_column_names(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=[f"col{j}" for j in range(X.shape[1])])
    selector = SparseNetSelector(3, **FAST).fit(frame, y)
    kept = [f"col{j}" for j in selector.get_support(indices=True)]
    assert list(selector.get_feature_names_out()) == kept
    back = selector.inverse_transform(selector.transform(frame))
    assert back.shape == X.shape and (back[:, ~selector.support_] == 0).all()


def test_selector_trains_a_path_and_keeps_the_network_at_lambda(wide):
    X, y = wide
    lambdas = [1e-3, 0.05, 0.3]
    selector = SparseNetSelector(10, lambdas=lambdas, max_epochs=5, random_state=0).fit(X, y)
    assert selector.lambda_ in lambdas
    assert selector.estimator_.lam == selector.lambda_
    assert selector.estimator_.training_loop_ == "stacked"
    read = selector.feature_importances_ > 0
    assert read.sum() >= 10 or selector.lambda_ == lambdas[0]


def test_selector_ranks_any_estimator_by_its_importances(blobs):
    from sklearn.ensemble import ExtraTreesClassifier

    X, y = blobs
    trees = ExtraTreesClassifier(n_estimators=20, random_state=0)
    selector = SparseNetSelector(3, estimator=trees).fit(X, y)
    expected = np.argsort(-trees.fit(X, y).feature_importances_, kind="stable")[:3]
    assert set(selector.get_support(indices=True)) == set(expected)
    assert selector.lambda_ is None


def test_select_on_path_ranks_by_drop_lambda_then_importance():
    lambdas = np.array([0.1, 0.2, 0.3])
    importances = np.array(
        [[3.0, 2.0, 1.0, 0.5], [2.0, 0.0, 1.5, 0.0], [0.0, 0.0, 1.0, 0.0]]
    )  # input 2 is read longest; 0 next; 1 and 3 drop at 0.2, 1 more important at λ = 0.1
    mask, index = select_on_path(lambdas, importances, 3)
    assert mask.tolist() == [True, True, True, False] and index == 0
    mask, index = select_on_path(lambdas, importances, 2)
    assert mask.tolist() == [True, False, True, False] and index == 1


# -- the feature path --------------------------------------------------------------


def test_drop_lambdas_is_where_each_input_stays_out():
    active = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0]], dtype=bool)
    assert drop_lambdas([0.1, 0.2, 0.3], active).tolist() == [np.inf, 0.2, 0.3, 0.1]


def test_feature_path_drops_inputs_as_lambda_grows(wide):
    X, y = wide
    net = SparseNetClassifier(**GROUP, optimizer="sgd", max_epochs=10, random_state=0)
    path = feature_path(net, X, y, [0.3, 1e-3])
    assert path.lambdas.tolist() == [1e-3, 0.3] and path.importances.shape == (2, 60)
    assert path.n_selected[1] < path.n_selected[0]
    dropped = np.isfinite(path.drop_lambda)
    assert (path.importances[1, dropped] == 0).all() and (path.importances[1, ~dropped] > 0).all()


def test_plot_feature_path_draws_one_line_per_input(wide):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from skprune.plotting import plot_feature_path

    X, y = wide
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path = feature_path(SparseNetClassifier(**GROUP, **FAST), X[:, :8], y, [1e-3, 0.1])
    ax = plot_feature_path(path, n_labels=2)
    assert len(ax.get_lines()) == 8 and len(ax.get_legend().get_texts()) == 2
    with pytest.raises(ValueError, match="needs what skprune.feature_selection.feature_path"):
        plot_feature_path(object())
