import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch.nn.utils import parametrize

from skprune import SparseNetClassifier, lambda_path
from skprune.constrained import HardConcrete, dual_step
from skprune.datasets import find_mnist_10k
from skprune.engine import fit_stacked

# 1,347 digits make 43 batches an epoch, a tenth of MNIST-10k's: the gates and
# multipliers move faster than by default so that 10 epochs are enough.
FAST = dict(
    regularizer="hard_concrete",
    pruning=None,
    max_epochs=10,
    random_state=0,
    regularizer__gate_lr=0.05,
    regularizer__dual_lr=0.07,
)


def _fit(digits, device="cpu", **params):
    X_train, _, y_train, _ = digits
    return SparseNetClassifier(**{**FAST, "device": device, **params}).fit(X_train, y_train)


def test_dual_step_projects_and_restarts():
    mu = torch.tensor([0.0, 2.0, 2.0])
    violation = torch.tensor([-1.0, -0.5, 0.25])
    assert dual_step(mu, violation, lr=2.0, restart=False).tolist() == [0.0, 1.0, 2.5]
    assert dual_step(mu, violation, lr=2.0, restart=True).tolist() == [0.0, 0.0, 2.5]


def test_hard_concrete_model_wise_target_reached_on_folded_module(digits, device):
    clf = _fit(digits, device=device, target_density=0.3)
    module = clf.net_.module_
    assert not any(parametrize.is_parametrized(m) for m in module.modules())
    weights = [module.layer1.weight, module.layer2.weight]
    nonzero = sum(int((w != 0).sum()) for w in weights)
    assert clf.density_ == nonzero / sum(w.numel() for w in weights)
    assert abs(clf.density_ - 0.3) < 0.05
    assert clf.score(digits[1], digits[3]) > 0.85
    assert clf.objectives_[1] == nonzero


def test_hard_concrete_history_records_groups_and_multipliers(digits):
    clf = _fit(digits, target_density=0.3, max_epochs=4)
    expected = clf.history_[:, "expected_density"]
    assert [list(d) for d in expected] == [["model"]] * 4
    assert expected[0]["model"] > expected[-1]["model"]
    assert all(mu["model"] >= 0 for mu in clf.history_[:, "multiplier"])
    assert all(0 <= d <= 1 for d in clf.history_[:, "density"])


def test_hard_concrete_layer_wise_gates_only_named_layers(digits):
    clf = _fit(digits, target_density={"layer1": 0.25})
    assert abs(clf.layer_density_["layer1"] - 0.25) < 0.05
    assert clf.layer_density_["layer2"] == 1.0
    assert list(clf.history_[-1, "multiplier"]) == ["layer1"]


def test_hard_concrete_penalised_form_sparsifies_with_lam(digits):
    options = dict(max_epochs=5, regularizer__gate_lr=0.1)
    dense = _fit(digits, lam=0.0, **options)
    sparse = _fit(digits, lam=1e-3, **options)
    assert sparse.density_ < dense.density_
    assert sparse.history_[-1, "multiplier"] == {}


def test_hard_concrete_neuron_structure_closes_whole_columns(digits):
    clf = _fit(digits, target_density=0.4, regularizer__structure="neuron")
    weight = clf.net_.module_.layer1.weight.detach()
    column_zero = (weight == 0).all(dim=0)
    assert column_zero.any()
    assert torch.equal((weight == 0).any(dim=0), column_zero)


def test_hard_concrete_fitted_estimator_pickles_and_clones(digits):
    clf = _fit(digits, target_density=0.5, max_epochs=2, regularizer__dual_restarts=False)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(digits[1]), clf.predict(digits[1]))
    assert clone(clf).get_params()["regularizer__dual_restarts"] is False


@pytest.mark.parametrize("target", [0.0, 1.5, -0.1])
def test_hard_concrete_rejects_target_outside_unit_interval(digits, target):
    with pytest.raises(ValueError, match="'target_density' parameter"):
        _fit(digits, target_density=target, max_epochs=1)


def test_hard_concrete_rejects_unknown_layer_and_lists_layers(digits):
    with pytest.raises(ValueError, match=r"\['conv9'\].*\['layer1', 'layer2'\]"):
        _fit(digits, target_density={"conv9": 0.3}, max_epochs=1)


def test_hard_concrete_rejects_layer_density_outside_unit_interval(digits):
    with pytest.raises(ValueError, match="floats in \\(0, 1\\]"):
        _fit(digits, target_density={"layer1": 2.0}, max_epochs=1)


@pytest.mark.parametrize("pruning", ["batch", "epoch", "after"])
def test_hard_concrete_rejects_other_pruning(digits, pruning):
    with pytest.raises(
        ValueError, match=f"needs pruning=None \\(or 'auto'\\); got pruning='{pruning}'"
    ):
        _fit(digits, target_density=0.3, pruning=pruning, max_epochs=1)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("structure", "channel", "'structure' parameter of HardConcrete"),
        ("dual_lr", 0.0, "'dual_lr' parameter of HardConcrete"),
        ("temperature", 2.0, "'temperature' parameter of HardConcrete"),
        ("init_density", 1.0, "'init_density' parameter of HardConcrete"),
        ("gate_lr", -1.0, "'gate_lr' parameter of HardConcrete"),
        ("dual_restarts", "yes", "'dual_restarts' parameter of HardConcrete"),
        ("droprate", 0.5, r"unknown parameters \['regularizer__droprate'\].*regularizer__dual_lr"),
    ],
)
def test_hard_concrete_rejects_bad_options(digits, option, value, match):
    with pytest.raises(ValueError, match=match):
        _fit(digits, target_density=0.3, max_epochs=1, **{f"regularizer__{option}": value})


def test_hard_concrete_neuron_structure_rejects_layers_without_neurons(blobs):
    X, y = blobs
    module = torch.nn.Sequential(
        torch.nn.Linear(8, 6), torch.nn.BatchNorm1d(6), torch.nn.Linear(6, 3)
    )
    clf = SparseNetClassifier(
        module,
        **{**FAST, "max_epochs": 1},
        regularized_layers=["0", "1"],
        target_density=0.5,
        regularizer__structure="neuron",
    )
    with pytest.raises(ValueError, match="structure='neuron'.*BatchNorm1d"):
        clf.fit(X, y)


def test_hard_concrete_object_follows_regularizer_protocol():
    reg = HardConcrete(target_density=0.2).initialize()
    assert not reg.in_loss and HardConcrete().in_loss
    weights = [torch.tensor([0.0, 1.0, 0.0]), torch.tensor([2.0])]
    assert float(reg.penalty(weights)) == 2.0


# -- trained stacked: each copy equals its separate fit through skorch's loop

# Gates and multipliers that move within 3 short epochs: densities fall below the
# start, multipliers rise and restart. (A larger gate_lr lets Adam blow float-level
# differences of near-zero gate gradients up past 1e-4 in log α.)
QUICK = dict(
    regularizer="hard_concrete",
    max_epochs=3,
    batch_size=16,
    regularizer__gate_lr=0.1,
    regularizer__dual_lr=0.5,
    regularizer__init_density=0.6,
)


LAMS = [0.0, 1e-4, 1e-3]


def _digits(digits, n=96, image=False):
    X, y = digits[0][:n], digits[2][:n]
    if image:  # LeNet-5 needs 10x10 at least: the 8x8 digits, padded
        X = np.pad(X.reshape(-1, 1, 8, 8), ((0, 0), (0, 0), (1, 1), (1, 1)))
    return X, y


def _assert_equal_fits(fitted, separate, max_weight_gap):
    assert max_weight_gap(fitted, separate) <= 1e-4
    for f, s in zip(fitted, separate):
        reg, twin = f.net_.regularizer, s.net_.regularizer
        assert reg is not twin and list(reg.log_alpha_) == list(twin.log_alpha_)
        for name, log_alpha in reg.log_alpha_.items():
            assert float((log_alpha - twin.log_alpha_[name]).abs().max()) <= 1e-4
        assert f.density_ == s.density_ and f.layer_density_ == s.layer_density_
        assert reg.multipliers_ == pytest.approx(twin.multipliers_, abs=1e-5)
        for key in ("multiplier", "expected_density"):
            for a, b in zip(f.history_[:, key], s.history_[:, key]):
                assert list(a) == list(b) and list(a.values()) == pytest.approx(
                    list(b.values()), abs=1e-5
                )
        for key in ("train_loss", "penalty", "density"):
            np.testing.assert_allclose(f.history_[:, key], s.history_[:, key], rtol=1e-4)


@pytest.mark.parametrize(
    "params",
    [
        {"target_density": 0.3},
        {"target_density": {"layer1": 0.2}, "regularizer__structure": "neuron"},
        {
            "target_density": 0.3,
            "regularizer__proxy_constraint": False,
            "regularizer__dual_restarts": False,
            "optimizer": "sgd",
            "lr": 0.1,
        },
        {"target_density": None},  # the penalised form: λ·E‖θ‖₀ in the loss
        {
            "module": "lenet5",
            "regularized_layers": "all",
            "target_density": {"conv1": 0.5, "conv2": 0.4, "layer1": 0.3},
        },
    ],
    ids=["model-wise", "layer-wise-neurons", "expected-sgd", "penalised", "lenet5-all-layers"],
)
def test_hard_concrete_copies_trained_stacked_equal_separate_fits(
    digits, params, skorch_fit, training, max_weight_gap
):
    # Each copy its own seed: its own initial weights, batches and gate noise.
    X, y = _digits(digits, image=params.get("module") == "lenet5")
    est = SparseNetClassifier(**QUICK, **params)
    estimators = [clone(est).set_params(lam=lam, random_state=s) for s, lam in enumerate(LAMS[1:])]
    with training as seen:
        fit_stacked(estimators, X, y)
    assert seen.stacks == [2] and seen.loops == 0
    separate = [clone(e).fit(X, y) for e in estimators]
    assert {s.training_loop_ for s in separate} == {"skorch"}
    _assert_equal_fits(estimators, separate, max_weight_gap)
    if params["target_density"] is not None:  # the multipliers did ascend (and restart)
        assert any(
            mu for e in estimators for row in e.history_[:, "multiplier"] for mu in row.values()
        )
    assert all(e.density_ < 1 for e in estimators)


def test_hard_concrete_lambda_path_equals_separate_fits(
    digits, device, skorch_fit, training, max_weight_gap
):
    X, y = _digits(digits)
    est = SparseNetClassifier(**QUICK, target_density=0.3, random_state=0, device=device)
    with training as seen:
        path = lambda_path(est, X, y, LAMS)
    assert seen.stacks == [len(LAMS)] and seen.loops == 0
    separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in LAMS]
    _assert_equal_fits(path, separate, max_weight_gap)


def test_hard_concrete_fit_trains_stacked_as_skorch_loop(
    digits, monkeypatch, training, max_weight_gap
):
    X, y = _digits(digits)
    est = SparseNetClassifier(**QUICK, target_density=0.3, random_state=0)
    with training as seen:
        fitted = clone(est).fit(X, y)
    assert fitted.training_loop_ == "stacked" and seen.stacks == [1] and seen.loops == 0
    monkeypatch.setattr("skprune.engine.fit_net", lambda *args: False)
    separate = clone(est).fit(X, y)
    assert separate.training_loop_ == "skorch"
    _assert_equal_fits([fitted], [separate], max_weight_gap)


# -- MNIST-10k, LeNet-300-100, 20 epochs: the figures of docs/user_guide/controlled_sparsity.rst


MNIST = dict(module="lenet300", max_epochs=20, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def mnist():
    if find_mnist_10k() is None:
        pytest.skip("MNIST-10k not found")
    from skprune.datasets import mnist_10k_split

    torch.set_num_threads(1)
    return mnist_10k_split(flat=True)


def _mnist_fit(mnist, **params):
    X_train, _, y_train, _ = mnist
    params = {**MNIST, "regularizer": "hard_concrete", "pruning": None, **params}
    return SparseNetClassifier(**params).fit(X_train, y_train)


@pytest.mark.slow
@pytest.mark.parametrize("target", [0.5, 0.2, 0.05])
def test_mnist_model_wise_targets_met(mnist, target):
    clf = _mnist_fit(mnist, target_density=target)
    assert abs(clf.density_ - target) <= 0.02
    if target == 0.2:
        dense = SparseNetClassifier(**MNIST, regularizer=None, pruning=None)
        dense.fit(mnist[0], mnist[2])
        assert clf.score(mnist[1], mnist[3]) >= dense.score(mnist[1], mnist[3]) - 0.02


@pytest.mark.slow
def test_mnist_layer_wise_targets_met(mnist):
    target = {"layer1": 0.3, "layer2": 0.3, "layer3": 0.3}
    clf = _mnist_fit(mnist, target_density=target)
    assert all(abs(d - 0.3) <= 0.03 for d in clf.layer_density_.values())


@pytest.mark.slow
def test_mnist_dual_restarts_oversparsify_less(mnist):
    gap = {}
    for restarts in (True, False):
        clf = _mnist_fit(mnist, target_density=0.3, regularizer__dual_restarts=restarts)
        gap[restarts] = abs(clf.density_ - 0.3)
    assert gap[True] < gap[False]


def test_hard_concrete_one_liner_needs_no_pruning_argument(digits):
    params = {k: v for k, v in FAST.items() if k != "pruning"}
    X_train, _, y_train, _ = digits
    clf = SparseNetClassifier(**{**params, "target_density": 0.3}).fit(X_train, y_train)
    assert clf.pruning == "auto"
    assert not any(name.startswith("pruning_") for name, _ in clf.net_.callbacks_)
    assert clf.density_ == pytest.approx(0.3, abs=0.05)
