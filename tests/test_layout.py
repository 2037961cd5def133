"""The subpackage layout: files saved before it still load, and SPEC's import paths still work."""

from pathlib import Path

import numpy as np

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
