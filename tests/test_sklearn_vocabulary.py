"""What MLPClassifier users expect: sample_weight, class_weight, early stopping, warm_start,
partial_fit, n_iter_ and loss_curve_."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import GridSearchCV, train_test_split

from skprune import ParetoSearchCV, SparseNetClassifier, SparseNetRegressor

FAST = dict(max_epochs=5, random_state=0)


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.25, stratify=y, random_state=0)


@pytest.fixture(scope="module")
def plain(digits_split):
    X_train, _, y_train, _ = digits_split
    return SparseNetClassifier(**FAST).fit(X_train, y_train)


def test_unit_sample_weights_train_exactly_as_none(digits_split, plain):
    X_train, X_test, y_train, _ = digits_split
    weighted = SparseNetClassifier(**FAST).fit(
        X_train, y_train, sample_weight=np.ones(len(y_train))
    )
    np.testing.assert_array_equal(weighted.predict_proba(X_test), plain.predict_proba(X_test))


def test_zero_weight_almost_removes_a_class(digits_split, plain):
    X_train, X_test, y_train, _ = digits_split
    weight = np.where(y_train == 3, 0.0, 1.0)
    clf = SparseNetClassifier(**FAST).fit(X_train, y_train, sample_weight=weight)
    assert np.mean(plain.predict(X_test) == 3) > 0.08
    assert np.mean(clf.predict(X_test) == 3) < 0.01


def test_class_weight_raises_the_share_of_its_class(digits_split, plain):
    X_train, X_test, y_train, y_test = digits_split
    heavy = SparseNetClassifier(class_weight={3: 20}, **FAST).fit(X_train, y_train)
    assert np.mean(heavy.predict(X_test) == 3) > 2 * np.mean(plain.predict(X_test) == 3)
    balanced = SparseNetClassifier(class_weight="balanced", **FAST).fit(X_train, y_train)
    assert not np.array_equal(balanced.predict_proba(X_test), plain.predict_proba(X_test))
    assert balanced.score(X_test, y_test) == pytest.approx(plain.score(X_test, y_test), abs=0.02)


def test_all_zero_sample_weights_raise(digits_split):
    X_train, _, y_train, _ = digits_split
    with pytest.raises(ValueError, match="at least one non-zero"):
        SparseNetClassifier(**FAST).fit(X_train, y_train, sample_weight=np.zeros(len(y_train)))


def test_early_stopping_ends_early_and_restores_the_best_weights(digits_split):
    X_train, _, y_train, _ = digits_split
    clf = SparseNetClassifier(
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, max_epochs=200
    ).set_params(random_state=0)
    clf.fit(X_train, y_train)
    assert clf.n_iter_ < 200
    assert len(clf.loss_curve_) == len(clf.validation_scores_) == clf.n_iter_
    assert clf.loss_curve_ == list(clf.history_[:, "train_loss"])
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.validation_scores_[-1] < clf.best_validation_score_  # stopped after a stall
    valid = clf.net_.train_split.keywords["valid_ds"]
    accuracy = np.mean(clf.net_.predict(valid.X) == valid.y.cpu().numpy())
    assert accuracy == pytest.approx(clf.best_validation_score_)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"validation_fraction": 0.0}, "'validation_fraction' parameter is 0"),
        (
            {"validation_fraction": 0.2, "pruning": "global", "target_density": 0.5},
            "cannot be combined with pruning='global'",
        ),
    ],
)
def test_early_stopping_bad_combinations_raise(params, match, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        SparseNetClassifier(early_stopping=True, **params).fit(X, y)


def test_without_early_stopping_the_scores_are_none(plain):
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert plain.n_iter_ == 5


def test_warm_start_continues_from_the_fitted_network(digits_split):
    X_train, _, y_train, _ = digits_split
    clf = SparseNetClassifier(warm_start=True, max_epochs=3, random_state=0).fit(X_train, y_train)
    first = list(clf.loss_curve_)
    clf.fit(X_train, y_train)
    assert clf.n_iter_ == 6 and clf.loss_curve_[:3] == first
    assert clf.loss_curve_[3] < first[-1] < first[0]
    cold = SparseNetClassifier(max_epochs=3, random_state=0).fit(X_train, y_train)
    cold.fit(X_train, y_train)
    assert cold.n_iter_ == 3 and cold.loss_curve_ == first


def test_partial_fit_passes_reach_the_accuracy_of_fit(digits_split, plain):
    X_train, X_test, y_train, y_test = digits_split
    clf = SparseNetClassifier(random_state=0)
    for _ in range(5):
        clf.partial_fit(X_train, y_train, classes=np.arange(10))
    assert clf.n_iter_ == 5
    assert clf.score(X_test, y_test) == pytest.approx(plain.score(X_test, y_test), abs=0.02)
    assert clf.density_ < 1  # the regularizer and batchwise pruning act


def test_partial_fit_rejects_unknown_labels_and_keeps_the_model(digits_split):
    X_train, _, y_train, _ = digits_split
    clf = SparseNetClassifier(random_state=0)
    with pytest.raises(ValueError, match="'classes' parameter of partial_fit is required"):
        clf.partial_fit(X_train, y_train)
    clf.partial_fit(X_train, y_train, classes=np.arange(10))
    with pytest.raises(ValueError, match=r"labels \[11\] that are not in classes"):
        clf.partial_fit(X_train[:5], np.full(5, 11))
    assert clf.n_iter_ == 1  # a refused call leaves the fitted model as it was


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"pruning": "global", "target_density": 0.5}, "partial_fit cannot prune"),
        ({"pruning": "after"}, "partial_fit cannot prune"),
        ({"early_stopping": True, "validation_fraction": 0.2}, "early_stopping=True needs fit"),
    ],
)
def test_partial_fit_refuses_modes_that_need_the_end_of_training(params, match, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        SparseNetClassifier(**params).partial_fit(X, y, classes=np.unique(y))


def test_sample_weight_reaches_grid_search_and_pareto_search(blobs):
    X, y = blobs
    weight = np.where(y == 0, 0.0, 1.0)
    net = SparseNetClassifier(max_epochs=5, random_state=0)  # unseeded, it sat on the limit
    grid = GridSearchCV(net, {"lam": [1e-4]}, cv=2)
    assert np.mean(grid.fit(X, y, sample_weight=weight).predict(X) == 0) < 0.05
    search = ParetoSearchCV(net, strategy="grid", lambdas=[1e-4, 1e-3], cv=2)
    assert np.mean(search.fit(X, y, sample_weight=weight).predict(X) == 0) < 0.05


def test_regressor_speaks_the_same_vocabulary():
    X, y = load_diabetes(return_X_y=True)
    reg = SparseNetRegressor(
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        max_epochs=300,
        random_state=0,
    ).fit(X, y)
    assert reg.n_iter_ < 300 and len(reg.validation_scores_) == reg.n_iter_
    unit = SparseNetRegressor(**FAST).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(unit.predict(X), SparseNetRegressor(**FAST).fit(X, y).predict(X))
    part = SparseNetRegressor(random_state=0)
    for _ in range(2):
        part.partial_fit(X, y)
    assert part.n_iter_ == 2
