"""Issue #3's figures on LeNet-300-100 and MNIST-10k (slow; run by ``make bench``)."""

import pytest
import torch

from skprune import SparseNetClassifier
from skprune.datasets import find_mnist_10k, mnist_10k_split

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mnist_10k() is None, reason="needs the MNIST-10k files"),
]

ADAM = dict(module="lenet300", lam=1e-5, max_epochs=15, finetune_epochs=3, random_state=0)


@pytest.fixture(scope="module")
def mnist():
    torch.set_num_threads(1)
    return mnist_10k_split(flat=True)


def _fit(mnist, **params):
    X_train, X_test, y_train, y_test = mnist
    clf = SparseNetClassifier(device="cpu", **params).fit(X_train, y_train)
    return clf, clf.score(X_test, y_test)


@pytest.fixture(scope="module")
def dense_accuracy(mnist):
    return _fit(mnist, regularizer=None, pruning=None, **ADAM)[1]


@pytest.fixture(scope="module")
def global_5(mnist):
    return {
        reg: _fit(mnist, regularizer=reg, pruning="global", target_density=0.05, **ADAM)
        for reg in ("l1", "l2", "l0", "l2_l0")
    }


@pytest.mark.parametrize("reg", ["l1", "l2", "l0", "l2_l0"])
def test_global_pruning_to_5_percent(reg, global_5, dense_accuracy):
    clf, accuracy = global_5[reg]
    assert abs(clf.density_ - 0.05) <= 0.005
    assert accuracy >= dense_accuracy - 0.02


def test_layerwise_pruning_to_10_percent(mnist):
    clf, _ = _fit(mnist, regularizer="l2_l0", pruning="layerwise", target_density=0.1, **ADAM)
    assert all(abs(d - 0.1) <= 0.011 for d in clf.layer_density_.values())


def test_random_pruning_scores_below_global(mnist, global_5):
    _, accuracy = _fit(mnist, regularizer="l2_l0", pruning="random", target_density=0.05, **ADAM)
    assert accuracy < global_5["l2_l0"][1]


def test_lobster_reaches_20_percent_density(mnist):
    sgd = dict(module="lenet300", optimizer="sgd", lr=0.1, validation_fraction=0.1)
    sgd.update(max_epochs=40, random_state=0)
    _, dense = _fit(mnist, regularizer=None, pruning=None, **sgd)
    clf, accuracy = _fit(
        mnist, regularizer="lobster", pruning="lobster", lam=1e-4, loss_tolerance=0.05, **sgd
    )
    assert clf.density_ <= 0.20
    assert accuracy >= dense - 0.015
