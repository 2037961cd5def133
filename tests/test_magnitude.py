"""Global / layerwise / random pruning to a target density, and fine-tuning with the mask held."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from skprune import SparseNetClassifier
from skprune.magnitude import (
    MagnitudePruning,
    global_magnitude_masks,
    layerwise_magnitude_masks,
    random_masks,
)
from skprune.pruning import apply_masks_


def _weights():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(40, 30, generator=g), 3 * torch.randn(20, 40, generator=g)]


def test_global_masks_keep_the_largest_magnitudes_overall():
    weights = _weights()
    masks = global_magnitude_masks(weights, 0.1)
    kept = torch.cat([w[m].abs() for w, m in zip(weights, masks)])
    dropped = torch.cat([w[~m].abs() for w, m in zip(weights, masks)])
    assert len(kept) == round(0.1 * 2000)
    assert kept.min() >= dropped.max()
    assert masks[1].float().mean() > masks[0].float().mean()  # the larger layer keeps more


def test_layerwise_masks_give_each_layer_its_density():
    weights = _weights()
    masks = layerwise_magnitude_masks(weights, [0.1, 0.5])
    assert [int(m.sum()) for m in masks] == [120, 400]
    for w, m in zip(weights, masks):
        assert w[m].abs().min() >= w[~m].abs().max()


def test_random_masks_ignore_magnitude_and_follow_the_seed():
    weights = _weights()
    a = random_masks(weights, 0.3, torch.Generator().manual_seed(1))
    b = random_masks(weights, 0.3, torch.Generator().manual_seed(1))
    assert [int(m.sum()) for m in a] == [360, 240]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], layerwise_magnitude_masks(weights, 0.3)[0])


@pytest.mark.parametrize("density", [1.0, 1e-9])
def test_masks_at_the_extremes(density):
    weights = _weights()
    kept = sum(int(m.sum()) for m in global_magnitude_masks(weights, density))
    assert kept == (2000 if density == 1.0 else 0)


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_pruned_weights_stay_exactly_zero_under_momentum(optimizer):
    torch.manual_seed(0)
    layer = torch.nn.Linear(20, 10)
    net = SimpleNamespace(regularized_weights=lambda: [layer.weight], seed=0, history=None)
    opt = (
        torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        if optimizer == "sgd_momentum"
        else torch.optim.Adam(layer.parameters(), lr=0.1)
    )
    x = torch.randn(64, 20)
    for _ in range(3):  # build up momentum / Adam moments before pruning
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()
    callback = MagnitudePruning("global", 0.2, prune_after=0).initialize()
    callback.on_train_begin(net)
    zeros = layer.weight == 0
    assert int((~zeros).sum()) == 40
    for _ in range(5):
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()
        callback.on_batch_end(net, training=True)
        assert torch.equal(layer.weight[zeros], torch.zeros(int(zeros.sum())))


def test_apply_masks_writes_exact_zeros():
    w = torch.tensor([1.0, float("-0.5"), 2.0])
    apply_masks_([w], [torch.tensor([False, False, True])])
    assert torch.count_nonzero(w) == 1


@pytest.mark.parametrize("method", ["global", "layerwise", "random"])
def test_estimator_prunes_to_target_and_finetunes(method, digits):
    X_train, X_test, y_train, y_test = digits
    clf = SparseNetClassifier(
        pruning=method, target_density=0.1, max_epochs=3, finetune_epochs=2, random_state=0
    )
    clf.fit(X_train, y_train)
    assert clf.density_ == pytest.approx(0.1, abs=0.002)
    assert len(clf.history_) == 5
    assert clf.history_[2, "event_prune"] == pytest.approx(0.1, abs=0.002)
    assert clf.history_[:, "density"][-1] == pytest.approx(clf.density_)
    if method != "global":
        assert all(d == pytest.approx(0.1, abs=0.002) for d in clf.layer_density_.values())


def test_finetune_zero_prunes_at_the_last_epoch(blobs):
    X, y = blobs
    clf = SparseNetClassifier(pruning="global", target_density=0.3, max_epochs=2, finetune_epochs=0)
    clf.fit(X, y)
    assert len(clf.history_) == 2
    assert clf.density_ == pytest.approx(0.3, abs=0.01)


def test_finetuning_recovers_accuracy(digits):
    X_train, X_test, y_train, y_test = digits
    params = dict(pruning="random", target_density=0.2, max_epochs=5, random_state=0)
    scores = [
        SparseNetClassifier(finetune_epochs=ft, **params)
        .fit(X_train, y_train)
        .score(X_test, y_test)
        for ft in (0, 4)
    ]
    assert scores[1] > scores[0]


def test_layerwise_dict_target_density(blobs):
    X, y = blobs
    clf = SparseNetClassifier(
        pruning="layerwise", target_density={"layer1": 0.25}, max_epochs=1, finetune_epochs=1
    )
    clf.fit(X, y)
    assert clf.layer_density_["layer1"] == pytest.approx(0.25, abs=0.01)
    assert clf.layer_density_["layer2"] > 0.9


@pytest.mark.parametrize("method", ["global", "layerwise", "random"])
def test_magnitude_pruning_without_target_density_raises(method, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="target_density"):
        SparseNetClassifier(pruning=method, max_epochs=1).fit(X, y)


def test_global_pruning_with_dict_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(pruning="global", target_density={"layer1": 0.5}, max_epochs=1)
    with pytest.raises(ValueError, match="target_density"):
        clf.fit(X, y)


@pytest.mark.parametrize("density", [0.0, 1.5, -0.1])
def test_target_density_outside_unit_interval_raises(density, blobs):
    X, y = blobs
    clf = SparseNetClassifier(pruning="global", target_density=density, max_epochs=1)
    with pytest.raises(ValueError, match="target_density"):
        clf.fit(X, y)


def test_negative_finetune_epochs_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(pruning="global", target_density=0.5, finetune_epochs=-1)
    with pytest.raises(ValueError, match="finetune_epochs"):
        clf.fit(X, y)


def test_magnitude_pruning_is_reproducible(blobs):
    X, y = blobs
    params = dict(pruning="random", target_density=0.4, max_epochs=2, random_state=3)
    a = SparseNetClassifier(**params).fit(X, y).predict_proba(X)
    b = SparseNetClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["global", "layerwise", "random"])
def test_magnitude_pruning_on_device(method, device, digits):
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(
        pruning=method, target_density=0.2, max_epochs=1, finetune_epochs=1, device=device
    )
    assert clf.fit(X_train, y_train).density_ == pytest.approx(0.2, abs=0.002)


@pytest.mark.parametrize("copy_", ["deepcopy", "pickle"])
def test_copied_net_prunes_its_own_module(copy_, blobs):
    import copy
    import pickle

    X, y = blobs
    clf = SparseNetClassifier(pruning=None, max_epochs=1, random_state=0).fit(X, y)
    clf = copy.deepcopy(clf) if copy_ == "deepcopy" else pickle.loads(pickle.dumps(clf))
    apply_masks_(
        clf.net_.regularized_weights(), global_magnitude_masks(clf.net_.regularized_weights(), 0.1)
    )
    assert (
        torch.count_nonzero(clf.net_.module_.layer1.weight)
        < clf.net_.module_.layer1.weight.numel() / 2
    )
