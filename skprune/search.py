"""``ParetoSearchCV``: cross-validated knee search over the trade-off weight λ."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from numbers import Integral

import numpy as np
from scipy.stats import rankdata
from sklearn.base import is_classifier
from sklearn.metrics import check_scoring
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._candidate import CandidateFit, sparse_step
from ._warm_start import WarmStart, nearest_lambda
from .pareto import (
    KNEE_RULES,
    find_knee,
    log_grid,
    pareto_front,
    propose_bisection,
    propose_dichotomic,
)

__all__ = ["ParetoSearchCV", "STRATEGIES"]

STRATEGIES = ("grid", "dichotomic", "stochastic_dichotomic", "bisection")
#: Reiners Fig. 9(a): weights from [1e-5, 0.1], condensed towards small values.
_DEFAULT_INTERVAL = (1e-5, 1e-1)
_DEFAULT_GRID_SIZE = 9
_DEFAULT_ADAPTIVE_BUDGET = 8
#: Scorers whose value v gives the loss objective 1 − v (an error rate).
_RATE_SCORERS = ("accuracy", "balanced_accuracy")
_MINIMISED = ("density", "omega")


class _AttributeScorer:
    """Scorer reading a fitted attribute of the network (X, y and weights unused)."""

    def __init__(self, read):
        self.read = read

    def __call__(self, estimator, X, y=None, sample_weight=None):
        return float(self.read(sparse_step(estimator)))

    def _accept_sample_weight(self):
        return True  # a property of the weights: sample weights change nothing


def _density(step):
    """The share of non-zero regularised weights."""
    return step.density_


def _omega(step):
    """Ω of the final weights (``objectives_[1]``)."""
    return step.objectives_[1]


class ParetoSearchCV(BaseSearchCV):
    """Cross-validated search of the knee of the loss–complexity Pareto front.

    Trains the estimator at several weights λ of the scalarisation
    ``(1 − λ)·E + λ·Ω`` (Reiners et al., eq. 7), each on ``cv`` folds; averages
    the two objectives per λ over the folds — the validation loss (or error)
    and the complexity (density or Ω), both minimised; keeps the
    non-dominated points (the Pareto front, §2); picks its knee (§5); and
    refits the estimator on all data at the knee's λ. The λ values come from a
    strategy: a fixed ``"grid"`` (Fig. 9a), the ``"dichotomic"`` search, the
    ``"stochastic_dichotomic"`` search of Algorithm 3, or the ``"bisection"``
    search (§5, §6.3.2). Fits, ``n_jobs``, joblib backends, ``cv_results_``
    and the refit are scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`
    machinery.

    Parameters
    ----------
    estimator : estimator
        A :class:`~skprune.SparseNetClassifier` (or a pipeline ending in one):
        whatever reports ``density_`` and ``objectives_`` after ``fit``.
    param_name : str, default="lam"
        The parameter searched (``"clf__lam"`` inside a pipeline).
    strategy : {"grid", "dichotomic", "stochastic_dichotomic", "bisection"}, \
            default="bisection"
        ``"grid"`` trains every λ of ``lambdas``. ``"dichotomic"`` starts from
        the two ends of ``lambdas`` and adds, for each pair of neighbouring
        front points, the λ at which (7) ranks them equal, until no new λ
        comes up. ``"stochastic_dichotomic"`` is Algorithm 3: a new λ within
        0.001 of a known λ̂ is replaced by a random one in
        ``[max(0.9·λ̂, λ1), min(1.1·λ̂, λ2)]``. ``"bisection"`` starts from 5
        log-spaced λ over the interval and halves (in log λ) the intervals on
        either side of the current knee until they are resolved.
    lambdas : array-like of float or None, default=None
        The λ list of ``"grid"`` (default: 9 values log-spaced over
        ``[1e-5, 0.1]``, Reiners Fig. 9a), or the interval ``(λ1, λ2)`` of the
        adaptive strategies (default ``(1e-5, 0.1)``).
    budget : int >= 2 or None, default=None
        The most λ values to train (each on every fold). None: the whole grid,
        or 8 for the adaptive strategies. A grid longer than the budget is
        thinned evenly.
    knee : {"chord", "ideal"} or callable, default="chord"
        ``"chord"``: the front point farthest from the chord between its
        extremes on normalised axes (Kneedle-style, Das 1999);
        ``"ideal"``: the point closest to the ideal point. A callable gets the
        front (array of ``(loss, complexity)`` rows sorted by complexity,
        collapsed points left out) and returns an index into it.
    complexity : {"density", "omega"}, default="density"
        The second objective of the front: the share of non-zero weights, or
        the regulariser Ω of the final weights.
    search_epochs : int >= 1 or None, default=None
        Epochs each candidate trains for (multi-fidelity, Reiners §5); the
        refit at the knee uses the estimator's own ``max_epochs``. None: the
        estimator's own.
    warm_start : bool, default=False
        Start each λ after the first round from the final weights of the
        nearest λ (in log λ) trained in an earlier round on the same fold, as
        ``LassoCV`` follows its path (a ``WarmStart`` callback passed
        through the estimator's ``callbacks``; the weights are kept in
        ``memory``, or a temporary folder that all workers must see). The
        refit at the knee starts cold.
    memory : str, path-like or None, default=None
        A folder keeping every finished (λ, fold) fit; a search run again with
        the same folder (after an interruption, or with a larger budget) loads
        them instead of training. None keeps nothing.
    devices : list of str or None, default=None
        Devices (``["cuda:0", "cuda:1"]``) given to the candidates in turn,
        through the estimator's ``device`` parameter. Use with ``n_jobs``.
    cv : int, cross-validation generator or iterable, default=None
        As in :class:`~sklearn.model_selection.GridSearchCV` (5-fold
        stratified by default).
    scoring : str, callable or None, default=None
        Gives the loss objective: None is the validation cross-entropy
        (``"neg_log_loss"``, the E of eq. 7); ``"accuracy"`` gives the error
        rate ``1 − accuracy``; any other scorer ``s`` gives ``−s``.
    n_jobs : int or None, default=None
        Fits run in parallel (joblib; any joblib backend).
    refit : bool, default=True
        Refit the estimator at the knee on all of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seeds the random choices of ``"stochastic_dichotomic"``.
    verbose : int, default=0
        > 0: one line per evaluated λ (and scikit-learn's own messages).
    pre_dispatch : int or str, default="2*n_jobs"
    error_score : "raise" or float, default=np.nan
        As in :class:`~sklearn.model_selection.GridSearchCV`; failed fits
        leave their λ off the front.
    return_train_score : bool, default=False
        Also score every fit on its training part (``train_score``, ...).

    Attributes
    ----------
    cv_results_ : dict of ndarray
        One row per λ (in the order trained): ``param_lam`` (and
        ``param_max_epochs`` / ``param_device`` when set), per fold and mean
        ``test_score``, ``test_accuracy``, ``test_density``, ``test_omega``,
        ``rank_test_*`` (density and Ω ranked ascending), fit times, and
        ``pareto_optimal`` (on the front). ``params`` holds ``{param_name: λ}``.
    pareto_front_ : ndarray of shape (n_points, 2)
        Non-dominated ``(loss, complexity)`` rows, by increasing complexity.
    pareto_index_ : ndarray of int
        The ``cv_results_`` row of each front point.
    knee_ : dict
        ``"lam"``, ``"index"`` (into ``pareto_front_``), ``"cv_index"`` (row
        of ``cv_results_``), ``"loss"``, ``"density"``, ``"omega"``,
        ``"accuracy"`` (when scored), ``"rule"``, ``"fold_lams"`` (the knee
        found on each fold's own front) and ``"stability"`` (the share of
        folds whose knee is at ``"lam"``).
    best_index_, best_params_, best_score_ :
        The knee's row, ``{param_name: λ}``, and its mean ``test_score``.
    best_estimator_ : estimator
        Refit on all data at the knee's λ (when ``refit``).
    lambdas_ : ndarray of shape (n_lambdas,)
        The λ values trained, increasing.
    loss_path_, density_path_ : ndarray of shape (n_lambdas, n_splits)
        The loss objective and density per λ (rows as ``lambdas_``) and fold,
        like ``LassoCV.mse_path_``.
    n_trainings_ : int
        Candidate fits (λ values × folds, those loaded from ``memory``
        included), the refit not counted.
    scorer_, n_splits_, refit_time_, multimetric_ :
        As in :class:`~sklearn.model_selection.GridSearchCV`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skprune import ParetoSearchCV, SparseNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> search = ParetoSearchCV(SparseNetClassifier(max_epochs=3, random_state=0),
    ...                         strategy="grid", lambdas=[1e-4, 1e-3, 1e-2], cv=2)
    >>> search.fit(X / 16, y).knee_["lam"] in (1e-4, 1e-3, 1e-2)
    True
    """

    _parameter_constraints = {
        **{
            k: v
            for k, v in BaseSearchCV._parameter_constraints.items()
            if k not in ("scoring", "refit")
        },
        "estimator": [HasMethods(["fit", "get_params"])],
        "param_name": [str],
        "strategy": [StrOptions(set(STRATEGIES))],
        "lambdas": ["array-like", None],
        "budget": [Interval(Integral, 2, None, closed="left"), None],
        "knee": [StrOptions(set(KNEE_RULES)), callable],
        "complexity": [StrOptions(set(_MINIMISED))],
        "search_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start": ["boolean"],
        "memory": [str, os.PathLike, None],
        "devices": [list, None],
        "scoring": [str, callable, None],
        "refit": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        *,
        param_name="lam",
        strategy="bisection",
        lambdas=None,
        budget=None,
        knee="chord",
        complexity="density",
        search_epochs=None,
        warm_start=False,
        memory=None,
        devices=None,
        cv=None,
        scoring=None,
        n_jobs=None,
        refit=True,
        random_state=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
    ):
        super().__init__(
            estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_name = param_name
        self.strategy = strategy
        self.lambdas = lambdas
        self.budget = budget
        self.knee = knee
        self.complexity = complexity
        self.search_epochs = search_epochs
        self.warm_start = warm_start
        self.memory = memory
        self.devices = devices
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------

    def fit(self, X, y=None, **params):
        """Search λ on ``cv`` folds, find the knee, refit there.

        Returns
        -------
        self : ParetoSearchCV
        """
        self._validate_params()
        self._check_search_params()
        estimator = self.estimator
        # BaseSearchCV clones ``self.estimator`` for every fit; the stand-in
        # adds the on-disk cache and is put back as soon as the search ends.
        self.estimator = CandidateFit(estimator, self.memory)
        with _warm_folder(self) as self._warm_folder:
            try:
                super().fit(X, y, **params)
            finally:
                self.estimator = estimator
                del self._warm_folder
        if hasattr(self, "best_estimator_"):
            self.best_estimator_ = self.best_estimator_.estimator
        self._set_front(self.cv_results_)
        return self

    def _check_search_params(self):
        names = self.estimator.get_params()
        owner = type(self.estimator).__name__
        needs = {"param_name": self.param_name, **self._extra_keys()}
        for option, param in needs.items():
            if param not in names:
                raise ValueError(
                    f"The {option!r} parameter of ParetoSearchCV needs the estimator's "
                    f"parameter {param!r}, but {owner} has no parameter {param!r}; its "
                    f"parameters are {sorted(names)}."
                )
        self._interval_or_grid()
        if self.devices is not None and not self.devices:
            raise ValueError("The 'devices' parameter of ParetoSearchCV must not be empty.")

    def _extra_keys(self):
        """Estimator parameters the search sets besides λ: epochs and device."""
        prefix = self.param_name.rpartition("__")[0]
        prefix = prefix + "__" if prefix else ""
        keys = {}
        if self.search_epochs is not None:
            keys["search_epochs"] = prefix + "max_epochs"
        if self.devices is not None:
            keys["devices"] = prefix + "device"
        if self.warm_start:
            keys["warm_start"] = prefix + "callbacks"
        return keys

    def _interval_or_grid(self):
        """The grid (sorted, unique) or the interval ``(λ1, λ2)``, checked."""
        if self.lambdas is None:
            if self.strategy == "grid":
                return log_grid(*_DEFAULT_INTERVAL, self.budget or _DEFAULT_GRID_SIZE)
            return _DEFAULT_INTERVAL
        lams = np.asarray(self.lambdas, dtype=float).ravel()
        if lams.size == 0:
            raise ValueError("The 'lambdas' parameter of ParetoSearchCV must not be empty.")
        if not np.all((lams >= 0) & (lams < 1)):
            raise ValueError(
                f"The 'lambdas' parameter of ParetoSearchCV must hold weights in [0, 1). "
                f"Got {lams.tolist()} instead."
            )
        if self.strategy == "grid":
            return np.unique(lams)
        if lams.size != 2 or not lams[0] < lams[1]:
            raise ValueError(
                f"The 'lambdas' parameter of ParetoSearchCV must be an interval "
                f"(lam1, lam2) with lam1 < lam2 for strategy={self.strategy!r}. "
                f"Got {lams.tolist()} instead."
            )
        return tuple(lams.tolist())

    def _budget(self):
        if self.budget is not None:
            return self.budget
        if self.strategy == "grid":
            return len(self._interval_or_grid())
        return _DEFAULT_ADAPTIVE_BUDGET

    # -- the scorers: both objectives per (λ, fold) ---------------------------

    def _get_scorers(self):
        default = "neg_log_loss" if is_classifier(self.estimator) else "neg_mean_squared_error"
        scorers = {"score": check_scoring(self.estimator, self.scoring or default)}
        if self.scoring != "accuracy" and is_classifier(self.estimator):
            scorers["accuracy"] = check_scoring(self.estimator, "accuracy")
        scorers.update(density=_AttributeScorer(_density), omega=_AttributeScorer(_omega))
        return _MultimetricScorer(scorers=scorers, raise_exc=self.error_score == "raise"), "score"

    def _loss(self, score):
        """The loss objective from the score: an error rate or the negated score."""
        offset = 1.0 if self.scoring in _RATE_SCORERS else 0.0
        return offset - np.asarray(score, dtype=float)

    # -- the search -----------------------------------------------------------

    def _run_search(self, evaluate_candidates):
        budget, lams = self._budget(), []
        rng = check_random_state(self.random_state)
        batch = self._first_lambdas(budget)
        while batch:
            results = self._evaluate(evaluate_candidates, batch, lams, budget)
            lams += batch
            if len(lams) >= budget:
                break
            batch = self._propose(results, lams, rng)[: budget - len(lams)]

    def _first_lambdas(self, budget):
        start = self._interval_or_grid()
        if self.strategy == "grid":
            keep = np.unique(np.round(np.linspace(0, len(start) - 1, budget)).astype(int))
            return [float(lam) for lam in start[keep]]
        if self.strategy == "bisection":
            return log_grid(*start, min(budget, 5)).tolist()
        return list(start)

    def _propose(self, results, lams, rng):
        """The next λ values of the adaptive strategies (none for the grid)."""
        if self.strategy == "grid":
            return []
        if self.strategy == "bisection":
            _, knee = self._front_and_knee(results)
            points = self._points(results)
            lam = np.asarray(results[self._lam_key()], dtype=float)
            return propose_bisection(lam, lam[knee], points)
        loss, _, omega = self._objectives(results)
        points = np.column_stack([loss, omega])
        front = points[pareto_front(points)]
        stochastic = rng if self.strategy == "stochastic_dichotomic" else None
        return propose_dichotomic(front, lams, self._interval_or_grid(), stochastic)

    def _evaluate(self, evaluate_candidates, batch, done, budget):
        """Train ``batch`` (λ values) after ``done`` (those of earlier rounds)."""
        extra, n_done = self._extra_keys(), len(done)
        candidates = []
        for i, lam in enumerate(batch):
            candidate = {self.param_name: float(lam)}
            if "search_epochs" in extra:
                candidate[extra["search_epochs"]] = self.search_epochs
            if "devices" in extra:
                candidate[extra["devices"]] = self.devices[(n_done + i) % len(self.devices)]
            candidates.append(candidate)
        more = self._add_warm_start(candidates, done, extra) if self.warm_start else None
        results = evaluate_candidates(candidates, more_results=more)
        if self.verbose > 0:
            self._print_progress(results, len(batch), n_done, budget)
        return results

    def _add_warm_start(self, candidates, done, extra):
        """Give each candidate a WarmStart callback from its nearest earlier λ."""
        key = extra["warm_start"]
        own = list(self.estimator.get_params()[key] or [])
        sources = []
        for candidate in candidates:
            source = nearest_lambda(candidate[self.param_name], done)
            candidate[key] = [*own, WarmStart(self._warm_folder, source)]
            sources.append(np.nan if source is None else source)
        return {"warm_start_from": sources}

    def _print_progress(self, results, n_new, n_done, budget):
        loss, density, _ = self._objectives(results)
        lam = results[self._lam_key()]
        for j, row in enumerate(range(len(loss) - n_new, len(loss))):
            print(
                f"[ParetoSearchCV] {n_done + j + 1}/{budget} lam={float(lam[row]):.3g} "
                f"loss={loss[row]:.4f} density={density[row]:.4f}",
                flush=True,
            )

    # -- results --------------------------------------------------------------

    def _lam_key(self):
        return f"param_{self.param_name}"

    def _objectives(self, results, split=None):
        """Per row: (loss, density, omega), averaged over folds or of one split."""
        prefix = "mean_test" if split is None else f"split{split}_test"
        loss = self._loss(results[f"{prefix}_score"])
        density = np.asarray(results[f"{prefix}_density"], dtype=float)
        return loss, density, np.asarray(results[f"{prefix}_omega"], dtype=float)

    def _points(self, results, split=None):
        """Per row: the ``(loss, complexity)`` point of the front."""
        loss, density, omega = self._objectives(results, split)
        return np.column_stack([loss, density if self.complexity == "density" else omega])

    def _front_and_knee(self, results, split=None):
        """Rows on the front (by complexity) and the knee's row."""
        density = self._objectives(results, split)[1]
        return find_knee(self._points(results, split), density == 0, self.knee)

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        results = super()._format_results(candidate_params, n_splits, out, more_results)
        for name in _MINIMISED:
            means = np.nan_to_num(results[f"mean_test_{name}"], nan=np.inf)
            results[f"rank_test_{name}"] = rankdata(means, method="min").astype(np.int32)
        # Candidates trained for ``search_epochs`` on ``devices``; the refit at
        # the knee takes λ alone and the estimator's own epochs and device.
        extra = set(self._extra_keys().values())
        results["params"] = [
            {k: v for k, v in p.items() if k not in extra} for p in candidate_params
        ]
        if self.warm_start:  # the WarmStart callbacks; ``warm_start_from`` says more
            results.pop(f"param_{self._extra_keys()['warm_start']}")
        on_front = np.zeros(len(candidate_params), dtype=bool)
        on_front[pareto_front(self._points(results))] = True
        results["pareto_optimal"] = on_front
        return results

    def _select_best_index(self, refit, refit_metric, results):
        return self._front_and_knee(results)[1]

    def _set_front(self, results):
        front, knee = self._front_and_knee(results)
        loss, density, omega = self._objectives(results)
        lam = np.asarray(results[self._lam_key()], dtype=float)
        self.pareto_index_ = front
        self.pareto_front_ = self._points(results)[front]
        fold_lams = [
            float(lam[self._front_and_knee(results, split=s)[1]]) for s in range(self.n_splits_)
        ]
        self.knee_ = {
            "lam": float(lam[knee]),
            "index": int(np.flatnonzero(front == knee)[0]),
            "cv_index": int(knee),
            "loss": float(loss[knee]),
            "density": float(density[knee]),
            "omega": float(omega[knee]),
            "rule": self.knee if isinstance(self.knee, str) else "callable",
            "fold_lams": fold_lams,
            "stability": float(np.mean(np.isclose(fold_lams, lam[knee]))),
        }
        if "mean_test_accuracy" in results or self.scoring == "accuracy":
            key = "accuracy" if "mean_test_accuracy" in results else "score"
            self.knee_["accuracy"] = float(results[f"mean_test_{key}"][knee])
        self._set_paths(results, lam)

    def _set_paths(self, results, lam):
        order = np.argsort(lam, kind="stable")
        splits = range(self.n_splits_)
        per_split = [self._objectives(results, split=s) for s in splits]
        self.lambdas_ = lam[order]
        self.loss_path_ = np.column_stack([p[0] for p in per_split])[order]
        self.density_path_ = np.column_stack([p[1] for p in per_split])[order]
        self.n_trainings_ = len(lam) * self.n_splits_

    # -- delegation -------------------------------------------------------------

    def score(self, X, y=None):
        """``best_estimator_.score(X, y)`` (accuracy for a classifier)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.score(X, y)


@contextmanager
def _warm_folder(search):
    """Where warm-start weights go: ``memory``, or a temporary folder (or None)."""
    if not search.warm_start:
        yield None
    elif search.memory is not None:
        yield search.memory
    else:
        folder = tempfile.mkdtemp(prefix="skprune-warm-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
