"""Training settings that train stacked: the validation split, early stopping, the rate
schedule, the multi-objective optimisers and row weights; each copy of a stack equals
its separate fit through skorch's loop."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold

from skprune import SparseNetClassifier, SparseNetRegressor, lambda_path
from skprune.engine import fit_stacked
from skprune.parts._optim import MAdam, min_norm_weight
from skprune.regularizers import L1

LAMS = [1e-4, 1e-3, 1e-2]


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(150, 8).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.7)
    return X, y


def _assert_equal_fits(path, separate, max_weight_gap, keys=()):
    assert max_weight_gap(path, separate) <= 1e-4
    for p, s in zip(path, separate):
        assert p.density_ == s.density_
        assert len(p.history_) == len(s.history_)
        for key in ("train_loss", "penalty", *keys):
            np.testing.assert_allclose(p.history_[:, key], s.history_[:, key], rtol=1e-4)


def _path_and_separate(est, X, y, training, lams=LAMS):
    with training as seen:
        path = lambda_path(est, X, y, lams)
    assert seen.stacks == [len(lams)] and seen.loops == 0  # one stack, no fallback
    return path, [clone(est).set_params(lam=lam).fit(X, y) for lam in lams]


# -- the validation split ----------------------------------------------------------


def test_validation_split_lambda_path_equals_separate_fits(
    data, skorch_fit, training, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(max_epochs=3, batch_size=16, random_state=0, validation_fraction=0.2)
    path, separate = _path_and_separate(est, X, y, training)
    keys = ("valid_loss", "valid_acc", "valid_loss_best", "valid_acc_best", "valid_batch_count")
    _assert_equal_fits(path, separate, max_weight_gap, keys)
    for p, s in zip(path, separate):
        assert (
            p.history_[:, "batches", :, "valid_batch_size"]
            == (s.history_[:, "batches", :, "valid_batch_size"])
        )


def test_validation_split_folds_equal_separate_fits(data, skorch_fit, training, max_weight_gap):
    X, y = data
    X, y = X[:101], y[:101]  # folds of 67 and 68 rows: validation sets of 14 and 13 rows
    folds = [train for train, _ in KFold(3).split(X)]
    est = SparseNetRegressor(max_epochs=2, batch_size=16, validation_fraction=0.2)
    y = X[:, :2] @ np.array([1.0, -1.0], dtype=np.float32)
    estimators = [clone(est).set_params(lam=1e-3, random_state=k) for k in range(3)]
    with training as seen:
        fit_stacked(estimators, X, y, folds)
    assert seen.stacks == [3] and seen.loops == 0
    separate = [clone(e).fit(X[r], y[r]) for e, r in zip(estimators, folds)]
    _assert_equal_fits(estimators, separate, max_weight_gap, ("valid_loss",))


def test_validation_split_fit_trains_stacked(data):
    X, y = data
    est = SparseNetClassifier(max_epochs=2, random_state=0, validation_fraction=0.2).fit(X, y)
    assert est.training_loop_ == "stacked"
    assert np.isfinite(est.history_[:, "valid_loss"]).all()


class _ValidErrorSeen(L1):
    """ℓ1 that keeps the stack's validation error of every epoch (a part reading it)."""

    def stack_epoch_end(self, stack):
        self.seen_ = [*getattr(self, "seen_", []), stack.valid_error().tolist()]


def test_stack_valid_error_is_each_copys_valid_loss(data, training):
    X, y = data
    est = SparseNetClassifier(
        max_epochs=2, random_state=0, validation_fraction=0.25, regularizer=_ValidErrorSeen()
    )
    path, _ = _path_and_separate(est, X, y, training, LAMS[:2])
    seen = np.array(path[0].net_.regularizer.seen_)  # the stack's part object: copy 0's own
    recorded = np.array([p.history_[:, "valid_loss"] for p in path]).T
    np.testing.assert_allclose(seen, recorded, rtol=1e-6)


def test_stack_valid_error_without_validation_rows_raises(data):
    X, y = data
    est = SparseNetClassifier(max_epochs=1, random_state=0, regularizer=_ValidErrorSeen())
    with pytest.raises(ValueError, match="'validation_fraction' parameter is 0"):
        est.fit(X, y)


# -- the rate schedule and early stopping --------------------------------------------


def test_sigmoid_schedule_lambda_path_equals_separate_fits(
    data, skorch_fit, training, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(max_epochs=4, batch_size=32, random_state=0, lr_schedule="sigmoid")
    path, separate = _path_and_separate(est, X, y, training)
    _assert_equal_fits(path, separate, max_weight_gap, ("lr",))
    assert len(set(path[0].history_[:, "lr"])) == 4  # a rate of its own every epoch


@pytest.mark.parametrize(
    "estimator",
    [
        SparseNetClassifier(lr=0.01, lr_schedule="sigmoid"),
        SparseNetRegressor(lr=0.03),
    ],
)
def test_early_stopping_lambda_path_equals_separate_fits(
    data, estimator, skorch_fit, training, max_weight_gap
):
    X, y = data
    if isinstance(estimator, SparseNetRegressor):
        y = X[:, :2] @ np.array([1.0, -1.0], dtype=np.float32)
    est = clone(estimator).set_params(
        max_epochs=12, batch_size=32, random_state=0, validation_fraction=0.2,
        early_stopping=True, n_iter_no_change=2,
    )  # fmt: skip
    path, separate = _path_and_separate(est, X, y, training, [1e-4, 1e-2, 5e-2])
    key = "valid_acc" if isinstance(est, SparseNetClassifier) else "valid_r2"
    _assert_equal_fits(path, separate, max_weight_gap, ("valid_loss", key))
    assert len({len(p.history_) for p in path}) > 1  # the copies stopped at different epochs
    assert min(len(p.history_) for p in path) < 12
    for p, s in zip(path, separate):
        np.testing.assert_allclose(p.validation_scores_, s.validation_scores_, rtol=1e-5)
        assert p.best_validation_score_ == pytest.approx(s.best_validation_score_, rel=1e-5)


def test_settings_fit_trains_stacked(data):
    X, y = data
    est = SparseNetClassifier(
        max_epochs=2, random_state=0, validation_fraction=0.2, early_stopping=True,
        lr_schedule="sigmoid", optimizer="mrmsprop", class_weight="balanced",
    )  # fmt: skip
    assert est.fit(X, y).training_loop_ == "stacked"


class _StoppedWeightsSeen(L1):
    """ℓ1 that keeps, every epoch, the weights of the copies that have stopped."""

    def stack_epoch_end(self, stack):
        seen = getattr(self, "seen_", {})
        for k, training in enumerate(stack.training):
            if not training:
                seen.setdefault(k, []).append([w[k].clone() for w in stack.weights])
        self.seen_ = seen


def test_early_stopping_stopped_copy_stops_changing(data, training):
    X, y = data
    est = SparseNetClassifier(
        max_epochs=12, batch_size=32, random_state=0, lr=0.01, validation_fraction=0.2,
        early_stopping=True, n_iter_no_change=2, regularizer=_StoppedWeightsSeen(),
    )  # fmt: skip
    path, _ = _path_and_separate(est, X, y, training, [1e-4, 1e-2, 5e-2])
    seen = path[0].net_.regularizer.seen_
    assert seen and max(len(states) for states in seen.values()) > 1
    for states in seen.values():
        for state in states[1:]:
            assert all(torch.equal(a, b) for a, b in zip(states[0], state))


# -- the multi-objective optimisers ------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"optimizer": "madam"},
        {"optimizer": "smgd", "lr": 0.05, "optimizer__momentum": 0.9, "pruning": "epoch"},
        {"optimizer": "mrmsprop", "regularizer": "l2"},
    ],
)
def test_multi_objective_lambda_path_equals_separate_fits(
    data, params, skorch_fit, training, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(max_epochs=2, batch_size=32, random_state=0, **params)
    path, separate = _path_and_separate(est, X, y, training)
    _assert_equal_fits(path, separate, max_weight_gap, ("lambda",))
    for p, s in zip(path, separate):
        assert (
            p.lambda_history_.shape == s.lambda_history_.shape == (2 * 5,)
        )  # 5 batches of 150 rows
        np.testing.assert_allclose(p.lambda_history_, s.lambda_history_, rtol=1e-3, atol=1e-7)


def test_multi_objective_each_copy_chooses_its_own_lambda(data, training):
    X, y = data
    est = SparseNetClassifier(max_epochs=1, batch_size=32, optimizer="smgd", lr=0.05)
    with training as seen:  # each copy its own seed: its own weights, batches and λ*
        fitted = fit_stacked([clone(est).set_params(random_state=k) for k in range(2)], X, y)
    assert seen.stacks == [2]
    assert not np.allclose(fitted[0].lambda_history_, fitted[1].lambda_history_)


def test_multi_objective_early_stopping_equals_separate_fits(
    data, skorch_fit, training, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(
        optimizer="madam", lr=0.01, max_epochs=12, batch_size=32, random_state=0,
        validation_fraction=0.2, early_stopping=True, n_iter_no_change=2,
    )  # fmt: skip
    path, separate = _path_and_separate(est, X, y, training, [1e-4, 1e-2])
    _assert_equal_fits(path, separate, max_weight_gap, ("lambda", "valid_acc"))
    for p, s in zip(path, separate):
        assert p.lambda_history_.shape == s.lambda_history_.shape


def test_multi_objective_fit_trains_stacked(data):
    X, y = data
    est = SparseNetClassifier(max_epochs=1, random_state=0, optimizer="madam").fit(X, y)
    assert est.training_loop_ == "stacked" and len(est.lambda_history_) == 5


def test_sigmoid_schedule_each_copy_ends_at_its_last_rate(data):
    X, y = data
    est = SparseNetClassifier(
        max_epochs=12, batch_size=32, random_state=0, lr=0.01, lr_schedule="sigmoid",
        validation_fraction=0.2, early_stopping=True, n_iter_no_change=2,
    )  # fmt: skip
    path = lambda_path(est, X, y, [1e-4, 1e-2, 5e-2])
    assert len({len(p.history_) for p in path}) > 1
    for p in path:
        assert p.net_.optimizer_.param_groups[0]["lr"] == p.history_[-1, "lr"]


# -- row weights: class_weight and sample_weight -----------------------------------


def test_class_weight_lambda_path_equals_separate_fits(data, skorch_fit, training, max_weight_gap):
    X, y = data
    est = SparseNetClassifier(
        max_epochs=2, batch_size=32, random_state=0, class_weight={0: 4.0, 1: 1.0, 2: 0.25}
    )
    path, separate = _path_and_separate(est, X, y, training)
    _assert_equal_fits(path, separate, max_weight_gap, ("ce",))


def test_class_weight_folds_equal_separate_fits(data, skorch_fit, training, max_weight_gap):
    X, y = data
    X, y = X[:101], y[:101]  # folds of 67 and 68 rows: a shorter last batch, padded
    folds = [train for train, _ in KFold(3).split(X)]
    est = SparseNetClassifier(max_epochs=2, batch_size=16, class_weight="balanced")
    estimators = [clone(est).set_params(random_state=k) for k in range(3)]
    with training as seen:
        fit_stacked(estimators, X, y, folds)
    assert seen.stacks == [3] and seen.loops == 0
    separate = [clone(e).fit(X[r], y[r]) for e, r in zip(estimators, folds)]
    _assert_equal_fits(estimators, separate, max_weight_gap, ("ce",))


def test_sample_weight_fit_equals_skorch_loop(data, max_weight_gap, monkeypatch):
    X, y = data
    weight = np.random.RandomState(1).rand(len(y)) * 3
    est = SparseNetClassifier(max_epochs=2, batch_size=32, random_state=0, validation_fraction=0.2)
    stacked = clone(est).fit(X, y, sample_weight=weight)
    assert stacked.training_loop_ == "stacked"
    monkeypatch.setattr("skprune.engine.fit_net", lambda *args: False)
    reference = clone(est).fit(X, y, sample_weight=weight)
    _assert_equal_fits([stacked], [reference], max_weight_gap, ("ce", "valid_loss"))
    unweighted = clone(est).fit(X, y)
    assert max_weight_gap([stacked], [unweighted]) > 1e-3  # the weights did change the fit


def test_multi_objective_stacked_lambda_is_each_copys_min_norm_weight():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 5, requires_grad=False)  # 3 copies of a 4×5 weight
    b = torch.randn(3, 4)
    w.grad, b.grad = torch.randn_like(w), torch.randn_like(b)
    opt = MAdam([w, b], lr=1e-3)
    omega = torch.sign(w)  # ∂Ω/∂w of ℓ1 (no zero weights here), 0 for the bias
    opt.set_objective(L1(), [w], n_copies=3)
    opt.step()
    for k in range(3):
        g1 = torch.cat([w.grad[k].flatten(), b.grad[k]])
        g2 = torch.cat([omega[k].flatten(), torch.zeros(4)])
        assert float(opt.lambda_history[0][k]) == pytest.approx(min_norm_weight(g1, g2), rel=1e-5)
