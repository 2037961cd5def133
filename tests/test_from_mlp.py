"""``from_mlp``, ``to_mlp`` and the page on pruning a trained network."""

import doctest
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits
from torch import nn

from skprune import SparseNetClassifier, SparseNetRegressor

PAGE = Path(__file__).parents[1] / "docs" / "user_guide" / "pruning_trained.rst"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """scikit-learn's MLP trains through BLAS: one thread, as torch has in the tests."""
    with threadpool_limits(limits=1):
        yield


def _fit_quietly(mlp, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mlp.fit(X, y)


@pytest.fixture(scope="module")
def small(digits):
    """600 training digits and 300 test digits, float64 as most users pass them."""
    X_train, X_test, y_train, y_test = digits
    X_train, X_test = X_train[:600].astype(np.float64), X_test[:300].astype(np.float64)
    return X_train, X_test, y_train[:600], y_test[:300]


@pytest.fixture(scope="module")
def multiclass_mlp(small):
    X, _, y, _ = small
    return _fit_quietly(MLPClassifier((24,), max_iter=60, random_state=0), X, y)


@pytest.fixture(scope="module")
def binary_mlp(small):
    X, _, y, _ = small
    labels = np.where(y % 2, "odd", "even")
    return _fit_quietly(MLPClassifier((16, 8), max_iter=60, random_state=0), X, labels)


def _targets(X, n_outputs):
    Y = np.c_[X[:, 10] - X[:, 20] + 0.5, 0.5 * X[:, 30] + X[:, 43]]
    return Y[:, 0] if n_outputs == 1 else Y


@pytest.fixture(scope="module", params=[1, 2], ids=["single", "multi"])
def regressor_mlp(small, request):
    X, _, _, _ = small
    mlp = MLPRegressor(hidden_layer_sizes=(20,), max_iter=60, random_state=0)
    return _fit_quietly(mlp, X, _targets(X, request.param))


def _max_diff(a, b):
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


# -- from_mlp -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_from_mlp_predict_proba_equals_the_mlps(small, multiclass_mlp, binary_mlp, kind):
    mlp = multiclass_mlp if kind == "multiclass" else binary_mlp
    _, X_test, _, _ = small
    clf = SparseNetClassifier.from_mlp(mlp)
    assert _max_diff(clf.predict_proba(X_test), mlp.predict_proba(X_test)) < 1e-6
    np.testing.assert_array_equal(clf.predict(X_test), mlp.predict(X_test))
    np.testing.assert_array_equal(clf.classes_, mlp.classes_)


def test_from_mlp_regressor_predict_equals_the_mlps(small, regressor_mlp):
    _, X_test, _, _ = small
    reg = SparseNetRegressor.from_mlp(regressor_mlp)
    assert _max_diff(reg.predict(X_test), regressor_mlp.predict(X_test)) < 1e-6
    assert reg.n_outputs_ == regressor_mlp.n_outputs_


def test_from_mlp_sets_what_fit_sets(multiclass_mlp):
    clf = SparseNetClassifier.from_mlp(multiclass_mlp, lam=1e-3)
    params = clf.get_params()
    assert params["module"] == "mlp" and params["module__hidden_layer_sizes"] == (24,)
    assert params["warm_start"] and params["lam"] == 1e-3
    assert clf.n_features_in_ == 64 and clf.n_iter_ == 0 and clf.density_ == 1.0
    # a clone is a new, unfitted estimator with the same settings, as in scikit-learn
    assert not hasattr(clone(clf), "net_")


def test_from_mlp_copies_feature_names(small):
    pd = pytest.importorskip("pandas")
    X, X_test, y, _ = small
    columns = [f"pixel{i}" for i in range(X.shape[1])]
    mlp = _fit_quietly(
        MLPClassifier((8,), max_iter=5, random_state=0), pd.DataFrame(X, columns=columns), y
    )
    clf = SparseNetClassifier.from_mlp(mlp)
    assert list(clf.feature_names_in_) == columns
    assert list(clf.to_mlp().feature_names_in_) == columns
    frame = pd.DataFrame(X_test, columns=columns)
    assert _max_diff(clf.predict_proba(frame), mlp.predict_proba(frame)) < 1e-6


@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_from_mlp_fit_starts_from_the_copied_weights(small, multiclass_mlp, binary_mlp, kind):
    mlp = multiclass_mlp if kind == "multiclass" else binary_mlp
    X, X_test, y, _ = small
    y = y if kind == "multiclass" else np.where(y % 2, "odd", "even")
    clf = SparseNetClassifier.from_mlp(
        mlp, regularizer=None, pruning=None, lr=1e-9, max_epochs=1, random_state=0
    )
    clf.fit(X, y)
    # A fresh network would be far off; one epoch at lr=1e-9 moves no probability by 1e-4.
    assert clf.n_iter_ == 1
    assert _max_diff(clf.predict_proba(X_test), mlp.predict_proba(X_test)) < 1e-4


def test_from_mlp_regressor_fit_starts_from_the_copied_weights(small, regressor_mlp):
    X, X_test, _, _ = small
    reg = SparseNetRegressor.from_mlp(
        regressor_mlp, regularizer=None, pruning=None, lr=1e-9, max_epochs=1
    )
    reg.fit(X, _targets(X, regressor_mlp.n_outputs_))
    assert _max_diff(reg.predict(X_test), regressor_mlp.predict(X_test)) < 1e-4


def test_from_mlp_and_to_mlp_on_device(small, multiclass_mlp, device):
    X, X_test, y, _ = small
    clf = SparseNetClassifier.from_mlp(
        multiclass_mlp, device=device, pruning="global", target_density=0.5, max_epochs=1
    )
    assert _max_diff(clf.predict_proba(X_test), multiclass_mlp.predict_proba(X_test)) < 1e-6
    mlp = clf.fit(X, y).to_mlp()
    assert _max_diff(mlp.predict_proba(X_test), clf.predict_proba(X_test)) < 1e-6


def test_from_mlp_refuses_other_activations(small):
    X, _, y, _ = small
    mlp = _fit_quietly(MLPClassifier((8,), activation="tanh", max_iter=5), X, y)
    with pytest.raises(ValueError, match=r"activation='tanh'; only 'relu' is supported"):
        SparseNetClassifier.from_mlp(mlp)


def test_from_mlp_refuses_an_unfitted_mlp():
    with pytest.raises(NotFittedError, match="fit it before SparseNetRegressor.from_mlp"):
        SparseNetRegressor.from_mlp(MLPRegressor())


def test_from_mlp_refuses_the_other_kind_of_mlp(regressor_mlp):
    with pytest.raises(TypeError, match="needs a fitted MLPClassifier; got MLPRegressor"):
        SparseNetClassifier.from_mlp(regressor_mlp)


def test_from_mlp_refuses_multilabel(small):
    X, _, y, _ = small
    Y = np.c_[y % 2, y > 4]
    mlp = _fit_quietly(MLPClassifier((8,), max_iter=5), X, Y)
    with pytest.raises(ValueError, match="multi-label MLPClassifier"):
        SparseNetClassifier.from_mlp(mlp)


def test_from_mlp_refuses_module_parameters(multiclass_mlp):
    with pytest.raises(ValueError, match=r"do not pass \['module__hidden_layer_sizes'\]"):
        SparseNetClassifier.from_mlp(multiclass_mlp, module__hidden_layer_sizes=(5,))


def test_from_mlp_checks_the_parameters(multiclass_mlp):
    with pytest.raises(ValueError, match="'lam' parameter"):
        SparseNetClassifier.from_mlp(multiclass_mlp, lam=2.0)


# -- to_mlp ---------------------------------------------------------------------


def _pruned(estimator, X, y):
    return estimator.set_params(
        module__hidden_layer_sizes=(24,),
        pruning="global",
        target_density=0.2,
        max_epochs=2,
        finetune_epochs=1,
        random_state=0,
    ).fit(X, y)


def _assert_zeros_kept(mlp, estimator, binary=False):
    layers = [estimator.net_.module_.layer1, estimator.net_.module_.layer2]
    for coef, layer in zip(mlp.coefs_, layers):
        zero = (layer.weight.detach().cpu().numpy() == 0).T
        if binary and coef.shape[1] == 1:  # z = z1 - z0 is zero where both rows are
            zero = zero.all(axis=1, keepdims=True)
        np.testing.assert_array_equal(coef == 0, zero)
    assert zero.any()


@pytest.mark.parametrize("sparsified", [False, True])
@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_to_mlp_after_pruning_predicts_as_skprune(small, kind, sparsified):
    X, X_test, y, _ = small
    y = y if kind == "multiclass" else np.where(y % 2, "odd", "even")
    clf = _pruned(SparseNetClassifier(), X, y)
    assert clf.density_ == pytest.approx(0.2, abs=0.01)
    if sparsified:
        clf.sparsify()
    mlp = clf.to_mlp()
    assert isinstance(mlp, MLPClassifier) and mlp.activation == "relu"
    assert mlp.hidden_layer_sizes == (24,) and mlp.n_layers_ == 3
    assert _max_diff(mlp.predict_proba(X_test), clf.predict_proba(X_test)) < 1e-6
    np.testing.assert_array_equal(mlp.predict(X_test), clf.predict(X_test))
    _assert_zeros_kept(mlp, clf, binary=kind == "binary")


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_to_mlp_regressor_after_pruning_predicts_as_skprune(small, n_outputs):
    X, X_test, _, _ = small
    reg = _pruned(SparseNetRegressor(), X, 100 * _targets(X, n_outputs) + 3)
    mlp = reg.to_mlp()
    assert isinstance(mlp, MLPRegressor) and mlp.out_activation_ == "identity"
    # relative to the targets' scale (100): skprune rounds its outputs to float32
    assert _max_diff(mlp.predict(X_test), reg.predict(X_test)) < 1e-6 * 100
    _assert_zeros_kept(mlp, reg)


def test_to_mlp_round_trips_from_mlp(multiclass_mlp):
    back = SparseNetClassifier.from_mlp(multiclass_mlp).to_mlp()
    for a, b in zip(
        back.coefs_ + back.intercepts_, multiclass_mlp.coefs_ + multiclass_mlp.intercepts_
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_to_mlp_result_keeps_training_in_scikit_learn(small, multiclass_mlp):
    X, _, y, _ = small
    mlp = SparseNetClassifier.from_mlp(multiclass_mlp).to_mlp()
    mlp.partial_fit(X, y)  # continues from the copied weights: a new MLP's loss is ~2.3
    assert mlp.loss_ < 1.1 * multiclass_mlp.loss_
    _fit_quietly(mlp.set_params(warm_start=True, max_iter=2), X, y)
    assert mlp.loss_ < multiclass_mlp.loss_


def test_to_mlp_takes_lenet300(small):
    X, X_test, y, _ = small
    clf = SparseNetClassifier("lenet300", max_epochs=1, random_state=0).fit(X, y)
    mlp = clf.to_mlp()
    assert mlp.hidden_layer_sizes == (300, 100)
    assert _max_diff(mlp.predict_proba(X_test), clf.predict_proba(X_test)) < 1e-6


def test_to_mlp_refuses_other_modules(small):
    X, _, y, _ = small
    module = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    clf = SparseNetClassifier(module=module, max_epochs=1).fit(X, y)
    with pytest.raises(
        ValueError, match="to_mlp needs the built-in 'mlp'.*its module is a Sequential"
    ):
        clf.to_mlp()


def test_to_mlp_refuses_an_unfitted_estimator():
    with pytest.raises(NotFittedError):
        SparseNetRegressor().to_mlp()


# -- pruning a trained MLP ------------------------------------------------------


def _prune_trained(mlp, X, y, **params):
    clf = SparseNetClassifier.from_mlp(mlp, pruning="global", random_state=0, **params)
    return clf.fit(X, y)


def test_from_mlp_pruning_keeps_accuracy_small(small, multiclass_mlp):
    X, X_test, y, y_test = small
    clf = _prune_trained(
        multiclass_mlp, X, y, target_density=0.3, lam=1e-3, max_epochs=3, finetune_epochs=5
    )
    assert clf.density_ == pytest.approx(0.3, abs=0.005) and clf.n_iter_ == 8
    assert clf.score(X_test, y_test) >= multiclass_mlp.score(X_test, y_test) - 0.03
    weights = clf.to_mlp().coefs_
    assert sum(int((w != 0).sum()) for w in weights) == clf.n_nonzero_


def test_from_mlp_pruning_to_ten_percent_keeps_test_accuracy(digits):
    """The issue's check: digits, (100,), 10 % density, within 1 point of the MLP."""
    X_train, X_test, y_train, y_test = digits
    mlp = _fit_quietly(MLPClassifier((100,), max_iter=300, random_state=0), X_train, y_train)
    clf = _prune_trained(
        mlp,
        X_train,
        y_train,
        target_density=0.1,
        lam=1e-3,
        max_epochs=10,
        finetune_epochs=20,
        batch_size=128,
        lr=3e-3,
    )
    mlp_acc, pruned_acc = mlp.score(X_test, y_test), clf.score(X_test, y_test)
    print(f"MLP {mlp_acc:.4f}, pruned {pruned_acc:.4f} at density {clf.density_:.4f}")
    assert clf.density_ == pytest.approx(0.1, abs=1e-3)
    assert pruned_acc >= mlp_acc - 0.01
    assert clf.to_mlp().score(X_test, y_test) == pruned_acc


def test_pruning_trained_page_runs():
    """Every ``>>>`` block of docs/user_guide/pruning_trained.rst runs and prints what it shows."""
    torch.manual_seed(0)
    result = doctest.testfile(
        str(PAGE),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 10
    assert result.failed == 0
