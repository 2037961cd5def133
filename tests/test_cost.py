"""Counting the inference cost: multiply-adds and bytes of what compaction runs."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

from skprune import SparseNetClassifier
from skprune.cost import LayerCost, count_cost, form_cost, live_units, total_cost, trace_layers
from skprune.models import MLP, LeNet5

#: LeNet-5 on 28×28 per layer, by hand: out × in × 3 × 3 × positions; out × in.
LENET5 = {
    "conv1": 6 * 1 * 9 * 26 * 26,
    "conv2": 16 * 6 * 9 * 11 * 11,
    "layer1": 120 * 400,
    "layer2": 84 * 120,
    "layer3": 10 * 84,
}


def _flops(module, shape=(1, 28, 28), **kwargs):
    return {name: c.flops for name, c in count_cost(module, shape, **kwargs).items()}


def test_count_cost_of_dense_lenet5_is_the_hand_count():
    assert _flops(LeNet5()) == LENET5
    assert sum(LENET5.values()) == 199_968  # the figure of issue 22


def test_removed_conv1_channel_also_removes_its_input_to_conv2():
    net = LeNet5()
    with torch.no_grad():
        net.conv1.weight[2] = 0
    flops = _flops(net)
    assert flops["conv1"] == LENET5["conv1"] - 9 * 676
    assert flops["conv2"] == LENET5["conv2"] - 16 * 9 * 121


def test_conv_channel_that_no_dense_unit_reads_is_dead():
    net = LeNet5()
    with torch.no_grad():
        net.layer1.weight[:, 25:50] = 0  # the 5×5 map of conv2's channel 1, flattened
    flops = _flops(net)
    assert flops["conv2"] == LENET5["conv2"] - 6 * 9 * 121
    assert flops["layer1"] == LENET5["layer1"] - 120 * 25


def test_unit_without_incoming_weight_is_folded_away():
    net = MLP(4, 2, (3,))
    with torch.no_grad():
        net.layer1.weight[1] = 0  # constant relu(bias): folded into layer2's bias
    assert _flops(net, (4,)) == {"layer1": 2 * 4, "layer2": 2 * 2}
    (out1, in1), (out2, in2) = live_units([net.layer1.weight, net.layer2.weight])
    assert out1.tolist() == [True, False, True] and in2.tolist() == [True, False, True]
    assert out2.all() and in1.all()


def test_unstructured_zeros_of_a_dense_layer_save_nothing_but_csr_counts_nonzeros():
    net = MLP(6, 2, (4,))
    with torch.no_grad():
        net.layer1.weight.fill_diagonal_(0.0)  # zeros scattered: no row or column empty
    nnz = int(torch.count_nonzero(net.layer1.weight))
    assert _flops(net, (6,))["layer1"] == 4 * 6
    assert _flops(net, (6,), csr=lambda w: True)["layer1"] == nnz


def test_module_outside_the_chains_is_counted_whole():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight[0] = 0
    assert _flops(net, (4,)) == {"0": 12, "2": 6}
    assert _flops(net, (4,), structured=True) == {"0": 8, "2": 4}


def test_trace_layers_leaves_batch_norm_statistics_and_modes_alone():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    net.train()
    before = net[1].running_mean.clone()
    assert [(n, p) for n, _, p in trace_layers(net, (1, 4, 4))] == [("0", 4), ("3", 1)]
    assert torch.equal(net[1].running_mean, before) and net.training and net[1].training


def test_layer_cost_counts_bytes_and_activations():
    cost = count_cost(MLP(3, 2, (4,)), (3,))["layer1"]
    assert cost == LayerCost(flops=12, params=16, nbytes=64, activations=4)
    assert total_cost({"a": cost, "b": cost}).flops == 24


def test_form_cost_reads_a_stated_count_and_csr_nonzeros():
    class Op:  # an operation of an inference form, with or without its own count
        def __init__(self, kind, weight=None, bias=None, **stated):
            self.kind, self.weight, self.bias, self.pool = kind, weight, bias, 0
            vars(self).update(stated)

    weight = torch.eye(3, 5)
    with pytest.warns(UserWarning, match="CSR"):
        csr = weight.to_sparse_csr()
    costs = form_cost([Op("linear", csr, torch.ones(3))], (5,), ["fc"])
    assert costs["fc"].flops == 3
    stated = form_cost([Op("linear", weight, torch.ones(3), flops=7, nbytes=11)], (5,))
    assert stated["op0"].flops == 7 and stated["op0"].nbytes == 11


@pytest.fixture
def lenet5_fit():
    rng = np.random.RandomState(0)
    X = rng.rand(30, 1, 28, 28).astype(np.float32)
    y = rng.randint(0, 3, 30)
    clf = SparseNetClassifier("lenet5", lam=1e-3, regularized_layers="all", max_epochs=1)
    clf.fit(X, y)
    with torch.no_grad():  # structure to remove: a conv2 channel and some dense units
        clf.net_.module_.conv2.weight[3] = 0
        clf.net_.module_.layer2.weight[:40] = 0
    return clf, X


def test_estimator_flops_equal_before_and_after_sparsify(lenet5_fit):
    clf, X = lenet5_fit
    before = clf.layer_flops_
    assert clf.flops_ == sum(before.values()) and isinstance(clf.flops_, int)
    assert before["conv2"] == 15 * 6 * 9 * 121
    assert clf.param_bytes_ > 0
    clf.sparsify()
    assert clf.layer_flops_ == before  # the compacted form runs what was counted


def test_estimator_flops_follow_the_stated_counts_of_the_form(lenet5_fit, monkeypatch):
    from skprune.estimators import _inference

    clf, X = lenet5_fit
    clf.sparsify()
    form = _inference.inference_form(clf.net_)
    for op in form.ops:
        vars(op)["flops"] = 1  # as the deployed form's operations state them
    assert clf.flops_ == sum(1 for op in form.ops if "weight" in op.tensors)


def test_flops_of_unfitted_estimator_raise_not_fitted():
    with pytest.raises(NotFittedError):
        _ = SparseNetClassifier().flops_
