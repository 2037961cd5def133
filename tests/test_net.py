import pytest
import torch

from skprune.metrics import count_nonzero, layer_density, regularized_layers
from skprune.pruning import soft_threshold_
from skprune.regularizers import L1
from skprune.training._net import TensorBatches


def test_tensor_batches_cover_every_sample_once_per_pass():
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = TensorBatches(X, y, batch_size=4, shuffle=True, generator=torch.Generator())
    assert len(batches) == 3
    for _ in range(2):
        seen = torch.cat([yb for _, yb in batches])
        assert sorted(seen.tolist()) == list(range(10))
        assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in batches)


def test_tensor_batches_shuffle_is_seeded():
    X, y = torch.arange(50.0)[:, None], torch.arange(50)

    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([yb for _, yb in TensorBatches(X, y, 8, True, gen)])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    assert torch.equal(torch.cat([yb for _, yb in TensorBatches(X, y, 8)]), y)


def test_l1_penalty_and_gradient_equal_hand_computed_values():
    w1 = torch.tensor([[0.5, -1.5], [0.0, 2.0]], requires_grad=True)
    w2 = torch.tensor([-0.25], requires_grad=True)
    assert float(L1().penalty([w1, w2])) == pytest.approx(4.25)
    assert L1().analytic
    (3.0 * L1().loss_term([w1, w2])).backward()
    torch.testing.assert_close(w1.grad, torch.tensor([[3.0, -3.0], [0.0, 3.0]]))
    torch.testing.assert_close(w2.grad, torch.tensor([-3.0]))


def test_analytic_penalty_matches_autograd_away_from_zero():
    torch.manual_seed(0)
    w = torch.randn(5, 7, requires_grad=True)
    L1().loss_term([w]).backward()
    analytic = w.grad.clone()
    w.grad = None
    w.abs().sum().backward()
    torch.testing.assert_close(analytic, w.grad)


def test_soft_threshold_zeroes_small_weights_only():
    w = torch.tensor([0.3, -2e-3, 5e-4, -5e-4, 0.0, 1.5e-3])
    soft_threshold_([w], 1e-3)
    torch.testing.assert_close(w, torch.tensor([0.3, -2e-3, 0.0, 0.0, 0.0, 1.5e-3]))


def test_soft_threshold_works_on_parameters_in_place():
    layer = torch.nn.Linear(30, 20)
    before = layer.weight.data_ptr()
    soft_threshold_([layer.weight], 0.05)
    assert layer.weight.data_ptr() == before
    assert not ((layer.weight.abs() < 0.05) & (layer.weight != 0)).any()


def test_count_nonzero_and_layer_density():
    a, b = torch.tensor([0.0, 1.0, 2.0, 0.0]), torch.zeros(3)
    assert count_nonzero([a, b]) == (2, 7)
    assert layer_density([("a", a), ("b", b)]) == {"a": 0.5, "b": 0.0}


def test_regularized_layers_default_to_linear_layers():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    assert [n for n, _ in regularized_layers(net)] == ["2"]
    assert [n for n, _ in regularized_layers(net, "all")] == ["0", "2"]
    assert [n for n, _ in regularized_layers(net, ["0"])] == ["0"]


@pytest.mark.parametrize("pruning, lr", [("batch", 0.05), ("epoch", 1e-3)])
def test_soft_pruning_lets_weights_grow_back(digits, pruning, lr):
    from skorch.callbacks import Callback

    from skprune import SparseNetClassifier

    class RegrowthProbe(Callback):
        # runs after the pruning callbacks: sees the weights as pruned
        def on_train_begin(self, net, **kwargs):
            self.pruned_ = [w.detach() == 0 for w in net.regularized_weights()]

        def on_epoch_end(self, net, **kwargs):
            self.regrown_ = sum(
                int(((w.detach() != 0) & was).sum())
                for w, was in zip(net.regularized_weights(), self.pruned_)
            )

    X_train, _, y_train, _ = digits
    # batchwise, a weight regrows only if one step takes it past tau: hence the larger lr
    clf = SparseNetClassifier(
        lam=0.0,
        pruning=pruning,
        threshold=0.02,
        max_epochs=1,
        lr=lr,
        random_state=0,
        callbacks=[RegrowthProbe()],
    )
    clf.fit(X_train, y_train)
    probe = dict(clf.net_.callbacks_)["user_0"]
    assert sum(int(p.sum()) for p in probe.pruned_) > 0
    assert probe.regrown_ > 0
