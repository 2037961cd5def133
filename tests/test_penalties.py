"""ℓ2, smooth ℓ0 and ℓ2+ℓ0: penalties and gradients against hand-computed values."""

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from skprune import SparseNetClassifier
from skprune.registry import REGULARIZERS
from skprune.regularizers import L0, L1, L2, L2L0

W = torch.tensor([[0.5, -2.0], [0.0, 0.1]])


def _l0(w, beta):
    return 1 - math.exp(-beta * abs(w))


def _l0_grad(w, beta):
    return beta * math.copysign(1.0, w) * math.exp(-beta * abs(w)) if w else 0.0


def test_l2_penalty_and_grad_hand_computed():
    assert float(L2().penalty([W])) == pytest.approx(0.5 * (0.25 + 4.0 + 0.01))
    torch.testing.assert_close(L2().grad(W), W)


def test_l0_penalty_and_grad_hand_computed():
    reg, values = L0(beta=3.0), [0.5, -2.0, 0.0, 0.1]
    assert float(reg.penalty([W])) == pytest.approx(sum(_l0(v, 3.0) for v in values), rel=1e-6)
    expected = torch.tensor([_l0_grad(v, 3.0) for v in values]).reshape(2, 2)
    torch.testing.assert_close(reg.grad(W), expected)


def test_l2_l0_penalty_and_grad_hand_computed():
    reg, values = L2L0(alpha=0.5, beta=2.0), [0.5, -2.0, 0.0, 0.1]
    omega = sum(0.25 * v * v + _l0(v, 2.0) for v in values)
    assert float(reg.penalty([W])) == pytest.approx(omega, rel=1e-6)
    expected = torch.tensor([0.5 * v + _l0_grad(v, 2.0) for v in values]).reshape(2, 2)
    torch.testing.assert_close(reg.grad(W), expected)


@pytest.mark.parametrize("reg", [L1(), L2(), L0(beta=4.0), L2L0(alpha=2.0, beta=4.0)])
def test_analytic_grad_matches_autograd(reg):
    w = torch.tensor([0.3, -0.7, 1.5, -0.02], requires_grad=True)
    reg.loss_term([w]).backward()
    v = w.detach().clone().requires_grad_(True)
    beta, alpha = getattr(reg, "beta", 0.0), getattr(reg, "alpha", 1.0)
    if isinstance(reg, L1):
        omega = v.abs().sum()
    elif isinstance(reg, L2):
        omega = 0.5 * v.square().sum()
    else:
        omega = (1 - torch.exp(-beta * v.abs())).sum()
        omega = omega + (0.5 * alpha * v.square().sum() if isinstance(reg, L2L0) else 0)
    omega.backward()
    torch.testing.assert_close(w.grad, v.grad)


def test_l0_pulls_small_weights_harder_than_l2():
    small, large = torch.tensor([0.01]), torch.tensor([1.0])
    assert L0(beta=10).grad(small) > L2().grad(small) * 100
    assert L0(beta=10).grad(large) < L2().grad(large)


def test_registry_names_the_family():
    assert {"l1", "l2", "l0", "l2_l0", "lobster"} <= set(REGULARIZERS)


@pytest.mark.parametrize("name", ["l2", "l0", "l2_l0"])
def test_estimator_trains_with_each_penalty(name, blobs):
    X, y = blobs
    clf = SparseNetClassifier(regularizer=name, lam=1e-2, max_epochs=2, random_state=0)
    clf.fit(X, y)
    assert clf.objectives_[1] > 0
    assert np.isfinite(clf.history_[:, "penalty"]).all()


@pytest.mark.parametrize("param", ["regularizer__beta", "regularizer__alpha"])
@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_nonpositive_beta_or_alpha_raises_naming_it(param, beta, blobs):
    X, y = blobs
    clf = SparseNetClassifier(regularizer="l2_l0", max_epochs=1, **{param: beta})
    with pytest.raises(ValueError, match=param.split("__")[1]):
        clf.fit(X, y)


def test_l0_nonpositive_beta_raises(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="'beta' parameter of L0"):
        SparseNetClassifier(regularizer="l0", regularizer__beta=0, max_epochs=1).fit(X, y)


def test_beta_reaches_the_regularizer_through_set_params(blobs):
    X, y = blobs
    clf = SparseNetClassifier(regularizer="l0", max_epochs=1, random_state=0)
    clf.set_params(regularizer__beta=7.5).fit(X, y)
    assert clf.net_.regularizer.beta == 7.5


def test_grid_search_over_penalties_and_beta(blobs):
    X, y = blobs
    grid = [
        {"regularizer": ["l2"]},
        {"regularizer": ["l0", "l2_l0"], "regularizer__beta": [5.0, 20.0]},
    ]
    base = SparseNetClassifier(max_epochs=1, pruning="global", target_density=0.5)
    search = GridSearchCV(base, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 5
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.density_ == pytest.approx(0.5, abs=0.01)


def test_unknown_regularizer_parameter_raises(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="regularizer__beta"):
        SparseNetClassifier(regularizer="l2", regularizer__beta=3.0, max_epochs=1).fit(X, y)


@pytest.mark.parametrize("reg", [L1(), L2(), L0(beta=4.0), L2L0(alpha=2.0, beta=4.0)])
def test_penalty_is_the_sum_of_its_elementwise_terms(reg):
    w = torch.tensor([[0.3, -0.7], [1.5, 0.0]])
    assert float(reg.terms(w).sum()) == pytest.approx(float(reg.penalty([w])))
    assert reg.terms(w).shape == w.shape
