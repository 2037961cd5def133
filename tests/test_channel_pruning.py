"""pruning="channel": filters of smallest ℓ1 norm removed to a multiply-add target (Li et al.)."""

import numpy as np
import pytest
import torch
from torch import nn

from skprune import SparseNetClassifier, lambda_path
from skprune.cost import count_cost
from skprune.parts._channel_pruning import channel_masks, filter_scores


def test_filter_scores_are_l1_norms_over_their_layer_mean():
    w = torch.tensor([[1.0, -1.0], [0.0, 4.0]])  # norms 2 and 4, mean 3
    assert filter_scores([w]).tolist() == pytest.approx([2 / 3, 4 / 3])


def test_channel_masks_reach_the_target_with_fewest_removals():
    torch.manual_seed(0)
    from skprune.models import LeNet5

    net = LeNet5()
    masks = channel_masks(net, (1, 28, 28), 0.3)
    before = [layer.weight.clone() for layer in (net.conv1, net.conv2)]
    assert torch.equal(net.conv1.weight, before[0])  # the module itself is left as it was
    with torch.no_grad():
        for layer, mask in zip([net.conv1, net.conv2, net.layer1, net.layer2, net.layer3], masks):
            layer.weight.mul_(mask)
    flops = sum(c.flops for c in count_cost(net, (1, 28, 28)).values())
    assert flops <= 0.3 * 199_968
    assert masks[-1].all()  # the logits stay
    assert all(m.flatten(1).any(1).any() for m in masks)  # one filter per layer at least


def test_channel_pruning_meets_flops_target_and_holds_masks(digits):
    X, _, y, _ = digits
    clf = SparseNetClassifier(
        pruning="channel",
        pruning__target_flops=0.4,
        regularizer=None,
        max_epochs=2,
        finetune_epochs=2,
        module__hidden_layer_sizes=(32, 16),
        random_state=0,
    ).fit(X, y)
    dense = 64 * 32 + 32 * 16 + 16 * 10
    assert clf.flops_ <= 0.4 * dense
    assert clf.history_[1, "event_prune"] <= 0.4
    dead = clf.net_.module_.layer1.weight.abs().sum(1) == 0
    assert dead.any()  # fine-tuned 2 epochs after pruning: the removed rows stayed zero
    assert clf.training_loop_ == "skorch"


def test_channel_pruning_holds_conv_masks_outside_regularized_layers():
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 1, 12, 12).astype(np.float32), rng.randint(0, 2, 40)
    clf = SparseNetClassifier(
        "lenet5",
        pruning="channel",
        pruning__target_flops=0.3,
        regularizer=None,
        max_epochs=1,
        finetune_epochs=2,
        random_state=0,
    ).fit(X, y)
    conv_rows = clf.net_.module_.conv2.weight.flatten(1).abs().sum(1)
    assert (conv_rows == 0).any()


def test_channel_pruning_path_falls_back_to_separate_fits(digits, training):
    X, _, y, _ = digits
    est = SparseNetClassifier(
        pruning="channel", pruning__target_flops=0.5, max_epochs=1, finetune_epochs=1
    )
    with training as seen:
        path = lambda_path(est, X[:200], y[:200], [1e-4, 1e-3])
    assert seen.stacks == [] and seen.loops == 2
    assert all(m.training_loop_ == "skorch" for m in path)


def test_channel_pruning_errors_name_the_parameter(digits):
    X, _, y, _ = digits
    with pytest.raises(ValueError, match="'target_flops' parameter"):
        SparseNetClassifier(pruning="channel").fit(X, y)
    with pytest.raises(ValueError, match="'target_flops' parameter of ChannelPruning"):
        SparseNetClassifier(pruning="channel", pruning__target_flops=1.5).fit(X, y)
    module = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    with pytest.raises(ValueError, match="built-in 'mlp', 'lenet300' and 'lenet5'"):
        SparseNetClassifier(module, pruning="channel", pruning__target_flops=0.5).fit(X, y)
