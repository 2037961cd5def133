import pickle
import warnings

import numpy as np
import pytest
import sklearn
import torch
from packaging.version import Version
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skprune import SparseNetClassifier

FAST = dict(max_epochs=5, batch_size=32, random_state=0)


@parametrize_with_checks([SparseNetClassifier()])
def test_sparse_net_classifier_check_estimator(estimator, check):
    check(estimator)


def test_check_estimator_runs_the_array_api_check():
    # SCIPY_ARRAY_API=1 (set by `make test`) makes scikit-learn run, not skip, it.
    import os

    from sklearn.utils.estimator_checks import check_estimator

    if os.environ.get("SCIPY_ARRAY_API") != "1":
        pytest.skip("run with SCIPY_ARRAY_API=1")
    # 10 epochs: check_class_weight_classifiers needs a few dozen steps on its 50 samples.
    results = check_estimator(SparseNetClassifier(max_epochs=10), on_fail=None, on_skip=None)
    assert {r["status"] for r in results} == {"passed"}
    # From scikit-learn 1.9 the NumPy array API check runs for every estimator;
    # before, only for those that declare array API support (skprune does not).
    if Version(sklearn.__version__) >= Version("1.9"):
        assert any("array_api" in r["check_name"] for r in results)


def test_fit_reports_sparsity_counted_on_the_module(digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(lam=1e-3, threshold=1e-3, **FAST).fit(X_train, y_train)
    weights = [clf.net_.module_.layer1.weight, clf.net_.module_.layer2.weight]
    nonzero = sum(int((w != 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert clf.n_nonzero_ == nonzero and clf.n_weights_ == total
    assert clf.density_ == pytest.approx(nonzero / total)
    assert clf.sparsity_ == pytest.approx(1 - clf.density_)
    assert set(clf.layer_density_) == {"layer1", "layer2"}
    assert 0 < clf.density_ < 1


@pytest.mark.parametrize("pruning", ["batch", "epoch", "after"])
def test_threshold_pruning_leaves_no_weight_below_tau(digits, pruning):
    X_train, _, y_train, _ = digits
    tau = 5e-3
    clf = SparseNetClassifier(lam=1e-4, pruning=pruning, threshold=tau, **FAST)
    clf.fit(X_train, y_train)
    for w in clf.net_.regularized_weights():
        small = (w.abs() < tau) & (w != 0)
        assert not small.any()
    # biases and unregularised parameters are not pruned
    assert (clf.net_.module_.layer1.bias.abs() < tau).sum() < clf.net_.module_.layer1.bias.numel()


def test_pruning_none_and_lam_zero_leave_a_dense_network(digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(lam=0.0, pruning=None, **FAST).fit(X_train, y_train)
    assert clf.density_ == 1.0


def test_history_records_loss_penalty_and_density_per_epoch(digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(lam=1e-3, **FAST).fit(X_train, y_train)
    assert len(clf.history_) == FAST["max_epochs"]
    for key in ("train_loss", "ce", "penalty", "density", "layer_density"):
        assert key in clf.history_[-1]
    # the weighted sum (1-λ)E + λΩ is what is trained
    assert clf.history_[-1, "train_loss"] > (1 - clf.lam) * clf.history_[-1, "ce"]
    assert clf.objectives_[0] == clf.history_[-1, "ce"]
    l1 = sum(float(w.detach().abs().sum()) for w in clf.net_.regularized_weights())
    assert clf.objectives_[1] == pytest.approx(l1, rel=1e-5)


def test_larger_lambda_gives_sparser_networks(digits):
    X_train, _, y_train, _ = digits
    densities = [
        SparseNetClassifier(lam=lam, **FAST).fit(X_train, y_train).density_
        for lam in (0.0, 1e-3, 3e-3)
    ]
    assert densities[0] > densities[1] > densities[2]


def test_pipeline_with_scaler_reaches_090_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), SparseNetClassifier(max_epochs=15, random_state=0))
    assert pipe.fit(X_train, y_train).score(X_test, y_test) >= 0.90


def test_grid_search_over_lam_and_hidden_layer_sizes(digits):
    X_train, X_test, y_train, y_test = digits
    grid = GridSearchCV(
        SparseNetClassifier(max_epochs=3, random_state=0),
        {"lam": [1e-4, 1e-3], "module__hidden_layer_sizes": [(16,), (32, 16)]},
        cv=2,
    ).fit(X_train, y_train)
    assert len(grid.cv_results_["params"]) == 4
    hidden = grid.best_params_["module__hidden_layer_sizes"]
    assert grid.best_estimator_.net_.module_.n_layers == len(hidden) + 1
    assert grid.score(X_test, y_test) > 0.5


def test_cross_validate(digits):
    X_train, _, y_train, _ = digits
    template = SparseNetClassifier(max_epochs=2, random_state=0)
    res = cross_validate(
        template, X_train, y_train, cv=3, return_estimator=True, return_indices=True
    )
    scores, fitted, folds = res["test_score"], res["estimator"], res["indices"]
    assert len(scores) == 3 and np.isfinite(scores).all()
    assert scores.min() > 0.7  # 10 classes, chance 0.1: two epochs learn the digits
    assert not hasattr(template, "net_")  # each fold fitted a clone
    for clf, score, test in zip(fitted, scores, folds["test"]):
        check_is_fitted(clf)
        assert clf is not template and clf.density_ < 1  # pruned
        assert clf.score(X_train[test], y_train[test]) == pytest.approx(score)
    weights = [clf.net_.module_.layer1.weight for clf in fitted]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    train = folds["train"][0]  # the first fold's network is the fit on its rows
    own = clone(template).fit(X_train[train], y_train[train])
    assert torch.equal(own.net_.module_.layer1.weight, weights[0])


def test_clone_keeps_routed_parameters():
    clf = SparseNetClassifier(module__hidden_layer_sizes=(7,), optimizer__weight_decay=0.1)
    cloned = clone(clf)
    assert cloned.get_params()["module__hidden_layer_sizes"] == (7,)
    assert cloned.get_params()["optimizer__weight_decay"] == 0.1
    cloned.set_params(module__hidden_layer_sizes=(3,))
    assert clf.module__hidden_layer_sizes == (7,)


def test_routed_module_parameters_size_the_network(digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(module__hidden_layer_sizes=(20, 10), max_epochs=1)
    clf.fit(X_train, y_train)
    assert clf.net_.module_.layer1.out_features == 20
    assert clf.net_.module_.layer2.out_features == 10


def test_pickle_round_trip_gives_equal_predictions(digits):
    X_train, X_test, y_train, _ = digits
    clf = SparseNetClassifier(**FAST).fit(X_train, y_train)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    assert loaded.density_ == clf.density_


def test_string_labels_come_back_as_strings(blobs):
    X, y = blobs
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = SparseNetClassifier(max_epochs=2, random_state=0).fit(X, labels)
    assert set(clf.predict(X)) <= set(labels)
    assert clf.predict(X).dtype == labels.dtype


def test_equal_random_state_gives_identical_probabilities(blobs):
    X, y = blobs
    first = SparseNetClassifier(**FAST).fit(X, y).predict_proba(X)
    second = SparseNetClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = SparseNetClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_validation_fraction_scores_a_held_out_split(digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(validation_fraction=0.2, **FAST).fit(X_train, y_train)
    assert "valid_loss" in clf.history_[-1] and "valid_acc" in clf.history_[-1]
    batches = clf.history_[-1, "batches"]
    n_train = sum(b["train_batch_size"] for b in batches if "train_batch_size" in b)
    n_valid = sum(b["valid_batch_size"] for b in batches if "valid_batch_size" in b)
    assert n_train + n_valid == len(X_train)
    assert n_valid == pytest.approx(0.2 * len(X_train), abs=1)


def test_image_shaped_input_and_flat_input_agree_for_lenet5():
    rng = np.random.default_rng(0)
    X = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = np.arange(64) % 3
    clf = SparseNetClassifier(module="lenet5", max_epochs=1, random_state=0).fit(X, y)
    assert clf.n_features_in_ == 784
    np.testing.assert_allclose(
        clf.predict_proba(X), clf.predict_proba(X.reshape(64, -1)), rtol=1e-6
    )
    assert set(clf.layer_density_) == {"layer1", "layer2", "layer3"}


class _TinyNet(nn.Module):
    def __init__(self, n_in=8, n_out=3):
        super().__init__()
        self.fc = nn.Linear(n_in, 16)
        self.out = nn.Linear(16, n_out)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


@pytest.mark.parametrize("module", [_TinyNet, _TinyNet()])
def test_user_module_class_or_instance(blobs, module):
    X, y = blobs
    clf = SparseNetClassifier(module=module, max_epochs=2, random_state=0).fit(X, y)
    assert set(clf.layer_density_) == {"fc", "out"}
    assert clf.predict(X).shape == y.shape


def test_module_instance_is_not_trained_in_place(blobs):
    X, y = blobs
    module = _TinyNet()
    before = module.fc.weight.detach().clone()
    SparseNetClassifier(module=module, max_epochs=2).fit(X, y)
    assert torch.equal(module.fc.weight, before)


def test_regularized_layers_can_be_chosen():
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 1, 28, 28), dtype=np.float32), np.arange(40) % 2
    clf = SparseNetClassifier(module="lenet5", regularized_layers="all", max_epochs=1)
    assert set(clf.fit(X, y).layer_density_) == {"conv1", "conv2", "layer1", "layer2", "layer3"}
    clf.set_params(regularized_layers=["layer3"])
    assert set(clf.fit(X, y).layer_density_) == {"layer3"}
    clf.set_params(regularized_layers=["nope"])
    with pytest.raises(ValueError, match="'regularized_layers'.*nope.*layer1"):
        clf.fit(X, y)


def test_collapsed_network_warns_with_a_suggestion(blobs):
    X, y = blobs
    clf = SparseNetClassifier(lam=0.9, threshold=0.5, max_epochs=2, random_state=0)
    with pytest.warns(UserWarning, match="collapsed.*Lower lam"):
        clf.fit(X, y)
    assert clf.density_ == 0.0


def test_predict_before_fit_raises_not_fitted(blobs):
    with pytest.raises(NotFittedError):
        SparseNetClassifier().predict(blobs[0])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"regularizer": "l7"}, r"'regularizer' parameter .* Got 'l7'"),
        ({"pruning": "sometimes"}, r"'pruning' parameter .* Got 'sometimes'"),
        ({"optimizer": "adamw2"}, r"'optimizer' parameter .* Got 'adamw2'"),
        ({"module": "resnet"}, r"'module' parameter .* Got 'resnet'"),
        ({"lam": 1.0}, r"'lam' parameter .* range \[0.0, 1.0\). Got 1.0"),
        ({"lam": -0.1}, r"'lam' parameter"),
        ({"threshold": -1e-3}, r"'threshold' parameter .* Got -0.001"),
        ({"batch_size": 0}, r"'batch_size' parameter"),
        ({"device": "tpu"}, r"'device' parameter .* Got 'tpu'"),
        ({"target_density": 1.5}, r"'target_density' parameter"),
        ({"target_density": {"layer9": 0.1}}, r"'target_density'.*layer9.*layer1"),
        ({"modul__x": 1}, r"unknown parameters \['modul__x'\]"),
        ({"regularizer": "l1", "regularizer__beta": 1}, r"regularizer='l1' got unknown .*beta"),
        ({"regularizer": "lobster", "regularizer__beta": 1}, r"regularizer='lobster' got unknown"),
    ],
)
def test_bad_parameters_raise_errors_naming_them(blobs, params, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        SparseNetClassifier(max_epochs=1, **params).fit(X, y)


def test_cuda_device_without_gpu_is_a_clear_error(blobs):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="'device' parameter is 'cuda' but no CUDA"):
        SparseNetClassifier(device="cuda", max_epochs=1).fit(*blobs)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[np.nan, 1.0]] * 6), "NaN"),
        (np.array([[np.inf, 1.0]] * 6), "infinity"),
        (np.empty((0, 3)), "0 sample"),
    ],
)
def test_bad_input_data_raises(X, match):
    with pytest.raises(ValueError, match=match):
        SparseNetClassifier(max_epochs=1).fit(X, np.arange(len(X)) % 2)


def test_single_class_and_wrong_feature_count_raise(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="at least 2 classes.*got 1 class"):
        SparseNetClassifier(max_epochs=1).fit(X, np.zeros(len(X)))
    clf = SparseNetClassifier(max_epochs=1).fit(X, y)
    with pytest.raises(
        ValueError, match="X has 5 features, but SparseNetClassifier is expecting 8"
    ):
        clf.predict(X[:, :5])


def test_fit_on_device(blobs, device):
    X, y = blobs
    clf = SparseNetClassifier(device=device, **FAST).fit(X, y)
    assert next(clf.net_.module_.parameters()).device.type == device
    assert clf.score(X, y) > 0.5


def test_auto_device_picks_cuda_only_when_available(blobs):
    clf = SparseNetClassifier(device="auto", max_epochs=1).fit(*blobs)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(clf.net_.module_.parameters()).device.type == expected


def test_verbose_prints_one_line_per_epoch(blobs, capsys):
    SparseNetClassifier(max_epochs=3, verbose=1).fit(*blobs)
    out = capsys.readouterr().out
    assert "density" in out and "penalty" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3


def test_extra_callbacks_are_called_and_not_mutated(blobs):
    from skorch.callbacks import Callback

    class Count(Callback):
        def initialize(self):
            self.epochs_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs_ += 1

    user_cb = Count()
    clf = SparseNetClassifier(max_epochs=2, callbacks=[user_cb]).fit(*blobs)
    assert dict(clf.net_.callbacks_)["user_0"].epochs_ == 2
    assert not hasattr(user_cb, "epochs_")


def test_no_warnings_on_a_plain_fit(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparseNetClassifier(max_epochs=2).fit(*blobs)


def test_predictions_do_not_depend_on_the_batch(digits):
    X_train, X_test, y_train, _ = digits
    clf = SparseNetClassifier(**FAST).fit(X_train, y_train)
    full = clf.predict_proba(X_test)
    pieces = np.vstack([clf.predict_proba(X_test[i : i + 7]) for i in range(0, len(X_test), 7)])
    np.testing.assert_allclose(pieces, full, rtol=0, atol=1e-12)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-12)


def test_auto_pruning_is_batchwise_for_penalties(blobs):
    X, y = blobs
    auto = SparseNetClassifier(lam=1e-3, **FAST).fit(X, y)
    batch = SparseNetClassifier(lam=1e-3, pruning="batch", **FAST).fit(X, y)
    assert auto.n_nonzero_ == batch.n_nonzero_
    np.testing.assert_array_equal(auto.predict_proba(X), batch.predict_proba(X))
