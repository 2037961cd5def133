"""regularizer="group_l1": ℓ2,1 over output units and channels, weighted by their cost."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skprune import SparseNetClassifier, lambda_path
from skprune.parts import GroupLasso
from skprune.parts._group_lasso import cost_scales, group_lasso_grad, group_norms


@pytest.fixture
def images():
    """40 random 1×12×12 images of 2 classes: the smallest LeNet-5 input (10×10 and up)."""
    rng = np.random.RandomState(0)
    X = rng.rand(40, 1, 12, 12).astype(np.float32)
    y = (X[:, 0, :6].mean(axis=(1, 2)) > X[:, 0, 6:].mean(axis=(1, 2))).astype(int)
    return X, y


def test_group_lasso_penalty_is_weighted_sum_of_row_norms():
    w1 = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])  # rows of 3 weights: √3 each
    w2 = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[0.0, 2.0], [0.0, 0.0]]]])  # filters of 4
    expected = 3**0.5 * (5.0 + 0.0) + 4**0.5 * (2.0 + 2.0)
    assert float(GroupLasso(weighting=None).penalty([w1, w2])) == pytest.approx(expected)


def test_group_lasso_scales_multiply_each_layer_by_its_cost():
    reg = GroupLasso()
    reg.scales_ = {(2, 3): 10.0}
    w = torch.tensor([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(reg.penalty([w])) == pytest.approx(10.0 * 3**0.5 * 6.0)
    other = torch.ones(2, 2)  # a shape without a scale weighs 1
    assert float(reg.penalty([other])) == pytest.approx(2**0.5 * 2 * 2**0.5)


def test_group_lasso_grad_is_autograd_of_penalty_away_from_zero():
    torch.manual_seed(0)
    reg = GroupLasso()
    reg.scales_ = {(4, 2, 3, 3): 7.0}
    w = torch.randn(4, 2, 3, 3)
    w2 = w.clone().requires_grad_()
    (7.0 * 18**0.5 * w2.flatten(1).norm(dim=1).sum()).backward()
    torch.testing.assert_close(reg.grad(w), w2.grad)


def test_group_lasso_grad_at_zero_group_is_zero_or_smoothed():
    w = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert group_lasso_grad(w)[0].tolist() == [0.0, 0.0]
    smooth = group_lasso_grad(torch.tensor([[1e-3, 0.0]]), eps=1e-3)
    assert smooth[0, 0] == pytest.approx(1 / 2**0.5, rel=1e-5)
    assert torch.isfinite(GroupLasso(eps=0.0).grad(torch.zeros(3, 2))).all()


def test_group_norms_of_conv_filters():
    w = torch.zeros(3, 2, 2, 2)
    w[1, 0, 0, 0], w[1, 1, 1, 1] = 3.0, 4.0
    assert group_norms(w).tolist() == [0.0, 5.0, 0.0]


def test_cost_scales_are_multiply_adds_per_weight_over_the_costliest():
    # weights used 10 times, 4 times and once: the costliest layer weighs 1.
    assert cost_scales([((1, 2), 10), ((3, 2), 1), ((2, 2), 4)]) == pytest.approx([1, 0.1, 0.4])


def test_group_lasso_reads_positions_of_lenet5_layers_at_fit(images):
    X, y = images
    clf = SparseNetClassifier(
        "lenet5", regularizer="group_l1", regularized_layers="all", max_epochs=1, random_state=0
    ).fit(X, y)
    scales = clf.net_.regularizer.scales_
    # 12×12: conv1 outputs 10×10 positions, conv2 3×3; the dense layers one.
    conv1, conv2, dense = scales[(6, 1, 3, 3)], scales[(16, 6, 3, 3)], scales[(120, 16)]
    assert conv1 / dense == pytest.approx(100) and conv2 / dense == pytest.approx(9)
    unweighted = SparseNetClassifier(
        "lenet5",
        regularizer="group_l1",
        regularizer__weighting=None,
        regularized_layers="all",
        max_epochs=1,
    ).fit(X, y)
    assert unweighted.net_.regularizer.scales_ == {}


def test_group_lasso_trains_stacked_and_lambda_path_equals_separate_fits(
    images, skorch_fit, training, max_weight_gap
):
    X, y = images
    est = SparseNetClassifier(
        "lenet5",
        regularizer="group_l1",
        regularized_layers="all",
        max_epochs=2,
        batch_size=16,
        random_state=0,
    )
    lams = [0.0, 1e-3, 1e-2]
    with training as seen:
        path = lambda_path(est, X, y, lams)
    assert seen.stacks == [len(lams)] and seen.loops == 0
    assert all(m.training_loop_ == "stacked" for m in path)
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in lams]
    assert all(s.training_loop_ == "skorch" for s in separate)
    assert max_weight_gap(path, separate) <= 1e-4
    for p, s in zip(path, separate):
        np.testing.assert_allclose(p.history_[:, "penalty"], s.history_[:, "penalty"], rtol=1e-4)


def test_group_lasso_single_fit_trains_stacked(digits):
    X, _, y, _ = digits
    clf = SparseNetClassifier(regularizer="group_l1", max_epochs=1, random_state=0).fit(X, y)
    assert clf.training_loop_ == "stacked"


def test_group_lasso_removes_whole_units_and_cuts_flops(digits):
    X, _, y, _ = digits
    est = SparseNetClassifier(regularizer="group_l1", max_epochs=4, random_state=0)
    weak, strong = lambda_path(est, X, y, [0.0, 3e-3])
    dead_rows = int((strong.net_.module_.layer1.weight.abs().sum(1) == 0).sum())
    assert dead_rows > 0
    assert strong.flops_ < weak.flops_


def test_group_lasso_rejects_unknown_weighting(digits):
    X, _, y, _ = digits
    clf = SparseNetClassifier(regularizer="group_l1", regularizer__weighting="params")
    with pytest.raises(ValueError, match="'weighting' parameter of GroupLasso"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="'eps' parameter of GroupLasso"):
        GroupLasso(eps=-1.0).validate()


def test_group_threshold_pruning_zeroes_groups_that_hover_near_zero(digits):
    X, _, y, _ = digits
    # Adam's steps of lr = 0.02 exceed the threshold: element by element, rows hover near
    # zero without reaching it; by their root mean square, they go.
    params = {"regularizer": "group_l1", "lam": 0.03, "lr": 0.02, "threshold": 7e-3}
    fits = [
        SparseNetClassifier(**params, pruning=p, max_epochs=3, random_state=0).fit(X[:150], y[:150])
        for p in ("auto", "group")
    ]
    rows = [int((c.net_.module_.layer1.weight.abs().sum(1) == 0).sum()) for c in fits]
    assert rows[0] == 0 and rows[1] > 0
    assert fits[1].training_loop_ == "skorch"
