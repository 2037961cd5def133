"""The subpackage layout: files saved before it still load, and SPEC's import paths still work."""

import importlib
from pathlib import Path

import numpy as np
import pytest

import skprune

DATA = Path(__file__).parent / "data"


def test_load_file_saved_before_layout_keeps_its_predictions():
    # Saved by the flat layout: it names skprune.estimators.SparseNetClassifier,
    # skprune.regularizers.L1 and skprune.optim.SMGD.
    clf = skprune.load(DATA / "model_before_layout.skp")
    X = np.load(DATA / "model_before_layout_X.npy")
    expected = np.load(DATA / "model_before_layout_proba.npy")
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
    assert type(clf).__name__ == "SparseNetClassifier"
    assert type(clf.regularizer).__name__ == "L1"


#: Every import path and name of shared/SPEC.md.
SPEC_NAMES = [
    ("skprune", "SparseNetClassifier"),
    ("skprune", "SparseNetRegressor"),
    ("skprune", "ParetoSearchCV"),
    ("skprune", "lambda_path"),
    ("skprune", "SparseNetSelector"),
    ("skprune", "save"),
    ("skprune", "load"),
    ("skprune.regularizers", "Regularizer"),
    ("skprune.pruning", "Pruner"),
    ("skprune.strategies", "SearchStrategy"),
    ("skprune.plotting", "plot_pareto"),
    ("skprune.plotting", "plot_density_history"),
    ("skprune.plotting", "plot_weight_histogram"),
    ("skprune.plotting", "plot_lambda_history"),
    ("skprune.plotting", "plot_constraint_history"),
]
#: The flat public modules the docs, README and examples import; each still imports.
OLD_PUBLIC_MODULES = [
    "constrained", "engine", "estimators", "gates", "lobster", "magnitude", "optim", "pareto",
    "persistence", "pruning", "registry", "regularizers", "schedules", "search", "sparsify",
    "strategies", "models", "datasets", "metrics", "plotting", "cli",
]  # fmt: skip


@pytest.mark.parametrize(("module", "name"), SPEC_NAMES)
def test_spec_import_paths_still_import(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_spec_import_skprune_onnx_registers_the_converter():
    pytest.importorskip("skl2onnx")
    onnx = importlib.import_module("skprune.onnx")
    assert onnx is importlib.import_module("skprune.deploy._onnx")


@pytest.mark.parametrize("module", OLD_PUBLIC_MODULES)
def test_old_public_module_paths_still_import(module):
    assert importlib.import_module(f"skprune.{module}").__name__.startswith("skprune.")


def test_old_public_module_path_is_the_moved_module_itself():
    from skprune.parts import _regularizers

    assert importlib.import_module("skprune.regularizers") is _regularizers
    assert skprune.regularizers.L1 is skprune.parts.L1
    assert importlib.import_module("skprune.estimators").SparseNetClassifier is (
        skprune.SparseNetClassifier
    )


#: Modules made after the layout: no file saved before it names their classes.
NEW_MODULES = {
    "skprune.parts._group_lasso",
    "skprune.parts._channel_pruning",
    "skprune.parts._input_groups",
}


def test_every_listed_class_that_moved_keeps_its_flat_path_in_the_allowlist():
    from skprune.deploy._trusted import Names

    names = Names()
    moved = {
        cls
        for path, cls in names.classes.items()
        if path.startswith("skprune.")
        and "._" in path  # defined in a subpackage's module
        and cls.__module__ not in NEW_MODULES
    }
    flat = {cls for path, cls in names.classes.items() if path.count(".") == 2}
    assert moved and moved <= flat
