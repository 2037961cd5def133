"""A newcomer's friction (issue 24, item 4): pipelines, warnings, logs, counters, rates."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skprune import ParetoSearchCV, SparseNetClassifier, SparseNetRegressor
from skprune.estimators._user_warnings import CollapseWarning
from skprune.optim import SMGD
from skprune.schedules import resolve_lr

#: Large steps and threshold: λ = 0.9 zeroes every weight of the blobs' MLP.
_COLLAPSING = dict(max_epochs=15, lr=0.02, threshold=0.05, random_state=0, device="cpu")


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5)).astype(np.float32) * 10
    return X, X[:, 0] - 2 * X[:, 1] + rng.normal(size=80)


# -- param_name inside a pipeline ---------------------------------------------


def test_search_param_name_found_in_a_pipeline(regression):
    X, y = regression
    pipe = make_pipeline(StandardScaler(), SparseNetRegressor(max_epochs=2, random_state=0))
    search = ParetoSearchCV(pipe, strategy="grid", lambdas=[1e-4, 1e-2], cv=2).fit(X, y)
    assert search.param_name is None and search.param_name_ == "sparsenetregressor__lam"
    assert set(search.best_params_) == {"sparsenetregressor__lam"}
    assert "param_sparsenetregressor__lam" in search.cv_results_


def test_search_param_name_found_in_a_nested_pipeline():
    inner = make_pipeline(StandardScaler(), SparseNetRegressor())
    search = ParetoSearchCV(make_pipeline(StandardScaler(), inner))
    search._check_search_params()
    assert search.param_name_ == "pipeline__sparsenetregressor__lam"


def test_search_explicit_param_name_still_used(regression):
    X, y = regression
    pipe = make_pipeline(StandardScaler(), SparseNetRegressor(max_epochs=2, random_state=0))
    search = ParetoSearchCV(
        pipe, param_name="sparsenetregressor__lam", strategy="grid", lambdas=[1e-3], cv=2
    )
    assert search.fit(X, y).param_name_ == "sparsenetregressor__lam"
    assert ParetoSearchCV(SparseNetRegressor(), param_name="lam").param_name == "lam"


def test_search_pipeline_without_lam_names_its_last_step(regression):
    X, y = regression
    search = ParetoSearchCV(make_pipeline(StandardScaler(), Ridge()))
    with pytest.raises(ValueError, match="last step 'ridge' \\(Ridge\\) has none") as info:
        search.fit(X, y)
    assert len(str(info.value)) < 250


def test_search_wrong_param_name_suggests_the_right_one_briefly(regression):
    X, y = regression
    pipe = make_pipeline(StandardScaler(), SparseNetRegressor())
    with pytest.raises(ValueError, match="did you mean 'sparsenetregressor__lam'") as info:
        ParetoSearchCV(pipe, param_name="clf__lam").fit(X, y)
    assert len(str(info.value)) < 250


# -- the collapse warning -------------------------------------------------------


def test_fit_collapse_warning_points_at_the_callers_line(blobs):
    X, y = blobs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SparseNetClassifier(lam=0.9, **_COLLAPSING).fit(X, y)
    collapses = [w for w in caught if issubclass(w.category, CollapseWarning)]
    assert len(collapses) == 1 and collapses[0].filename == __file__


@pytest.mark.parametrize("vectorize", [False, True])
def test_search_collapse_warns_once_at_the_callers_line(blobs, vectorize):
    X, y = blobs
    search = ParetoSearchCV(
        SparseNetClassifier(**_COLLAPSING),
        strategy="grid",
        lambdas=[1e-4, 0.5, 0.9],
        cv=3,
        vectorize=vectorize,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(X, y)
    collapses = [w for w in caught if issubclass(w.category, CollapseWarning)]
    assert len(collapses) == 1 and collapses[0].filename == __file__
    assert "in 6 of 9 fits" in str(collapses[0].message)
    assert "lam in [0.5, 0.9]" in str(collapses[0].message)


_TWO_JOBS = """
import numpy as np, sys
from sklearn.datasets import make_classification
from skprune import ParetoSearchCV, SparseNetClassifier
X, y = make_classification(n_samples=120, n_features=8, n_informative=5, n_classes=3,
                           random_state=0)
clf = SparseNetClassifier(max_epochs=15, lr=0.02, threshold=0.05, random_state=0, device="cpu")
ParetoSearchCV(clf, strategy="grid", lambdas=[1e-4, 0.9], cv=2, n_jobs=2,
               vectorize=sys.argv[1] == "1").fit(X.astype(np.float32), y)
"""


@pytest.mark.slow
@pytest.mark.parametrize("vectorize", ["0", "1"])
def test_search_collapse_warns_once_with_two_jobs(vectorize):
    # A fresh process: joblib's workers print their own warnings to its stderr.
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _TWO_JOBS, vectorize], capture_output=True, text=True, check=True
    )
    assert run.stderr.count("CollapseWarning") == 1 and "in 2 of 4 fits" in run.stderr


# -- no colour codes in redirected logs ---------------------------------------------


def test_verbose_log_has_no_ansi_codes_off_a_terminal(blobs, capsys):
    X, y = blobs
    SparseNetClassifier(max_epochs=3, verbose=1, validation_fraction=0.25).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "\x1b[" not in out


def test_verbose_log_keeps_colours_on_a_terminal(blobs, capsys, monkeypatch):
    import sys

    X, y = blobs
    with monkeypatch.context() as patch:
        patch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
        SparseNetClassifier(max_epochs=3, verbose=1).fit(X, y)
    assert "\x1b[" in capsys.readouterr().out


# -- the search counter -------------------------------------------------------------


def test_search_counter_counts_what_was_trained(blobs, capsys):
    X, y = blobs
    search = ParetoSearchCV(
        SparseNetClassifier(max_epochs=2, random_state=0, device="cpu"),
        lambdas=(1e-4, 0.1),
        budget=30,
        cv=2,
        verbose=1,
    ).fit(X, y)
    lines = [s for s in capsys.readouterr().out.splitlines() if s.startswith("[ParetoSearchCV]")]
    assert len(search.lambdas_) < 30 and len(lines) == len(search.lambdas_)
    assert f"lambda #{len(lines)}:" in lines[-1]
    assert not any("/30" in line for line in lines)


# -- lr="auto" ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer, lr",
    [("smgd", 0.1), ("sgd", 0.1), (SMGD, 0.1), (torch.optim.SGD, 0.1)]
    + [("adam", 1e-3), ("madam", 1e-3), ("mrmsprop", 1e-3), (torch.optim.Adam, 1e-3)],
)
def test_lr_auto_depends_on_the_optimizer(optimizer, lr):
    assert resolve_lr(SparseNetClassifier(optimizer=optimizer)) == lr
    assert resolve_lr(SparseNetClassifier(optimizer=optimizer, lr=1e-3)) == 1e-3


def test_lr_auto_reaches_the_optimizer(blobs):
    X, y = blobs
    clf = SparseNetClassifier(optimizer="smgd", max_epochs=1).fit(X, y)
    assert clf.lr == "auto" and clf.net_.optimizer_.param_groups[0]["lr"] == 0.1
    clf = SparseNetClassifier(optimizer="smgd", lr=1e-3, max_epochs=1).fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == 1e-3


def test_lr_auto_schedule_ends_at_a_tenth(blobs):
    X, y = blobs
    clf = SparseNetClassifier(optimizer="sgd", lr_schedule="sigmoid", max_epochs=2).fit(X, y)
    assert clf.history_[0, "lr"] <= 0.1 and clf.history_[-1, "lr"] >= 0.01


@pytest.mark.slow
def test_smgd_trains_digits_at_the_default_lr(digits):
    X_train, X_test, y_train, y_test = digits
    clf = SparseNetClassifier(optimizer="smgd", random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.9  # 0.50 at lr=1e-3, 0.97 at "auto" (0.1)


def test_ignored_parameter_warning_points_at_the_callers_line(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="'target_density' parameter") as caught:
        SparseNetClassifier(target_density=0.5, max_epochs=1).fit(X, y)
    assert caught[0].filename == __file__
