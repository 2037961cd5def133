"""The extension points: base classes, the registry, one checking place, module structure."""

import ast
import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

from skprune import SparseNetClassifier
from skprune.constrained import HardConcrete
from skprune.estimators._checks import DivergenceCheck
from skprune.lobster import LOBSTER, LobsterPruning
from skprune.magnitude import MagnitudePruning
from skprune.model_selection._warm_start import WarmStart
from skprune.optim import LambdaHistory
from skprune.pruning import Pruner, ThresholdPruning
from skprune.registry import PRUNERS, REGULARIZERS
from skprune.regularizers import L0, L1, L2, L2L0, Regularizer
from skprune.schedules import SigmoidLR
from skprune.training._net import SparsityHistory

PACKAGE = Path(__file__).resolve().parents[1] / "skprune"
#: Old flat paths kept as aliases of a moved module ("this path keeps working").
SHIMS = {
    "constrained", "engine", "gates", "lobster", "magnitude", "onnx", "optim", "pareto",
    "persistence", "pruning", "registry", "regularizers", "schedules", "search", "sparsify",
    "strategies",
}  # fmt: skip
SUBPACKAGES = {
    "estimators", "training", "parts", "model_selection", "deploy", "feature_selection"
}  # fmt: skip
PUBLIC_TOP_LEVEL = {
    "__init__", "__main__", "models", "datasets", "metrics", "cost", "plotting", "cli",
}  # fmt: skip


def _module_name(path):
    """``skprune.parts._pruning`` for ``skprune/parts/_pruning.py``; a package for its __init__."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    """Every module of the package: dotted name -> path."""
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path):
    """skprune modules that ``path`` imports anywhere, inside functions too (absolute names)."""
    name = _module_name(path)
    package = name.split(".") if path.stem == "__init__" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *filter(None, [node.module])])
            # ``from . import _x`` names a module; ``from .x import f`` a module and an attribute
            found |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
    modules = _modules()
    # A module's own packages are initialised before it: importing them is no arrow.
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in modules and m not in ancestors | {"skprune"}}


def _unit(module):
    """The part of the layout ``module`` belongs to: its subpackage or top-level module."""
    return module.split(".")[1]


def _cycle(graph):
    """One import cycle of ``graph`` (module -> imported modules), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_has_no_import_cycle_counting_imports_inside_functions():
    graph = {name: _imports(path) for name, path in _modules().items()}
    assert _cycle(graph) is None


def test_subpackages_import_each_other_one_way_counting_imports_inside_functions():
    graph = {}
    for name, path in _modules().items():
        if name != "skprune":
            graph.setdefault(_unit(name), set()).update(
                _unit(m) for m in _imports(path) if _unit(m) != _unit(name)
            )
    assert _cycle(graph) is None


def test_parts_and_the_training_loop_import_nothing_above_them():
    above = {"parts": SUBPACKAGES - {"parts"}, "training": SUBPACKAGES - {"parts", "training"}}
    for name, path in _modules().items():
        if name != "skprune" and _unit(name) in above:
            assert not {_unit(m) for m in _imports(path)} & above[_unit(name)], name


def test_every_module_lives_in_a_subpackage_or_is_public_top_level_or_a_shim():
    top_level = {path.stem for path in PACKAGE.glob("*.py")}
    assert top_level == PUBLIC_TOP_LEVEL | SHIMS
    assert {path.parent.name for path in PACKAGE.glob("*/*.py")} == SUBPACKAGES
    assert not list(PACKAGE.glob("*/*/*.py"))


def test_shims_only_alias_their_module_and_nothing_imports_them():
    for shim in SHIMS:
        path = PACKAGE / f"{shim}.py"
        assert "this path keeps working" in path.read_text().partition("\n")[0]
        assert len(_imports(path)) <= 2, shim  # the subpackage and its module
    for name, path in _modules().items():
        assert not {f"skprune.{shim}" for shim in SHIMS} & _imports(path), name


def test_only_the_estimators_import_the_registry():
    importers = {n for n, p in _modules().items() if "skprune.parts._registry" in _imports(p)}
    allowed = {"skprune.estimators._base", "skprune.model_selection._search", "skprune.registry"}
    assert importers <= allowed


CALLBACKS = [
    L1(),
    L2(),
    L0(),
    L2L0(),
    LOBSTER(),
    HardConcrete(),
    ThresholdPruning(),
    MagnitudePruning(target_density=0.5),
    LobsterPruning(),
    LambdaHistory(),
    SparsityHistory(),
    DivergenceCheck(),
    SigmoidLR(1e-2, 1e-3),
    WarmStart("/tmp/skprune-warm", 1e-3),
]


def _fitted_attributes(obj):
    """What ``fit`` or ``initialize`` left: attributes named ``name_``."""
    return sorted(k for k in vars(obj) if k.endswith("_") and not k.startswith("_"))


def _assert_cloned_params(twin, original):
    """scikit-learn's clone contract: equal parameters (deep), nested objects copied."""
    theirs, ours = original.get_params(deep=True), twin.get_params(deep=True)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if hasattr(value, "get_params") and not isinstance(value, type):
            assert type(ours[key]) is type(value) and ours[key] is not value, key
        elif isinstance(value, list):  # callbacks: each cloned
            assert len(ours[key]) == len(value) and ours[key] is not value, key
            for a, b in zip(ours[key], value):
                assert type(a) is type(b) and a is not b, key
                _assert_cloned_params(a, b)
        else:
            assert ours[key] == value, key


def _constructor_params(cls):
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.name != "self" and p.kind not in kinds}


@pytest.mark.parametrize("callback", CALLBACKS, ids=lambda cb: type(cb).__name__)
def test_callback_survives_clone_after_initialize(callback):
    callback = clone(callback).initialize()
    # Its parameters are its constructor's: none that initialize added.
    assert set(callback.get_params()) == _constructor_params(type(callback))
    twin = clone(callback)
    assert type(twin) is type(callback) and twin is not callback
    _assert_cloned_params(twin, callback)
    assert _fitted_attributes(twin) == []  # initialize's state is not carried over
    est = SparseNetClassifier(callbacks=[callback])
    _assert_cloned_params(clone(est), est)


@pytest.mark.parametrize(
    "parts",
    [
        dict(regularizer=L2L0(alpha=0.5, beta=5.0), pruning=ThresholdPruning(0.01, "epoch")),
        dict(regularizer=LOBSTER(), pruning=LobsterPruning(patience=2), validation_fraction=0.2),
        dict(regularizer=L1(), pruning=MagnitudePruning(target_density=0.5, finetune_epochs=1)),
        dict(regularizer=HardConcrete(target_density=0.5, dual_restarts=False), pruning=None),
        dict(callbacks=[LambdaHistory()], optimizer="madam"),
    ],
    ids=["l2_l0", "lobster", "magnitude", "hard_concrete", "madam"],
)
def test_clone_of_a_fitted_estimator_is_unfitted_and_refits_the_same(blobs, parts):
    X, y = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fitted = SparseNetClassifier(max_epochs=3, random_state=0, **parts).fit(X, y)
        twin = clone(fitted)
        _assert_cloned_params(twin, fitted)
        with pytest.raises(NotFittedError):
            check_is_fitted(twin)
        assert _fitted_attributes(twin) == []
        for est in (twin, fitted):  # fit trains copies of the parts: these stay as given
            for key, value in est.get_params(deep=False).items():
                for part in value if isinstance(value, list) else [value]:
                    if hasattr(part, "get_params") and not isinstance(part, type):
                        assert _fitted_attributes(part) == [], key
        twin.fit(X, y)
    for a, b in zip(twin.net_.module_.parameters(), fitted.net_.module_.parameters()):
        assert torch.equal(a, b)
    assert twin.density_ == fitted.density_
    np.testing.assert_array_equal(twin.predict_proba(X), fitted.predict_proba(X))


def test_registry_maps_every_name_to_a_base_class():
    assert all(issubclass(cls, Regularizer) for cls in REGULARIZERS.values())
    assert all(issubclass(cls, Pruner) for cls, _ in PRUNERS.values())


def test_regularizer_without_penalty_cannot_be_made():
    class Empty(Regularizer):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Empty()


def test_autograd_gradient_equals_the_analytic_one():
    class AutogradL1(Regularizer):
        def penalty(self, weights):
            return sum(w.abs().sum() for w in weights)

    w = [torch.tensor([[0.5, -2.0], [3.0, -0.1]])]
    assert not AutogradL1().analytic and L1().analytic
    torch.testing.assert_close(AutogradL1().gradients(w), L1().gradients(w))


class _Started(Callback):
    """Counts the trainings that began."""

    def initialize(self):
        self.started_ = 0
        return self

    def on_train_begin(self, net, **kwargs):
        self.started_ += 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"pruning": "global"}, "target_density"),
        ({"pruning": "lobster"}, "validation_fraction"),
        ({"regularizer": "hard_concrete", "pruning": "batch"}, "pruning=None"),
        ({"optimizer": "madam", "regularizer": None}, "multi-objective"),
        ({"pruning": "batch", "pruning__sometimes": 1}, r"pruning__sometimes"),
    ],
)
def test_cross_parameter_checks_fail_before_training(params, match, blobs):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, callbacks=[_Started()], **params)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")  # nothing was built, let alone trained


def test_pruning_accepts_an_instance_and_routed_settings(blobs):
    X, y = blobs
    pruner = MagnitudePruning(method="layerwise", target_density=0.9)
    clf = SparseNetClassifier(
        regularizer=None, pruning=pruner, pruning__target_density=0.25, max_epochs=2
    )
    clf.set_params(pruning__finetune_epochs=1).fit(X, y)
    assert clf.density_ == pytest.approx(0.25, abs=0.01)
    assert len(clf.history_) == 3  # max_epochs + the pruner's fine-tuning epoch
    assert pruner.target_density == 0.9  # the parameter itself is never changed


def test_pruning_settings_override_the_estimator_parameters(blobs):
    X, y = blobs
    clf = SparseNetClassifier(pruning="global", target_density=0.5, max_epochs=1)
    clf.set_params(pruning__target_density=0.1, finetune_epochs=0).fit(X, y)
    assert clf.density_ == pytest.approx(0.1, abs=0.01)


def test_a_parameter_no_part_reads_warns(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="'target_density' parameter.*ignored"):
        SparseNetClassifier(target_density=0.1, max_epochs=1).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparseNetClassifier(pruning="global", target_density=0.1, max_epochs=1).fit(X, y)
