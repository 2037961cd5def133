"""The version floors and the private APIs they cover (``make test-oldest``).

``requirements-oldest.txt`` pins each dependency at its floor in
``pyproject.toml``; ``make test-oldest`` runs the suite there. Each private API
of torch or scikit-learn that skprune calls either has a public fallback,
tested here against the fast path, or is checked to exist with the signature
skprune relies on.
"""

import inspect
import os
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version
from sklearn.model_selection import StratifiedKFold
from sklearn.model_selection._search import BaseSearchCV

from skprune.model_selection._vectorize import RoundTrainer
from skprune.training import _stack_loop, _stacked

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _floors():
    """``{name: floor}`` of the runtime dependencies in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        (spec,) = req.specifier  # one ">=" each: a floor and nothing else
        assert spec.operator == ">=", f"{line!r}: a dependency has a floor only"
        floors[req.name.lower()] = Version(spec.version)
    return floors


def _pins():
    """``{name: version}`` of the ``==`` pins in requirements-oldest.txt."""
    pins = {}
    for line in (ROOT / "requirements-oldest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line!r}: requirements-oldest.txt pins with =="
            pins[req.name.lower()] = Version(spec.version)
    return pins


def test_oldest_pins_are_the_floors_of_pyproject():
    assert _pins() == _floors()


@pytest.mark.skipif(not os.environ.get("SKPRUNE_AT_FLOORS"), reason="set by make test-oldest")
def test_make_test_oldest_runs_at_the_floors():
    # The public version alone: torch 2.5.0+cpu is 2.5.0.
    installed = {name: Version(Version(metadata.version(name)).public) for name in _pins()}
    assert installed == _pins()


# -- torch._fused_adam_ (_stack_loop._fast_step) -------------------------------


def _adam_steps(n_steps):
    """Weights of a small net after ``n_steps`` of fused Adam through ``_fast_step``."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05, weight_decay=1e-3, fused=True)
    step = _stack_loop._fast_step(opt)
    X, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for _ in range(n_steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        step()
    return step, opt, [p.detach().clone() for p in net.parameters()]


def test_fused_adam_fallback_takes_the_same_steps(monkeypatch):
    assert _stack_loop._FUSED_ADAM is not None  # the kernel exists at every floor
    fast_step, opt, fast = _adam_steps(6)
    assert fast_step != opt.step  # the kernel called directly
    monkeypatch.setattr(_stack_loop, "_FUSED_ADAM", None)
    plain_step, opt, plain = _adam_steps(6)
    assert plain_step == opt.step  # without it: torch's public Adam.step
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# -- torch.ops.aten.threshold_backward.grad_input (_stacked, ReLU's backward) --


def test_relu_backward_fallback_gives_the_same_gradient(monkeypatch):
    assert _stacked._THRESHOLD_BACKWARD is not None
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(4, 7, 9, generator=gen).relu_()  # a ReLU's output: zeros included
    grad = torch.randn(4, 7, 9, generator=gen)
    fast, plain = grad.clone(), grad.clone()
    _stacked._relu_backward_(fast, h)
    monkeypatch.setattr(_stacked, "_THRESHOLD_BACKWARD", None)
    _stacked._relu_backward_(plain, h)
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)
    torch.testing.assert_close(plain, torch.where(h > 0, grad, 0.0), rtol=0, atol=0)


def test_stacked_backward_without_the_kernel_gives_the_same_weights(monkeypatch):
    from skprune.models import MLP

    def grads():
        torch.manual_seed(0)
        modules = [MLP(5, 3, hidden_layer_sizes=(8, 6)) for _ in range(3)]
        stack = _stacked.stack_modules(modules)
        x = torch.randn(3, 10, 5)
        logits = stack.forward(x)
        stack.backward(torch.randn_like(logits))
        return [p.grad.clone() for p in stack.params.values()]

    fast = grads()
    monkeypatch.setattr(_stacked, "_THRESHOLD_BACKWARD", None)
    for a, b in zip(fast, grads()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# -- BaseSearchCV._checked_cv_orig (_vectorize.RoundTrainer, scikit-learn >= 1.7) --


def test_round_trainer_folds_without_checked_cv_orig():
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.repeat([0, 1], 20)
    routed = SimpleNamespace(splitter=SimpleNamespace(split={}))

    def folds(**attrs):
        from sklearn.linear_model import LogisticRegression

        search = SimpleNamespace(
            cv=3,
            estimator=LogisticRegression(),
            n_jobs=None,
            pre_dispatch="2*n_jobs",
            _get_routed_params_for_fit=lambda params: routed,
            **attrs,
        )
        trainer = RoundTrainer(None, search, search.estimator, X, y, {})
        trainer([])
        return trainer.splits

    kept = folds(_checked_cv_orig=StratifiedKFold(3))  # what fit leaves from sklearn 1.7
    rebuilt = folds()  # before: check_cv(cv=3, classifier) is the same StratifiedKFold(3)
    assert len(kept) == len(rebuilt) == 3
    for a, b in zip(kept, rebuilt):
        np.testing.assert_array_equal(a, b)


# -- the BaseSearchCV hooks ParetoSearchCV overrides (no public fallback) ----------


@pytest.mark.parametrize(
    "name, params",
    [
        ("_run_search", ["self", "evaluate_candidates"]),
        ("_format_results", ["self", "candidate_params", "n_splits", "out", "more_results"]),
        ("_get_scorers", ["self"]),
        ("_select_best_index", ["refit", "refit_metric", "results"]),
        ("_get_routed_params_for_fit", ["self", "params"]),
    ],
)
def test_base_search_cv_has_the_hooks_paretosearchcv_overrides(name, params):
    """scikit-learn renaming one of these would silently skip skprune's override."""
    found = list(inspect.signature(getattr(BaseSearchCV, name)).parameters.values())
    assert [p.name for p in found[: len(params)]] == params
    assert all(p.default is not p.empty for p in found[len(params) :])  # new ones optional
