"""Every plot under the Agg backend, on small fitted estimators, and its errors."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.utils import Bunch

from skprune import SparseNetClassifier

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from skprune import plotting  # noqa: E402
from skprune.plotting import (  # noqa: E402
    plot_constraint_history,
    plot_density_history,
    plot_lambda_history,
    plot_weight_histogram,
)


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return SparseNetClassifier(max_epochs=3, random_state=0, **params).fit(X, y)


@pytest.fixture(scope="module")
def l1(digits):
    X, _, y, _ = digits
    return _fit(X, y, lam=3e-3)


@pytest.fixture(scope="module")
def madam(digits):
    X, _, y, _ = digits
    return _fit(X[:300], y[:300], optimizer="madam")


@pytest.fixture(scope="module")
def gated(digits):
    X, _, y, _ = digits
    return _fit(X[:300], y[:300], regularizer="hard_concrete", target_density=0.3)


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_density_history_draws_overall_and_each_layer(l1):
    ax = plot_density_history(l1)
    lines = ax.get_lines()
    assert len(lines) == 1 + len(l1.layer_density_)
    assert np.allclose(lines[0].get_ydata(), l1.history_[:, "density"])
    assert lines[0].get_ydata()[-1] == pytest.approx(l1.density_)
    assert _legend(ax) == ["all regularised weights", *l1.layer_density_]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel().startswith("density")


def test_plot_weight_histogram_counts_the_non_zero_weights_per_layer(l1):
    ax = plot_weight_histogram(l1)
    assert ax.get_yscale() == "log"
    counts = [int(p.get_path().vertices[:, 1].max()) for p in ax.patches]
    assert len(ax.patches) == len(l1.layer_density_) and min(counts) > 0
    n_weights = {"layer1": 64 * 100, "layer2": 100 * 10}
    expected = [
        f"{name}: {round(d * n_weights[name])} of {n_weights[name]} non-zero"
        for name, d in l1.layer_density_.items()
    ]
    assert _legend(ax) == expected


def test_plot_lambda_history_draws_steps_and_running_mean(madam):
    clf = madam
    ax = plot_lambda_history(clf, window=5)
    steps, mean = ax.get_lines()
    assert np.array_equal(steps.get_ydata(), clf.lambda_history_)
    assert mean.get_ydata()[0] == pytest.approx(clf.lambda_history_[:5].mean())
    assert "running mean (5 steps)" in _legend(ax)


def test_plot_constraint_history_draws_density_target_and_multiplier(gated):
    clf = gated
    ax = plot_constraint_history(clf)
    labels = _legend(ax)
    assert "ε = 0.3 (target)" in labels and "multiplier: model" in labels
    multipliers = ax.right_ax.get_lines()[0].get_ydata()
    assert np.allclose(multipliers, [m["model"] for m in clf.history_[:, "multiplier"]])
    assert ax.right_ax.get_ylabel() == "Lagrange multiplier μ"


def test_plots_name_what_the_estimator_lacks(l1):
    with pytest.raises(ValueError, match="no lambda_history_: fit it with a multi-objective"):
        plot_lambda_history(l1)
    with pytest.raises(ValueError, match="no 'expected_density'.*hard_concrete"):
        plot_constraint_history(l1)
    with pytest.raises(ValueError, match="call fit first"):
        plot_density_history(SparseNetClassifier())
    with pytest.raises(ValueError, match="call fit first"):
        plot_weight_histogram(SparseNetClassifier())


def test_plots_without_matplotlib_name_the_extra(monkeypatch, l1, madam, gated):
    # Every public plot, given what it draws (plot_pareto looks for matplotlib first).
    drawable = {
        "plot_pareto": object(),
        "plot_density_history": l1,
        "plot_weight_histogram": l1,
        "plot_lambda_history": madam,
        "plot_constraint_history": gated,
        "plot_feature_path": Bunch(
            lambdas=np.array([0.1]),
            importances=np.ones((1, 2)),
            n_selected=np.array([2]),
            drop_lambda=np.full(2, np.inf),
        ),  # fmt: skip
    }
    assert set(drawable) == set(plotting.__all__)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for name, what in drawable.items():
        with pytest.raises(ImportError, match=r"skprune\[plot\]"):
            getattr(plotting, name)(what)
