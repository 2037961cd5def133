"""One definition of training (issue 21): the engine and skorch's loop do not drift.

The parameter checks, divergence, the verbose table and which settings stack
are each defined once; these tests fail where the stacked engine
(``lambda_path``, ``fit`` with K = 1) and skorch's loop would disagree.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from skprune import SparseNetClassifier, engine, lambda_path
from skprune.constrained import HardConcrete
from skprune.engine import _prepare, fit_stacked, train_stackable, unstackable_reason
from skprune.pruning import ThresholdPruning
from skprune.regularizers import ElementwiseRegularizer, Regularizer


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 8).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.7)
    return X, y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


@pytest.fixture
def stacks(monkeypatch):
    """The size of every stack the engine trains (a fit through skorch's loop adds none)."""
    sizes, real = [], engine.train_stack

    def spy(copies, X):
        sizes.append(len(copies))
        return real(copies, X)

    monkeypatch.setattr(engine, "train_stack", spy)
    return sizes


# -- the checks before training -------------------------------------------------


def test_lambda_path_bool_batch_size_raises_as_fit(data):
    X, y = data
    est = SparseNetClassifier(batch_size=True, max_epochs=1, random_state=0)
    match = "'batch_size' parameter of SparseNetClassifier must be an int, not a bool"
    with pytest.raises(TypeError, match=match):
        clone(est).fit(X, y)
    with pytest.raises(TypeError, match=match):
        lambda_path(est, X, y, [1e-4, 1e-3])


# -- divergence ------------------------------------------------------------------


def _random_data():
    rng = np.random.RandomState(0)
    return rng.rand(200, 20).astype(np.float32), rng.randint(0, 3, 200)


def test_lambda_path_diverging_copy_raises_naming_lambda():
    X, y = _random_data()  # lr=100: every number stays finite, the cross-entropy explodes
    est = SparseNetClassifier(optimizer="sgd", lr=100, max_epochs=2, random_state=0)
    match = r"diverged at epoch 1: the training cross-entropy .*lam=0\.0001\)"
    with pytest.raises(FloatingPointError, match=match):
        clone(est).fit(X, y)
    with pytest.raises(FloatingPointError, match=match):
        lambda_path(est, X, y, [1e-4, 1e-3])
    # The stack itself finds it (not only the copy's refit): neither copy is fitted.
    estimators = [clone(est).set_params(lam=lam) for lam in (1e-4, 1e-3)]
    assert train_stackable(estimators, X, y, [None, None]) == [False, False]


def test_stack_checks_every_copy_every_epoch_and_stops_when_all_diverged(digits):
    X, y = digits
    ests = [SparseNetClassifier(lr=1e6, max_epochs=5, random_state=0, device="cpu") for _ in "ab"]
    copies = [_prepare(est, X, y, None) for est in ests]
    X_all = torch.as_tensor(X)
    assert engine.train_stack(copies, X_all) == [0, 1]
    for c in copies:
        assert len(c.net.history) == 1  # stopped at the end of epoch 1, not after 5
        assert "diverged at epoch 1" in str(c.error) and "lam=0.0001" in str(c.error)


@pytest.mark.parametrize("path", ["engine", "skorch", "lambda_path"])
def test_fit_lr_1e6_on_digits_raises_at_epoch_1_on_every_path(digits, path):
    X, y = digits
    callbacks = [Callback()] if path == "skorch" else None  # a callback: skorch's loop
    est = SparseNetClassifier(lr=1e6, max_epochs=5, random_state=0, callbacks=callbacks)
    match = r"diverged at epoch 1: the training cross-entropy .* over 100·ln K"
    with pytest.raises(FloatingPointError, match=match):
        if path == "lambda_path":
            lambda_path(est, X, y, [1e-4, 1e-3])
        else:
            est.fit(X, y)


def test_stack_copy_that_diverges_leaves_the_others_training(digits):
    X, y = digits
    ests = [SparseNetClassifier(lr=lr, max_epochs=2, random_state=0) for lr in (1e-3, 1e6)]
    assert train_stackable(ests, X, y, [None, None]) == [True, False]
    assert ests[0].training_loop_ == "stacked" and len(ests[0].history_) == 2
    assert not hasattr(ests[1], "net_")  # left as it was, for its own fit to raise


# -- verbose ---------------------------------------------------------------------


def test_fit_verbose_trains_the_same_weights_and_prints_the_table(digits, capsys, max_weight_gap):
    X, y = digits
    quiet = SparseNetClassifier(max_epochs=3, random_state=0).fit(X, y)
    capsys.readouterr()
    loud = SparseNetClassifier(max_epochs=3, random_state=0, verbose=1).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert quiet.training_loop_ == loud.training_loop_ == "stacked"
    assert max_weight_gap([quiet], [loud]) == 0
    assert out[0].split() == ["epoch", "ce", "density", "penalty", "train_loss", "dur"]
    assert [line.split()[0] for line in out[2:]] == ["1", "2", "3"]
    assert f"{loud.history_[-1, 'train_loss']:.4f}" in out[-1]


# -- which loop ran, and why -----------------------------------------------------


def test_training_loop_stacked_for_served_settings(data):
    X, y = data
    est = SparseNetClassifier(max_epochs=1, random_state=0)
    assert unstackable_reason(est) is None
    assert est.fit(X, y).training_loop_ == "stacked"
    assert est.partial_fit(X, y).training_loop_ == "skorch"  # a continuation


class _GatesWithEpochHook(HardConcrete):
    """The gates with one more skorch hook and no stack hook standing in for it."""

    def on_epoch_begin(self, net, **kwargs):
        pass


@pytest.mark.parametrize(
    "params, shape, reason",
    [
        (
            {"module": torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.AlphaDropout(0.1))},
            None,
            "module=Sequential: it has an AlphaDropout layer",
        ),
        ({"callbacks": [Callback()]}, None, "callbacks=[<skorch.callbacks"),
        ({"optimizer": torch.optim.Adagrad}, None, "optimizer Adagrad is not SGD, Adam"),
        ({"regularizer": "lobster"}, None, "regularizer LOBSTER() is not stackable: it overrides"),
        ({"regularizer": _GatesWithEpochHook()}, None, "_GatesWithEpochHook() is not stackable"),
        (
            {"pruning": "global", "target_density": 0.5},
            None,
            "pruning MagnitudePruning(target_density=0.5) is not stackable",
        ),
    ],
)
def test_training_loop_skorch_for_every_fallback_reason(data, params, shape, reason):
    X, y = data
    X = np.random.RandomState(0).rand(len(y), *shape).astype(np.float32) if shape else X
    est = SparseNetClassifier(max_epochs=1, random_state=0, **params)
    assert reason in unstackable_reason(est)
    est.fit(X, y)
    assert est.training_loop_ == "skorch"
    assert reason in unstackable_reason(est)  # the same answer once fitted
    path = lambda_path(est, X, y, [1e-4, 1e-3])
    assert [p.training_loop_ for p in path] == ["skorch", "skorch"]


def test_training_loop_stacked_for_unequal_sample_weights(data, stacks):
    X, y = data
    est = SparseNetClassifier(max_epochs=1, random_state=0)
    assert est.fit(X, y, sample_weight=np.ones(len(y))).training_loop_ == "stacked"
    assert est.fit(X, y, sample_weight=np.arange(len(y)) + 1.0).training_loop_ == "stacked"
    assert stacks == [1, 1]


# -- custom parts ----------------------------------------------------------------


class ScaledL1(ElementwiseRegularizer):
    """2·Σ|w|: an elementwise Ω with its terms and analytic gradient."""

    def terms(self, w):
        return 2.0 * w.detach().abs()

    def grad(self, w):
        return 2.0 * torch.sign(w.detach())


class RowGroupLasso(Regularizer):
    """Σ over rows of ‖row‖₂: not elementwise; analytic gradient, no terms (vmap)."""

    def penalty(self, weights):
        return sum(w.norm(dim=1).sum() for w in weights)

    def grad(self, w):
        w = w.detach()
        norm = w.norm(dim=1, keepdim=True)
        return torch.where(norm > 0, w / norm.clamp_min(1e-12), torch.zeros_like(w))


class RowGroupLassoAutograd(Regularizer):
    """The same Ω, without ``grad``: autograd differentiates it, so it cannot stack."""

    def penalty(self, weights):
        return sum(w.norm(dim=1).sum() for w in weights)


@pytest.mark.parametrize("regularizer", [ScaledL1(), RowGroupLasso()])
def test_custom_regularizer_with_analytic_grad_trains_stacked(
    data, regularizer, stacks, max_weight_gap
):
    X, y = data
    est = SparseNetClassifier(regularizer=regularizer, max_epochs=2, batch_size=16, random_state=0)
    assert unstackable_reason(est) is None
    lams = [1e-4, 1e-3, 1e-2]
    path = lambda_path(est, X, y, lams)
    assert stacks == [len(lams)]  # one stack, not a fallback to separate fits
    separate = [clone(est).set_params(lam=lam) for lam in lams]
    with pytest.MonkeyPatch.context() as patch:  # the reference: skorch's own loop
        patch.setattr("skprune.engine.fit_net", lambda *args: False)
        separate = [s.fit(X, y) for s in separate]
    assert max_weight_gap(path, separate) <= 1e-4
    assert [p.density_ for p in path] == [s.density_ for s in separate]
    for p, s in zip(path, separate):
        np.testing.assert_allclose(p.history_[:, "penalty"], s.history_[:, "penalty"], rtol=1e-4)


def test_custom_regularizer_without_grad_falls_back_with_a_readable_reason(data, stacks):
    X, y = data
    est = SparseNetClassifier(regularizer=RowGroupLassoAutograd(), max_epochs=1, random_state=0)
    reason = unstackable_reason(est)
    assert reason.startswith("regularizer RowGroupLassoAutograd() is not stackable: it has no")
    assert "grad(w)" in reason and "object at 0x" not in reason
    assert est.fit(X, y).training_loop_ == "skorch" and not stacks


class EpochPrinter(ThresholdPruning):
    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)


def test_custom_pruner_with_its_own_hooks_names_them(data):
    est = SparseNetClassifier(pruning=EpochPrinter(), max_epochs=1)
    reason = unstackable_reason(est)
    assert reason == (
        "pruning EpochPrinter() is not stackable: it overrides on_epoch_end but does "
        "not define stack_epoch_end (see skprune.training._stack_hooks)"
    )
    assert est.fit(*data).training_loop_ == "skorch"


class StackedEpochPrinter(EpochPrinter):
    def stack_epoch_end(self, stack):
        super().stack_epoch_end(stack)


def test_custom_pruner_with_matching_stack_hooks_trains_stacked(data):
    est = SparseNetClassifier(pruning=StackedEpochPrinter(when="epoch"), max_epochs=1)
    assert unstackable_reason(est) is None
    assert est.fit(*data).training_loop_ == "stacked"


def test_fit_stacked_custom_part_instances_share_one_stack(data, stacks):
    # Each clone holds its own regularizer object: grouped by settings, not by address.
    X, y = data
    est = SparseNetClassifier(regularizer=ScaledL1(), max_epochs=1, random_state=0)
    fit_stacked([clone(est).set_params(lam=lam) for lam in (1e-4, 1e-3)], X, y)
    assert stacks == [2]


class RowGroupLassoItem(RowGroupLasso):
    """The same Ω, with a ``grad`` that ``vmap`` cannot run (``.item()``)."""

    def grad(self, w):
        return super().grad(w) * float(w.abs().max().item() >= 0)


def test_custom_regularizer_single_fit_needs_no_vmap(data, stacks):
    X, y = data
    est = SparseNetClassifier(regularizer=RowGroupLassoItem(), max_epochs=1, random_state=0)
    assert est.fit(X, y).training_loop_ == "stacked" and stacks == [1]
