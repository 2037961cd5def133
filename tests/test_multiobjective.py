import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from skprune import SparseNetClassifier
from skprune.optim import SMGD, MAdam, MRMSProp, min_norm_weight
from skprune.registry import OPTIMIZERS
from skprune.regularizers import L1, Regularizer

MULTIOBJECTIVE = ["smgd", "madam", "mrmsprop"]
# SGD-type steps need a larger rate than the adaptive ones to train in 20 epochs.
LR = {"smgd": 0.1, "madam": 1e-3, "mrmsprop": 1e-3}


def _combined_norm(g1, g2, lam):
    return np.sum(((1 - lam) * g1 + lam * g2) ** 2)


@pytest.mark.parametrize("seed", range(20))
def test_min_norm_weight_matches_grid_search(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(2, 50)
    g1 = rng.normal(size=n)
    g2 = rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0]) + rng.choice([0.0, 1.0]) * g1
    grid = np.linspace(0, 1, 100_001)
    values = [_combined_norm(g1, g2, lam) for lam in grid]
    lam = min_norm_weight(g1, g2)
    assert 0 <= lam <= 1
    assert _combined_norm(g1, g2, lam) <= min(values) + 1e-12
    assert abs(lam - grid[int(np.argmin(values))]) <= 1e-4


@pytest.mark.parametrize("seed", range(20))
def test_min_norm_weight_common_descent_for_conflicting_gradients(seed):
    rng = np.random.default_rng(seed)
    g1, g2 = rng.normal(size=(2, 10)) * rng.uniform(0.01, 100, size=(2, 1))
    if g1 @ g2 >= 0:
        g2 = g2 - 2 * (g1 @ g2) / (g1 @ g1) * g1  # reflect: now g1·g2 < 0
    assert g1 @ g2 < 0
    lam = min_norm_weight(g1, g2)
    direction = (1 - lam) * g1 + lam * g2
    scale = np.linalg.norm(g1) * np.linalg.norm(g2)
    assert direction @ g1 >= -1e-9 * scale
    assert direction @ g2 >= -1e-9 * scale


def test_min_norm_weight_equal_gradients_is_zero():
    assert min_norm_weight([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert min_norm_weight(np.zeros(3), np.zeros(3)) == 0.0


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _train(model, optimizer, steps=15, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        X = torch.randn(8, 6, generator=generator)
        y = torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        (MAdam, torch.optim.Adam, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6}),
        (MRMSProp, torch.optim.RMSprop, {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6}),
        (SMGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ],
)
@pytest.mark.parametrize("with_objective", [True, False])
def test_optimizer_lambda_zero_takes_the_torch_steps(ours, theirs, kwargs, with_objective):
    model, reference = _model(), _model()
    optimizer = ours(model.parameters(), lam=0.0 if with_objective else None, **kwargs)
    if with_objective:
        optimizer.set_objective(L1(), [model[0].weight, model[2].weight])
    got = _train(model, optimizer)
    expected = _train(reference, theirs(reference.parameters(), **kwargs))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(float(lam) == 0.0 for lam in optimizer.lambda_history)


@pytest.mark.parametrize("cls", [SMGD, MAdam, MRMSProp])
def test_optimizer_lambda_is_the_min_norm_weight_of_the_whole_vector(cls):
    model = _model()
    optimizer = cls(model.parameters(), lr=1e-3)
    weights = [model[0].weight, model[2].weight]
    optimizer.set_objective(L1(), weights)
    X, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    torch.nn.functional.cross_entropy(model(X), y).backward()
    g1 = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    is_weight = [any(p is w for w in weights) for p in model.parameters()]
    g2 = [
        torch.sign(p) if reg else torch.zeros_like(p)
        for p, reg in zip(model.parameters(), is_weight)
    ]
    g2 = torch.cat([g.detach().reshape(-1) for g in g2])
    optimizer.step()
    assert float(optimizer.lambda_history[0]) == pytest.approx(min_norm_weight(g1, g2), rel=1e-5)


def test_optimizer_autograd_fallback_for_regularizers_without_grad():
    class SquaredL2(Regularizer):
        def penalty(self, weights):
            return sum((w**2).sum() for w in weights)

    model = _model()
    optimizer = SMGD(model.parameters(), lr=1e-3, lam=1.0)
    optimizer.set_objective(SquaredL2(), [model[0].weight])
    before = model[0].weight.detach().clone()
    model(torch.randn(2, 6)).sum().backward()
    optimizer.step()
    torch.testing.assert_close(model[0].weight.detach(), before - 1e-3 * 2 * before)


@pytest.mark.parametrize("lam", [-0.1, 1.5])
def test_optimizer_fixed_lambda_out_of_range_raises(lam):
    with pytest.raises(ValueError, match=r"'lam' parameter of MAdam must be None or in \[0, 1\]"):
        MAdam(_model().parameters(), lam=lam)


def test_optimizers_are_registered():
    assert OPTIMIZERS["smgd"] is SMGD
    assert OPTIMIZERS["madam"] is MAdam
    assert OPTIMIZERS["mrmsprop"] is MRMSProp


@pytest.mark.parametrize("optimizer", MULTIOBJECTIVE)
def test_estimator_multiobjective_trains_digits(digits, optimizer):
    X_train, X_test, y_train, y_test = digits
    clf = SparseNetClassifier(
        "mlp",
        optimizer=optimizer,
        lr=LR[optimizer],
        batch_size=64,
        max_epochs=20,
        random_state=0,
        device="cpu",
    ).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.85
    n_steps = 20 * int(np.ceil(len(X_train) / 64))
    lambdas = clf.lambda_history_
    assert lambdas.shape == (n_steps,)
    assert np.all((lambdas >= 0) & (lambdas <= 1))
    assert np.ptp(lambdas) > 0
    epoch_means = np.asarray(clf.history_[:, "lambda"])
    np.testing.assert_allclose(epoch_means, lambdas.reshape(20, -1).mean(axis=1), rtol=1e-6)
    # E alone is the loss: the recorded train_loss is the cross-entropy.
    np.testing.assert_allclose(clf.history_[:, "train_loss"], clf.history_[:, "ce"], rtol=1e-5)


def test_estimator_multiobjective_on_device(blobs, device):
    X, y = blobs
    clf = SparseNetClassifier(optimizer="madam", max_epochs=2, device=device, random_state=0)
    clf.fit(X, y)
    assert clf.lambda_history_.shape == (2 * int(np.ceil(len(X) / 32)),)


def test_estimator_lambda_history_only_for_multiobjective(blobs):
    X, y = blobs
    clf = SparseNetClassifier(optimizer="madam", max_epochs=1, random_state=0).fit(X, y)
    assert hasattr(clf, "lambda_history_")
    clf.set_params(optimizer="adam").fit(X, y)
    assert not hasattr(clf, "lambda_history_")
    assert "lambda" not in clf.history_[-1]


def test_estimator_multiobjective_clone_and_pickle(blobs):
    X, y = blobs
    clf = SparseNetClassifier(optimizer="mrmsprop", max_epochs=2, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))
    np.testing.assert_array_equal(restored.lambda_history_, clf.lambda_history_)
    refit = clone(clf).fit(X, y)
    np.testing.assert_array_equal(refit.lambda_history_, clf.lambda_history_)


def test_estimator_multiobjective_without_regularizer_raises(blobs):
    X, y = blobs
    clf = SparseNetClassifier(optimizer="smgd", regularizer=None, max_epochs=1)
    with pytest.raises(ValueError, match="multi-objective optimizer SMGD needs a regularizer"):
        clf.fit(X, y)


def test_estimator_unknown_optimizer_raises(blobs):
    X, y = blobs
    with pytest.raises(InvalidParameterError, match=r"'optimizer' parameter.*'madam'"):
        SparseNetClassifier(optimizer="mgd").fit(X, y)


@pytest.mark.parametrize("pruning", ["batch", "epoch", "after", None])
def test_estimator_multiobjective_with_pruning_modes(blobs, pruning):
    X, y = blobs
    clf = SparseNetClassifier(
        optimizer="madam", pruning=pruning, threshold=0.05, max_epochs=3, random_state=0
    ).fit(X, y)
    assert len(clf.lambda_history_) == 3 * int(np.ceil(len(X) / 32))
    assert clf.density_ < 1 if pruning else clf.density_ == 1


def test_madam_unfused_path_matches_fused(monkeypatch):
    def run():
        model = _model()
        optimizer = MAdam(model.parameters(), lr=1e-2)
        optimizer.set_objective(L1(), [model[0].weight, model[2].weight])
        return _train(model, optimizer), optimizer.lambda_history

    fused, fused_lambdas = run()
    monkeypatch.setattr("skprune.optim._has_fused_adam", lambda device: False)
    unfused, unfused_lambdas = run()
    for a, b in zip(fused, unfused):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack(fused_lambdas), torch.stack(unfused_lambdas))
