import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skprune import SparseNetClassifier
from skprune.schedules import LR_SCHEDULES, SigmoidLR, sigmoid_lr


@pytest.mark.parametrize("max_epochs", [1, 4, 30, 125, 10_000])
def test_sigmoid_lr_decreases_from_start_to_end(max_epochs):
    epochs = np.arange(1, max_epochs + 1)
    rates = np.array([sigmoid_lr(k, max_epochs, 1e-3, 1e-4) for k in epochs])
    assert np.all(np.diff(rates) <= 0)
    assert np.all((rates <= 1e-3) & (rates >= 1e-4))
    assert sigmoid_lr(0.75 * max_epochs, max_epochs, 1e-3, 1e-4) == pytest.approx(5.5e-4)


def test_sigmoid_lr_drops_around_three_quarters():
    assert sigmoid_lr(10, 100, 1.0, 0.0) > 0.999
    assert sigmoid_lr(60, 100, 1.0, 0.0) > 0.8
    assert sigmoid_lr(90, 100, 1.0, 0.0) < 0.2
    assert sigmoid_lr(1e6, 100, 1.0, 0.0) == 0.0  # no overflow far out


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "madam"])
def test_estimator_sigmoid_schedule_sets_and_records_lr(blobs, optimizer):
    X, y = blobs
    clf = SparseNetClassifier(
        optimizer=optimizer, lr=1e-2, lr_schedule="sigmoid", lr_final=1e-3, max_epochs=8
    ).fit(X, y)
    expected = [sigmoid_lr(k, 8, 1e-2, 1e-3) for k in range(1, 9)]
    np.testing.assert_allclose(clf.history_[:, "lr"], expected)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(expected[-1])


def test_estimator_sigmoid_schedule_final_rate_defaults_to_a_tenth(blobs):
    X, y = blobs
    clf = SparseNetClassifier(lr=2e-3, lr_schedule="sigmoid", max_epochs=2).fit(X, y)
    callback = dict(clf.net_.callbacks_)["lr_schedule"]
    assert isinstance(callback, SigmoidLR)
    assert callback.lr_end == pytest.approx(2e-4)


def test_estimator_without_schedule_records_no_lr(blobs):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1).fit(X, y)
    assert "lr" not in clf.history_[-1]


def test_estimator_unknown_schedule_raises(blobs):
    X, y = blobs
    with pytest.raises(InvalidParameterError, match=r"'lr_schedule' parameter.*'sigmoid'"):
        SparseNetClassifier(lr_schedule="cosine").fit(X, y)
    assert set(LR_SCHEDULES) == {"sigmoid"}


def test_estimator_final_rate_above_initial_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(lr=1e-3, lr_schedule="sigmoid", lr_final=1e-2)
    with pytest.raises(ValueError, match=r"'lr_final' parameter .* must not exceed lr=0.001"):
        clf.fit(X, y)


def test_estimator_nonpositive_final_rate_raises(blobs):
    X, y = blobs
    with pytest.raises(InvalidParameterError, match="'lr_final' parameter"):
        SparseNetClassifier(lr_schedule="sigmoid", lr_final=0.0).fit(X, y)
