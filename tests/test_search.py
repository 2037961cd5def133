import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from skprune import ParetoSearchCV, SparseNetClassifier
from skprune.pareto import find_knee, pareto_front

STRATEGIES = ["grid", "dichotomic", "stochastic_dichotomic", "bisection"]


def _search(max_epochs=2, lr=1e-3, threshold=1e-3, **kwargs):
    kwargs.setdefault("cv", 2)
    clf = SparseNetClassifier(
        max_epochs=max_epochs, lr=lr, threshold=threshold, random_state=0, device="cpu"
    )
    return ParetoSearchCV(clf, random_state=0, **kwargs)


#: Large steps and threshold: λ = 0.5 zeroes every weight of the blobs' MLP.
_COLLAPSING = dict(max_epochs=15, lr=0.02, threshold=0.05)


def _fit(search, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # collapsed networks warn
        return search.fit(X, y)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: extra torch threads only wait for each other (12x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def searches(digits):
    """Every strategy on digits: MLP, cv=3, candidates and the refit trained for
    10 epochs (the grid: 8 λ; the bisection: at most 8, the others 6)."""
    X_train, _, y_train, _ = digits
    fitted = {}
    for strategy in STRATEGIES:
        budget = {"grid": 8, "bisection": 8}.get(strategy, 6)
        search = _search(max_epochs=10, cv=3, strategy=strategy, budget=budget)
        fitted[strategy] = _fit(search, X_train, y_train)
    return fitted


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_search_strategy_finds_a_knee_and_refits_there(searches, digits, strategy):
    import pandas as pd

    _, X_test, _, y_test = digits
    search = searches[strategy]
    front = search.pareto_front_
    assert front.shape[1] == 2 and len(front) >= 2
    assert np.all(np.diff(front[:, 1]) > 0) and np.all(np.diff(front[:, 0]) < 0)
    assert len(pareto_front(front)) == len(front)
    knee = search.knee_
    assert front[knee["index"]].tolist() == [knee["loss"], knee["density"]]
    assert knee["density"] > 0
    assert search.best_params_ == {"lam": knee["lam"]}
    assert search.best_estimator_.lam == knee["lam"]
    assert search.best_estimator_.max_epochs == 10
    assert search.score(X_test, y_test) > 0.9
    table = pd.DataFrame(search.cv_results_)
    assert len(table) == len(search.lambdas_) == search.n_trainings_ // 3
    assert table["param_lam"].is_unique
    assert table.loc[knee["cv_index"], "param_lam"] == knee["lam"]


@pytest.mark.slow
def test_search_bisection_matches_the_grid_knee_with_fewer_trainings(searches, digits):
    """Bisection resolves the knee with fewer λ than an 8-point grid.

    Measured (run with ``-s``): grid 8 λ, knee 1.93e-3; bisection 7 λ, knee
    3.16e-3, a λ the grid does not hold: refit test accuracy 0.927 vs 0.918,
    CV density 0.344 vs 0.263 — the density falls steeply between the grid's
    points, 0.57 decade apart, so it is compared to one grid step.
    """
    _, X_test, _, y_test = digits
    grid, bisection = searches["grid"], searches["bisection"]
    for name, search in (("grid", grid), ("bisection", bisection)):
        knee = search.knee_
        print(
            f"{name}: {len(search.lambdas_)} lambdas, knee lam={knee['lam']:.3g}, "
            f"cv accuracy {knee['accuracy']:.4f}, cv density {knee['density']:.4f}, "
            f"refit test accuracy {search.score(X_test, y_test):.4f}, "
            f"refit density {search.best_estimator_.density_:.4f}"
        )
    assert len(grid.lambdas_) == 8 and len(bisection.lambdas_) < 8  # resolved, not out of budget
    step = np.log10(grid.lambdas_[1] / grid.lambdas_[0])
    assert abs(np.log10(bisection.knee_["lam"] / grid.knee_["lam"])) <= step
    assert abs(bisection.score(X_test, y_test) - grid.score(X_test, y_test)) <= 0.01
    assert abs(bisection.knee_["accuracy"] - grid.knee_["accuracy"]) <= 0.015


@pytest.mark.slow
def test_search_paths_are_per_lambda_and_fold(searches):
    search = searches["grid"]
    n = len(search.lambdas_)
    assert np.all(np.diff(search.lambdas_) > 0)
    assert search.loss_path_.shape == search.density_path_.shape == (n, 3)
    assert np.allclose(
        search.density_path_.mean(axis=1),
        search.cv_results_["mean_test_density"][
            np.argsort(search.cv_results_["param_lam"].astype(float))
        ],
    )
    # Each fold's knee, found again from the paths: the chord on that fold's own front.
    fold_knees = [
        search.lambdas_[find_knee(np.column_stack([loss, density]), density == 0)[1]]
        for loss, density in zip(search.loss_path_.T, search.density_path_.T)
    ]
    assert search.knee_["fold_lams"] == fold_knees
    agree = np.mean(np.isclose(fold_knees, search.knee_["lam"]))
    assert search.knee_["stability"] == agree


@pytest.mark.slow
def test_search_predict_and_proba_delegate(searches, digits):
    _, X_test, _, _ = digits
    search = searches["bisection"]
    assert np.array_equal(search.predict(X_test), search.best_estimator_.predict(X_test))
    assert np.allclose(search.predict_proba(X_test).sum(axis=1), 1)


def test_search_collapsed_network_is_an_extreme_never_the_knee(blobs):
    X, y = blobs
    search = _fit(_search(strategy="grid", lambdas=[1e-4, 0.9], **_COLLAPSING), X, y)
    assert search.cv_results_["mean_test_density"][1] == 0
    assert search.pareto_front_[0, 1] == 0
    assert search.knee_["lam"] == 1e-4
    collapsed = _fit(_search(strategy="grid", lambdas=[0.5, 0.9], **_COLLAPSING), X, y)
    assert collapsed.knee_["density"] == 0


def test_search_knee_rules_by_name_and_callable(blobs):
    X, y = blobs
    lambdas = [1e-5, 1e-3, 1e-2, 3e-2]
    ideal = _fit(_search(strategy="grid", lambdas=lambdas, knee="ideal"), X, y)
    assert ideal.knee_["rule"] == "ideal"
    sparsest = _fit(_search(strategy="grid", lambdas=lambdas, knee=lambda f: 0), X, y)
    assert sparsest.knee_["index"] == np.flatnonzero(sparsest.pareto_front_[:, 1] > 0)[0]
    assert sparsest.knee_["rule"] == "callable"


def test_search_epochs_for_candidates_full_epochs_for_the_refit(blobs):
    X, y = blobs
    search = _fit(_search(strategy="grid", lambdas=[1e-4, 1e-3], search_epochs=1), X, y)
    assert set(search.cv_results_["param_max_epochs"]) == {1}
    assert search.best_params_ == {"lam": search.knee_["lam"]}
    assert len(search.best_estimator_.history_) == 2


def test_search_devices_round_robin(blobs):
    X, y = blobs
    search = _search(strategy="grid", lambdas=[1e-4, 1e-3, 1e-2], devices=["cpu", "cpu:0"])
    _fit(search, X, y)
    assert list(search.cv_results_["param_device"]) == ["cpu", "cpu:0", "cpu"]
    assert "device" not in search.best_params_


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_search_devices_on_cuda(blobs):
    X, y = blobs
    search = _fit(_search(strategy="grid", lambdas=[1e-4, 1e-3], devices=["cuda:0"]), X, y)
    assert search.knee_["lam"] in (1e-4, 1e-3)


def test_search_inside_a_pipeline(blobs):
    X, y = blobs
    pipe = Pipeline([("scale", StandardScaler()), ("clf", SparseNetClassifier(max_epochs=2))])
    search = ParetoSearchCV(
        pipe,
        param_name="clf__lam",
        strategy="grid",
        lambdas=[1e-4, 1e-2],
        cv=2,
        search_epochs=1,
    )
    _fit(search, X, y)
    assert set(search.best_params_) == {"clf__lam"}
    assert search.best_estimator_[-1].max_epochs == 2


def test_search_verbose_prints_one_line_per_lambda(blobs, capsys):
    X, y = blobs
    _fit(_search(strategy="grid", lambdas=[1e-4, 1e-2], verbose=1), X, y)
    lines = [s for s in capsys.readouterr().out.splitlines() if s.startswith("[ParetoSearchCV]")]
    assert len(lines) == 2 and "lam=0.0001" in lines[0] and "density=" in lines[0]


@pytest.mark.slow
def test_search_n_jobs_2_matches_sequential(blobs):
    X, y = blobs
    one = _fit(_search(strategy="grid", lambdas=[1e-4, 1e-2]), X, y)
    two = _fit(_search(strategy="grid", lambdas=[1e-4, 1e-2], n_jobs=2), X, y)
    assert np.allclose(one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"])
    assert one.knee_["lam"] == two.knee_["lam"]


def test_search_pickles(blobs):
    X, y = blobs
    search = _fit(_search(strategy="grid", lambdas=[1e-4, 1e-2]), X, y)
    again = pickle.loads(pickle.dumps(search))
    assert np.array_equal(again.predict(X), search.predict(X))
    assert again.knee_ == search.knee_


def test_search_runs_on_the_dask_backend(blobs):
    distributed = pytest.importorskip("dask.distributed")
    from joblib import parallel_backend

    X, y = blobs
    # λ = 0.9 collapses the network: the knee is the middle λ, not an end.
    search = _search(strategy="grid", lambdas=[1e-4, 1e-3, 0.9], n_jobs=-1, **_COLLAPSING)
    default = _fit(clone(search).set_params(n_jobs=None), X, y)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        parallel_backend("dask"),
        distributed.get_task_stream(client) as tasks,
    ):
        _fit(search, X, y)
    assert tasks.data  # trained on dask's workers (two threads: two stacks, not one)
    assert search.knee_["lam"] == default.knee_["lam"] == 1e-3
    assert search.knee_.keys() == default.knee_.keys()
    for key, value in search.knee_.items():  # approx compares no nested dicts (fold_lams)
        if isinstance(value, str):
            assert value == default.knee_[key]
        else:
            np.testing.assert_allclose(value, default.knee_[key], rtol=1e-6)
    for key in ("mean_test_score", "mean_test_density", "pareto_optimal"):
        np.testing.assert_allclose(search.cv_results_[key], default.cv_results_[key], rtol=1e-6)
    np.testing.assert_allclose(search.pareto_front_, default.pareto_front_, rtol=1e-6)
    np.testing.assert_allclose(search.predict_proba(X), default.predict_proba(X), atol=1e-6)


_FITS = []
_STOP_AT = [None]


class _CountFits(Callback):
    """Counts trainings; raises KeyboardInterrupt at the ``_STOP_AT``-th, like ^C."""

    def on_train_begin(self, net, **kwargs):
        if _STOP_AT[0] is not None and len(_FITS) == _STOP_AT[0]:
            raise KeyboardInterrupt
        _FITS.append(net.lam)


def test_search_interrupted_resumes_from_memory(blobs, tmp_path):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, random_state=0, callbacks=[_CountFits()])
    search = ParetoSearchCV(
        clf, strategy="grid", lambdas=[1e-4, 1e-3, 1e-2], cv=2, memory=tmp_path, refit=False
    )
    _FITS.clear()
    _STOP_AT[0] = 3
    with pytest.raises(KeyboardInterrupt):
        _fit(search, X, y)
    assert len(_FITS) == 3 and len(list(tmp_path.glob("*.pkl"))) == 3
    _FITS.clear()
    _STOP_AT[0] = None
    _fit(search, X, y)
    assert len(_FITS) == 6 - 3
    _FITS.clear()
    _fit(search, X, y)
    assert _FITS == []
    assert search.n_trainings_ == 6 and not hasattr(search, "best_estimator_")


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(strategy="golden"), "'strategy' parameter of ParetoSearchCV must be"),
        (dict(knee="elbow"), "'knee' parameter of ParetoSearchCV must be"),
        (dict(param_name="alpha"), "has no parameter 'alpha'"),
        (dict(strategy="grid", lambdas=[]), "'lambdas' parameter .* must not be empty"),
        (dict(budget=1), "'budget' parameter of ParetoSearchCV must be"),
        (dict(lambdas=[1e-2, 1e-4]), "interval \\(lam1, lam2\\) with lam1 < lam2"),
        (dict(strategy="grid", lambdas=[1e-3, 1.5]), "weights in \\[0, 1\\)"),
        (dict(devices=[]), "'devices' parameter of ParetoSearchCV must not be empty"),
    ],
)
def test_search_rejects_bad_parameters(blobs, params, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        _search(**params).fit(X, y)


def test_search_epochs_needs_a_max_epochs_parameter(blobs):
    from sklearn.linear_model import LogisticRegression

    X, y = blobs
    search = ParetoSearchCV(LogisticRegression(), param_name="C", search_epochs=2)
    with pytest.raises(ValueError, match="no parameter 'max_epochs'"):
        search.fit(X, y)


def test_search_rejects_a_knee_callable_out_of_range(blobs):
    X, y = blobs
    search = _search(strategy="grid", lambdas=[1e-4, 1e-2], knee=lambda f: 7)
    with pytest.raises(ValueError, match="'knee' callable must return an index"):
        _fit(search, X, y)


def test_plot_pareto_draws_front_and_knee(blobs):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skprune.plotting import plot_pareto

    X, y = blobs
    search = _fit(_search(strategy="grid", lambdas=[1e-4, 1e-3, 0.9], **_COLLAPSING), X, y)
    ax = plot_pareto(search)
    assert "knee" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert ax.get_xlabel().startswith("density")


def test_search_warm_start_starts_from_the_nearest_earlier_lambda(blobs, tmp_path):
    X, y = blobs
    search = _search(
        strategy="bisection",
        lambdas=(1e-4, 1e-1),
        budget=6,
        warm_start=True,
        memory=tmp_path,
        search_epochs=1,
    )
    _fit(search, X, y)
    sources = search.cv_results_["warm_start_from"]
    lam = search.cv_results_["param_lam"]
    assert np.isnan(sources[:5]).all()  # the first round starts cold
    first_round = np.asarray(lam[:5], dtype=float)
    for lam_i, source in zip(lam[5:], sources[5:]):
        assert source in first_round
        distance = np.abs(np.log(first_round / lam_i))  # a midpoint ties two: either is nearest
        assert np.isclose(distance[list(first_round).index(source)], distance.min())
    assert len(list(tmp_path.glob("warm-*.pt"))) == 6 * 2
    assert "param_callbacks" not in search.cv_results_
    assert search.best_params_ == {"lam": search.knee_["lam"]}
    assert search.best_estimator_.callbacks is None


def test_warm_start_callback_loads_the_neighbours_weights(blobs, tmp_path):
    from skprune.model_selection._warm_start import WarmStart

    X, y = blobs
    first = SparseNetClassifier(
        lam=1e-3, max_epochs=2, random_state=0, callbacks=[WarmStart(tmp_path)]
    ).fit(X, y)
    seen = {}

    class Peek(Callback):
        def on_train_begin(self, net, **kwargs):
            seen["w"] = net.module_.state_dict()["layer1.weight"].clone()

    SparseNetClassifier(
        lam=2e-3,
        max_epochs=1,
        random_state=1,
        callbacks=[WarmStart(tmp_path, source_lam=1e-3), Peek()],
    ).fit(X, y)
    final = first.net_.module_.state_dict()["layer1.weight"]
    assert torch.equal(seen["w"], final)


def _check_instance():
    # As scikit-learn checks GridSearchCV: cv=2, error_score="raise".
    clf = SparseNetClassifier(max_epochs=20, lr=0.01, random_state=0, device="cpu")
    return ParetoSearchCV(clf, strategy="grid", lambdas=[1e-5, 1e-4], cv=2, error_score="raise")


@pytest.mark.slow
def test_search_passes_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(_check_instance(), on_fail=None, on_skip=None)
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] != "passed"}
    assert not failed
