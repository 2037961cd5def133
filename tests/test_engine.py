"""The stacked training engine: lambda_path and fit_stacked equal separate fits."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from skorch.callbacks import Callback
from torch import nn

from skprune import SparseNetClassifier, SparseNetRegressor, lambda_path
from skprune.engine import (
    _prepare,
    fit_candidates,
    fit_net,
    fit_stacked,
    train_stackable,
    unstackable_reason,
)
from skprune.training._stack_loop import train_stack
from skprune.training._stacked import (
    StackedLeNet5,
    cross_entropy_grad,
    dropout_mask,
    squared_error_grad,
    stack_modules,
    unstackable,
)

LAMS = [0.0, 1e-4, 1e-3, 1e-2]


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 8).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.7)
    return X, y


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return request.param


def _separate(estimators, X, y, rows=None):
    rows = rows or [np.arange(len(X))] * len(estimators)
    return [clone(e).fit(X[r], y[r]) for e, r in zip(estimators, rows)]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"optimizer": "sgd", "lr": 0.05, "optimizer__momentum": 0.9, "regularizer": "l2"},
        {"optimizer": "rmsprop", "regularizer": "l0", "pruning": "epoch"},
        {"regularizer": "l2_l0", "pruning": "after", "module__hidden_layer_sizes": (6, 5)},
        {"regularizer": None, "pruning": None},
    ],
)
def test_lambda_path_equals_separate_fits(
    data, params, device, skorch_fit, training, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(max_epochs=2, batch_size=16, random_state=0, device=device, **params)
    with training as seen:
        path = lambda_path(est, X, y, LAMS)
    assert seen.stacks == [len(LAMS)] and seen.loops == 0  # one stack, no fallback
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in LAMS]
    assert max_weight_gap(path, separate) <= 1e-4
    for p, s in zip(path, separate):
        assert p.density_ == s.density_ and p.layer_density_ == s.layer_density_
        np.testing.assert_allclose(p.objectives_, s.objectives_, rtol=1e-4)
        for key in ("train_loss", "ce", "penalty", "density"):
            np.testing.assert_allclose(p.history_[:, key], s.history_[:, key], rtol=1e-4)
        np.testing.assert_allclose(p.predict_proba(X), s.predict_proba(X), atol=1e-4)
        assert p.classes_.tolist() == s.classes_.tolist()
        assert p.n_features_in_ == s.n_features_in_


def test_lambda_path_differs_by_lambda_and_keeps_template(data):
    X, y = data
    est = SparseNetClassifier(max_epochs=2, batch_size=16, random_state=0, threshold=0.02)
    path = lambda_path(est, X, y, [1e-4, 5e-2])
    assert [p.lam for p in path] == [1e-4, 5e-2]
    assert path[1].density_ < path[0].density_
    assert est.lam == 1e-4 and not hasattr(est, "net_")


def test_fit_stacked_folds_equal_separate_fits(data, skorch_fit, training, max_weight_gap):
    X, y = data
    X, y = X[:101], y[:101]  # folds of 67 and 68 rows: a shorter last batch
    folds = [train for train, _ in KFold(3).split(X)]
    est = SparseNetClassifier(max_epochs=2, batch_size=16, random_state=1)
    estimators = [clone(est).set_params(lam=lam) for lam in (1e-4, 1e-2) for _ in folds]
    rows = folds * 2
    with training as seen:
        fit_stacked(estimators, X, y, rows)
    assert seen.stacks == [6] and seen.loops == 0  # 5 batches in every fold: one stack
    assert max_weight_gap(estimators, _separate(estimators, X, y, rows)) <= 1e-4


def test_fit_stacked_copies_with_their_own_seeds_equal_separate_fits(
    data, skorch_fit, training, max_weight_gap
):
    # Same rows, different seeds: each copy draws its own batches (no shared input).
    X, y = data
    est = SparseNetClassifier(max_epochs=2, batch_size=16, lam=1e-3)
    estimators = [clone(est).set_params(random_state=seed) for seed in (0, 1, 2)]
    with training as seen:
        fit_stacked(estimators, X, y)
    assert seen.stacks == [3] and seen.loops == 0
    assert max_weight_gap(estimators, _separate(estimators, X, y)) <= 1e-4


def test_fit_stacked_separates_unequal_batch_counts(data, skorch_fit, training, max_weight_gap):
    X, y = data
    rows = [np.arange(100), np.arange(40)]
    est = SparseNetClassifier(max_epochs=2, batch_size=16, random_state=2)
    estimators = [clone(est), clone(est).set_params(lam=1e-2)]
    with training as seen:
        fit_stacked(estimators, X, y, rows)
    assert seen.stacks == [1, 1] and seen.loops == 0  # 7 and 3 batches: two stacks of one
    assert max_weight_gap(estimators, _separate(estimators, X, y, rows)) <= 1e-4


def test_lambda_path_lenet5_equals_separate_fits(skorch_fit, training, max_weight_gap):
    rng = np.random.RandomState(0)
    X = rng.rand(40, 1, 12, 12).astype(np.float32)
    y = rng.randint(0, 3, 40)
    est = SparseNetClassifier("lenet5", max_epochs=2, batch_size=16, random_state=0)
    with training as seen:
        path = lambda_path(est, X, y, [1e-4, 1e-3])
    assert seen.stacks == [2] and seen.loops == 0
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in (1e-4, 1e-3)]
    assert max_weight_gap(path, separate) <= 1e-4


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"optimizer": torch.optim.Adagrad}, "optimizer Adagrad is not SGD"),
        ({"regularizer": "lobster"}, "regularizer LOBSTER()"),
        ({"pruning": "global", "target_density": 0.5}, "pruning MagnitudePruning("),
        ({"callbacks": [Callback()]}, "callbacks=[<skorch.callbacks"),
    ],
)
def test_unstackable_reason_names_the_setting(params, reason):
    assert reason in unstackable_reason(SparseNetClassifier(**params))


def test_verbose_stack_prints_a_line_per_epoch_and_a_verbose_fit_prints_skorchs_table(data, capsys):
    X, y = data
    est = SparseNetClassifier(max_epochs=2, random_state=0, verbose=1)
    path = lambda_path(est, X, y, [1e-4, 1e-2])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch   2/2: 2 networks (λ 0.0001–0.01)")
    assert f"density {path[1].density_:.3f}–{path[0].density_:.3f}" in lines[1]
    clone(est).fit(X, y)
    assert "train_loss" in capsys.readouterr().out  # skorch's PrintLog header: its own loop


def test_unstackable_reason_none_for_defaults():
    assert unstackable_reason(SparseNetClassifier()) is None


def test_lambda_path_falls_back_to_separate_fits(data, max_weight_gap):
    X, y = data
    est = SparseNetClassifier(max_epochs=2, random_state=0, callbacks=[Callback()])
    path = lambda_path(est, X, y, [1e-4, 1e-3])
    assert [p.training_loop_ for p in path] == ["skorch", "skorch"]  # trained by fit
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in (1e-4, 1e-3)]
    assert max_weight_gap(path, separate) == 0


def test_module_with_dropout_stacks_and_equals_separate_fits(
    data, skorch_fit, training, max_weight_gap
):
    X, y = data
    module = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    assert unstackable(module) is None
    est = SparseNetClassifier(module, max_epochs=2, batch_size=32, random_state=0)
    with training as seen:
        path = lambda_path(est, X, y, [1e-4, 1e-3])
    assert seen.stacks == [2] and seen.loops == 0
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in (1e-4, 1e-3)]
    assert [s.training_loop_ for s in separate] == ["skorch", "skorch"]
    # Masks drawn otherwise than the separate fits draw them move the weights by ~1e-2.
    assert max_weight_gap(path, separate) <= 1e-5
    assert [p.density_ for p in path] == [s.density_ for s in separate]


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(7,), (5, 3, 4, 4)])
def test_dropout_mask_is_torchs_dropout_bit_for_bit(p, shape):
    x = torch.randn(shape)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    expected = [nn.functional.dropout(x, p), nn.functional.dropout(x, p)]
    g = torch.Generator().set_state(state)
    got = [x * dropout_mask(x, p, g), x * dropout_mask(x, p, g)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize(
    "layer, name",
    [
        (nn.AlphaDropout(), "an AlphaDropout"),
        (nn.Dropout2d(), "a Dropout2d"),
        (nn.RReLU(), "RReLU"),
    ],
)
def test_unstackable_names_random_layers_other_than_dropout(layer, name):
    assert name in unstackable(nn.Sequential(nn.Linear(4, 4), layer))


class _Normed(nn.Module):
    """A user MLP with one batch norm of the given options, and dropout.

    No bias before the batch norm: its gradient is 0 in exact arithmetic, and
    Adam turns the float noise around 0 into steps of size ``lr`` in any fit.
    """

    def __init__(self, **norm):
        super().__init__()
        self.dense = nn.Linear(8, 12, bias=False)
        self.norm = nn.BatchNorm1d(12, **norm)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(12, 3)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.norm(self.dense(x)))))


def _buffer_gap(fitted, separate):
    return max(
        float((a.double() - b.double()).abs().max())
        for f, s in zip(fitted, separate)
        for a, b in zip(f.net_.module_.buffers(), s.net_.module_.buffers())
    )


@pytest.mark.parametrize(
    "norm", [{}, {"momentum": None}, {"track_running_stats": False}, {"affine": False}]
)
def test_module_with_batch_norm_stacks_with_each_copys_running_statistics(
    data, skorch_fit, training, max_weight_gap, norm
):
    X, y = data
    est = SparseNetClassifier(
        _Normed(**norm),
        regularized_layers=["dense", "out"],
        max_epochs=2,
        batch_size=32,
        random_state=0,
    )
    with training as seen:
        path = lambda_path(est, X, y, [1e-4, 1e-2])
    assert seen.stacks == [2] and seen.loops == 0
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in (1e-4, 1e-2)]
    assert max_weight_gap(path, separate) <= 1e-5
    if norm.get("track_running_stats", True):
        # 8 batches each: the counts and the running statistics of each copy's own fit.
        assert [int(p.net_.module_.norm.num_batches_tracked) for p in path] == [8, 8]
        assert _buffer_gap(path, separate) <= 1e-5
    # Eval mode (predict) normalises with each copy's own running statistics.
    for p, s in zip(path, separate):
        np.testing.assert_allclose(p.predict_proba(X), s.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize(
    "params, tol",
    [
        # Adam turns the float noise in the near-0 gradients of the convolutions' biases
        # (each followed by ELU and a batch norm) into steps of up to lr: the single
        # fit through the engine (K = 1) differs from skorch's by as much.
        ({}, 1e-4),
        ({"optimizer": "sgd", "lr": 0.05, "optimizer__momentum": 0.9}, 1e-5),
    ],
)
def test_lambda_path_vgg_equals_separate_fits(skorch_fit, training, max_weight_gap, params, tol):
    rng = np.random.RandomState(0)
    X, y = rng.rand(48, 3, 8, 8).astype(np.float32), rng.randint(0, 3, 48)
    est = SparseNetClassifier("vgg", max_epochs=2, batch_size=16, random_state=0, **params)
    assert unstackable_reason(est) is None
    with training as seen:
        path = lambda_path(est, X, y, [1e-4, 1e-3])
    assert seen.stacks == [2] and seen.loops == 0
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in (1e-4, 1e-3)]
    assert max_weight_gap(path, separate) <= tol
    assert _buffer_gap(path, separate) <= 1e-5  # every batch norm's running statistics
    assert [p.density_ for p in path] == [s.density_ for s in separate]


def test_stack_with_dropout_equals_the_engines_single_fit_on_every_device(
    data, device, training, max_weight_gap
):
    # On CUDA, nn.Dropout's own fused kernel draws other masks than a stack (equal in
    # distribution), but a stack and the engine's single fit draw the same ones.
    X, y = data
    est = SparseNetClassifier(
        _Normed(), regularized_layers=["dense"], max_epochs=2, random_state=0, device=device
    )
    with training as seen:
        path = lambda_path(est, X, y, [1e-4, 1e-3])
    assert seen.stacks == [2] and seen.loops == 0
    single = [clone(est).set_params(lam=lam).fit(X, y) for lam in (1e-4, 1e-3)]
    assert [s.training_loop_ for s in single] == ["stacked", "stacked"]
    assert max_weight_gap(path, single) <= 1e-5
    assert _buffer_gap(path, single) <= 1e-5


def test_fit_of_vgg_and_of_a_module_with_dropout_trains_stacked(data):
    X, y = data
    images = np.random.RandomState(0).rand(len(y), 3, 8, 8).astype(np.float32)
    vgg = SparseNetClassifier("vgg", max_epochs=1, random_state=0).fit(images, y)
    assert vgg.training_loop_ == "stacked"
    dropout = nn.Sequential(nn.Linear(8, 6), nn.Dropout(0.5), nn.Linear(6, 3))
    est = SparseNetClassifier(dropout, max_epochs=1, random_state=0).fit(X, y)
    assert est.training_loop_ == "stacked"


def test_batch_norm_copies_of_unequal_folds_train_in_stacks_of_equal_rows(
    data, training, skorch_fit, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(
        _Normed(), regularized_layers=["dense"], max_epochs=1, batch_size=64, random_state=0
    )
    folds = list(KFold(3).split(X[:100]))  # 67, 67 and 66 training rows: one batch each
    with training as seen:
        fitted = fit_candidates(est, X[:100], y[:100], [{"lam": 1e-3}], folds)
    assert sorted(seen.stacks) == [1, 2] and seen.loops == 0  # padding would enter the batch norm
    separate = _separate(fitted, X[:100], y[:100], [train for train, _ in folds])
    assert max_weight_gap(fitted, separate) <= 1e-5


def test_cross_entropy_grad_matches_autograd():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, requires_grad=True)  # (K, C, B)
    y = torch.randint(0, 4, (3, 5))
    scale = torch.tensor([[0.5], [1.0], [0.2]])
    ce, grad = cross_entropy_grad(logits.detach(), y, scale)
    ref = nn.functional.cross_entropy(logits, y, reduction="none")
    (ref * scale).sum().backward()
    torch.testing.assert_close(ce, ref.detach())
    torch.testing.assert_close(grad, logits.grad)


@pytest.mark.parametrize("shape", [(1, 12, 12), (3, 14, 11)])
def test_stacked_lenet5_matches_each_module(shape):
    from skprune.models import LeNet5

    torch.manual_seed(0)
    modules = [LeNet5(4, shape) for _ in range(3)]
    stack = stack_modules(modules)
    assert type(stack) is StackedLeNet5
    x, grad = torch.randn(3, 5, *shape), torch.randn(3, 4, 5)  # grad: class-major
    logits = stack.forward(x.flatten(2))  # flat rows, as LeNet5 accepts them
    stack.backward(grad)
    for k, module in enumerate(modules):
        out = module(x[k])
        out.backward(grad[k].T)
        torch.testing.assert_close(logits[k], out.detach().T)
        for name, p in module.named_parameters():
            torch.testing.assert_close(stack.params[name].grad[k], p.grad, atol=1e-5, rtol=1e-4)


def test_fit_net_single_fit_equals_skorch_loop(data, skorch_fit, training, max_weight_gap):
    X, y = data  # labels are already 0, 1, 2: their own encoding
    est = SparseNetClassifier(max_epochs=2, batch_size=16, random_state=0, lam=1e-3, device="cpu")
    reference = clone(est).fit(X, y)
    twin = clone(est)
    _prepare(twin, X, y, None)  # validated, seeded and built as fit does
    with training as seen:
        assert fit_net(twin, twin.net_, torch.as_tensor(X), torch.as_tensor(y))
    assert seen.stacks == [1] and seen.loops == 0
    assert max_weight_gap([twin], [reference]) <= 1e-4
    assert len(twin.net_.history) == 2


def test_fit_net_refuses_unserved_settings(data):
    X, y = data
    est = SparseNetClassifier(max_epochs=1, callbacks=[Callback()]).fit(X, y)
    assert not fit_net(est, est.net_, torch.as_tensor(X), torch.as_tensor(y))


def test_lambda_path_diverging_copy_raises_as_its_fit_does(data):
    X, y = data
    est = SparseNetClassifier(optimizer="sgd", lr=1e30, max_epochs=1, random_state=0)
    with pytest.raises(FloatingPointError, match="Training diverged"):
        lambda_path(est, X * 1e10, y, [1e-4, 1e-3])


def test_fit_goes_through_the_engine_when_served(data, monkeypatch):
    X, y = data
    calls = []

    def spy(copies, X):
        calls.append(len(copies))
        return train_stack(copies, X)

    monkeypatch.setattr("skprune.engine.train_stack", spy)
    SparseNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert calls == [1]
    calls.clear()
    SparseNetClassifier(max_epochs=1, random_state=0, callbacks=[Callback()]).fit(X, y)
    assert not calls


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_lambda_path_and_folds_equal_separate_fits(
    data,
    n_outputs,
    device,
    skorch_fit,
    training,
    max_weight_gap,
):
    X, _ = data
    X = X[:101]  # folds of 67 and 68 rows: a shorter last batch, padded
    y = X[:, :n_outputs] * 3.0 + X[:, 3:4] - 1.0
    y = y.ravel() if n_outputs == 1 else y
    est = SparseNetRegressor(max_epochs=2, batch_size=16, random_state=0, device=device)
    with training as seen:
        path = lambda_path(est, X, y, LAMS)
    assert seen.stacks == [len(LAMS)] and seen.loops == 0
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in LAMS]
    assert max_weight_gap(path, separate) <= 1e-4
    for p, s in zip(path, separate):
        for key in ("train_loss", "mse", "penalty", "density"):
            np.testing.assert_allclose(p.history_[:, key], s.history_[:, key], rtol=1e-4)
        np.testing.assert_allclose(p.predict(X), s.predict(X), atol=1e-4)
    folds = [train for train, _ in KFold(3).split(X)]
    estimators = [clone(est) for _ in folds]
    with training as seen:
        fit_stacked(estimators, X, y, folds)
    assert seen.stacks == [3] and seen.loops == 0
    assert max_weight_gap(estimators, _separate(estimators, X, y, folds)) <= 1e-4


def test_squared_error_grad_matches_autograd():
    torch.manual_seed(0)
    outputs = torch.randn(3, 2, 5, requires_grad=True)  # (K, C, B)
    y = torch.randn(3, 5, 2)
    scale = torch.tensor([[0.5], [1.0], [0.2]])
    error, grad = squared_error_grad(outputs.detach(), y, scale)
    ref = nn.functional.mse_loss(outputs.transpose(1, 2), y, reduction="none").mean(2)
    (ref * scale).sum().backward()
    torch.testing.assert_close(error, ref.detach())
    torch.testing.assert_close(grad, outputs.grad)


def test_lambda_path_names_what_it_needs():
    with pytest.raises(TypeError, match="got LogisticRegression, which has no parameter lam"):
        lambda_path(make_pipeline(LogisticRegression()), np.ones((4, 2)), [0, 1, 0, 1], [1e-3])


def test_lambda_path_of_a_pipeline_equals_its_separate_fits(
    data, skorch_fit, training, max_weight_gap
):
    X, y = data
    X = X * 10 + 5  # the scaler changes what the networks see
    pipe = make_pipeline(StandardScaler(), SparseNetClassifier(max_epochs=2, random_state=0))
    with training as seen:
        path = lambda_path(pipe, X, y, [1e-4, 1e-2])
    assert seen.stacks == [2] and seen.loops == 0
    separate = [clone(pipe).set_params(sparsenetclassifier__lam=lam) for lam in (1e-4, 1e-2)]
    separate = [s.fit(X, y) for s in separate]
    assert [p[-1].lam for p in path] == [1e-4, 1e-2] and pipe[-1].lam != 1e-2
    assert max_weight_gap([p[-1] for p in path], [s[-1] for s in separate]) <= 1e-4
    assert path[0][0] is not path[1][0] and np.allclose(path[0][0].mean_, separate[0][0].mean_)


def test_fit_candidates_orders_pairs_as_base_search_cv(data, training, max_weight_gap):
    X, y = data
    folds = list(KFold(2).split(X))
    est = SparseNetClassifier(max_epochs=1, random_state=0, threshold=0.02)
    with training as seen:
        fitted = fit_candidates(est, X, y, [{"lam": 1e-4}, {"lam": 5e-2}], folds)
    assert seen.stacks == [4] and seen.loops == 0  # 2 λ × 2 folds
    assert [e.lam for e in fitted] == [1e-4, 1e-4, 5e-2, 5e-2]
    reference = clone(est).set_params(lam=5e-2).fit(X[folds[1][0]], y[folds[1][0]])
    assert max_weight_gap([fitted[3]], [reference]) <= 1e-4


def test_single_lenet5_fit_through_engine_equals_skorch_loop(monkeypatch, training, max_weight_gap):
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 1, 12, 12).astype(np.float32), rng.randint(0, 3, 40)
    est = SparseNetClassifier("lenet5", max_epochs=2, batch_size=16, random_state=0, lam=1e-3)
    with training as seen:
        engine = clone(est).fit(X, y)
    assert seen.stacks == [1] and seen.loops == 0  # the engine, K = 1
    monkeypatch.setattr("skprune.engine.fit_net", lambda *args: False)
    with training as seen:
        reference = clone(est).fit(X, y)
    assert seen.stacks == [] and seen.loops == 1  # skorch's loop
    assert max_weight_gap([engine], [reference]) <= 1e-4


def test_pipeline_fold_whose_steps_fail_is_left_to_its_own_fit(data):
    def refuse_large(X):
        if np.abs(X).max() > 100:
            raise ValueError("too large")
        return X

    X, y = data
    X = X.copy()
    X[0, 0] = 1000.0  # in the first 60 rows only
    pipe = make_pipeline(FunctionTransformer(refuse_large), SparseNetClassifier(max_epochs=1))
    rows = [np.arange(60), np.arange(60, 120)]
    assert train_stackable([clone(pipe), clone(pipe)], X, y, rows) == [False, True]
    with pytest.raises(ValueError, match="too large"):
        fit_stacked([clone(pipe)], X, y, rows[:1])
