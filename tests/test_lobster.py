"""LOBSTER: the update rule (eqs. 4–8, Table 1), the threshold bisection (eq. 19), the stages."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from skprune import SparseNetClassifier
from skprune.lobster import LOBSTER, LobsterPruning, bisect_threshold, lobster_shrinkage

ETA, LAM = 0.1, 0.01


def _eq8(w, g):
    """LOBSTER eq. (8): w − λΓ − g·[η − sign(g)·λΓ], Γ = w·P(g) (eq. 7)."""
    gamma = w * (abs(g) < 1)
    return w - LAM * gamma - g * (ETA - np.sign(g) * LAM * gamma)


def _lobster_sgd_step(w0, g0):
    """One SGD step plus the LOBSTER callback, as in training."""
    w = torch.nn.Parameter(torch.tensor([w0]))
    w.grad = torch.tensor([g0])
    net = SimpleNamespace(lam=LAM, regularized_weights=lambda: [w])
    reg = LOBSTER().initialize()
    reg.on_grad_computed(net, named_parameters=None, training=True)
    torch.optim.SGD([w], lr=ETA).step()
    reg.on_batch_end(net, training=True)
    return float(w.detach())


# Table 1: P, sign(∂L/∂w), sign(w) -> η̃/η (eq. 9).
TABLE_1 = [
    (1.5, 0.8, "=1"),  # P = 0: insensitive to λ, plain SGD
    (-2.0, -0.8, "=1"),
    (0.0, 0.8, "=1"),  # P = 1, gradient 0: pure decay (eq. 11)
    (0.3, 0.8, "<=1"),  # +, +
    (0.3, -0.8, ">=1"),  # +, −
    (-0.3, 0.8, ">=1"),  # −, +
    (-0.3, -0.8, "<=1"),  # −, −
]


@pytest.mark.parametrize("g, w, ratio", TABLE_1)
def test_lobster_step_matches_eq8_in_every_case_of_table1(g, w, ratio):
    new = _lobster_sgd_step(w, g)
    assert new == pytest.approx(_eq8(w, g), rel=1e-6, abs=1e-7)
    gamma = w * (abs(g) < 1)
    eta_tilde = ETA - np.sign(g) * LAM * gamma  # eq. (9)
    assert {"=1": eta_tilde == ETA, "<=1": eta_tilde <= ETA, ">=1": eta_tilde >= ETA}[ratio]
    if g == 0:
        assert new == pytest.approx((1 - LAM) * w)


def test_lobster_shrinkage_switches_off_for_sensitive_weights():
    w = torch.tensor([1.0, 1.0, 1.0])
    shrink = lobster_shrinkage(w, torch.tensor([0.999, 1.0, -3.0]), lam=0.5)
    assert shrink[0] > 0 and shrink[1] == 0 and shrink[2] == 0


def test_lobster_same_shrinkage_under_adam():
    """Applied after the step, the shrinkage adds to whatever the optimiser did."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    w.grad = torch.randn(5) * 0.5
    shrink = lobster_shrinkage(w, w.grad, LAM)
    reference = w.detach().clone()
    opt_ref = torch.optim.Adam([torch.nn.Parameter(reference)], lr=ETA)
    opt_ref.param_groups[0]["params"][0].grad = w.grad.clone()
    opt_ref.step()
    net = SimpleNamespace(lam=LAM, regularized_weights=lambda: [w])
    reg = LOBSTER().initialize()
    reg.on_grad_computed(net, named_parameters=None, training=True)
    torch.optim.Adam([w], lr=ETA).step()
    reg.on_batch_end(net, training=True)
    torch.testing.assert_close(w.detach(), opt_ref.param_groups[0]["params"][0].detach() - shrink)


def test_bisection_finds_largest_threshold_within_tolerance():
    magnitudes = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.8], dtype=torch.float64)

    def loss_at(t):  # every pruned weight costs 1: the loss is known for every T
        return 1.0 + float((magnitudes < t).sum())

    t = bisect_threshold(loss_at, t_max=0.8, bound=(1 + 2.0) * loss_at(0), eps=1e-10)
    assert loss_at(t) <= 3.0  # prunes exactly two weights (0.1 and 0.2) ...
    assert 0.3 - 1e-9 <= t <= 0.3  # ... and T is just below the third magnitude
    assert loss_at(t + 1e-8) > 3.0


@pytest.mark.parametrize("bound, expected", [(0.04, 0.2), (0.81, 0.9), (2.0, 1.0)])
def test_bisection_on_a_smooth_loss(bound, expected):
    t = bisect_threshold(lambda t: t * t, t_max=1.0, bound=bound, eps=1e-12)
    assert t == pytest.approx(expected, abs=1e-9)
    assert t * t <= bound


def test_lobster_pruning_stages_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    clf = SparseNetClassifier(
        regularizer="lobster",
        pruning="lobster",
        optimizer="sgd",
        lr=0.1,
        lam=1e-3,
        patience=2,
        loss_tolerance=0.05,
        validation_fraction=0.2,
        max_epochs=25,
        random_state=0,
    )
    clf.fit(X_train, y_train)
    stages = [row for row in clf.history_ if "event_lobster_prune" in row]
    assert stages and stages[0]["event_lobster_prune"] > 0
    assert clf.density_ < 0.8
    assert clf.history_[-1, "density"] == pytest.approx(clf.density_)
    assert clf.score(X_test, y_test) > 0.85
    assert not clf.net_._penalized  # LOBSTER acts outside the loss


def test_lobster_pruned_weights_stay_zero_between_stages(digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(
        regularizer="lobster",
        pruning="lobster",
        optimizer="sgd",
        optimizer__momentum=0.9,
        lr=0.05,
        lam=1e-3,
        patience=1,
        validation_fraction=0.2,
        max_epochs=8,
        random_state=0,
    )
    clf.fit(X_train, y_train)
    callback = dict(clf.net_.callbacks_)["pruning"]
    for w, m in zip(clf.net_.regularized_weights(), callback.masks_):
        assert torch.count_nonzero(w[~m]) == 0
    densities = clf.history_[:, "density"]
    assert all(b <= a + 1e-12 for a, b in zip(densities, densities[1:]))


def test_lobster_stops_when_a_stage_prunes_nothing(blobs, monkeypatch):
    monkeypatch.setattr("skprune.lobster.bisect_threshold", lambda *args: 0.0)
    X, y = blobs
    clf = SparseNetClassifier(
        pruning="lobster",
        optimizer="sgd",
        lr=1e-12,
        patience=1,
        validation_fraction=0.3,
        max_epochs=30,
    )
    clf.fit(X, y)
    assert len(clf.history_) < 30
    assert clf.history_[-1, "event_lobster_prune"] == 0
    assert "ce" in clf.history_[-1]  # no half-empty row left by the early stop
    assert clf.density_ == 1.0


def test_lobster_pruning_without_validation_split_raises(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="validation_fraction"):
        SparseNetClassifier(pruning="lobster", max_epochs=1).fit(X, y)


def test_lobster_pruner_without_validation_data_raises_before_training():
    clf = SparseNetClassifier(pruning=LobsterPruning(patience=1), validation_fraction=0.0)
    with pytest.raises(ValueError, match="LobsterPruning.*'validation_fraction' parameter is 0"):
        LobsterPruning(patience=1).validate(clf)


def test_lobster_penalty_is_the_l2_leading_term():
    assert float(LOBSTER().penalty([torch.tensor([3.0, -4.0])])) == pytest.approx(12.5)
    assert LOBSTER.in_loss is False
