"""``ParetoSearchCV``: cross-validated knee search over the trade-off weight λ."""

import os
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..estimators._checks import check_params
from ..estimators._routing import RoutedParams
from ..estimators._user_warnings import collapses_silenced
from ..parts._registry import build_part
from ..training._atomic import fitted_aside
from ._candidate import CandidateFit
from ._collapse import warn_collapsed_fits
from ._objectives import (
    COMPLEXITIES,
    complexity_key,
    cv_objectives,
    knee_record,
    objective_scorer,
    print_progress,
    rank_up,
    standard_error,
    summarize,
)
from ._pareto import KNEE_RULES, knee_tolerance
from ._search_params import check_needed_params, extra_keys, searched_param
from ._strategies import STRATEGIES, SearchStrategy
from ._vectorize import vectorized
from ._warm_start import add_warm_start, warm_folder

__all__ = ["ParetoSearchCV"]


class ParetoSearchCV(RoutedParams, BaseSearchCV):
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
    param_name : str or None, default=None
        The parameter searched. None: ``"lam"``, or inside a pipeline its last
        step's (``"sparsenetregressor__lam"`` after ``make_pipeline``).
    strategy : {"grid", "dichotomic", "stochastic_dichotomic", "bisection"} \
            or SearchStrategy, default="bisection"
        Which λ to train (:mod:`skprune.strategies`): ``"grid"`` trains every
        λ of ``lambdas``; ``"dichotomic"`` adds, for each pair of neighbouring
        front points, the λ at which (7) ranks them equal;
        ``"stochastic_dichotomic"`` is Algorithm 3; ``"bisection"`` halves (in
        log λ) the intervals next to the knee until its neighbours lie within
        half a decade. An instance (``Bisection(resolution=0.25)``, or a
        :class:`~skprune.strategies.SearchStrategy` subclass of your own) is
        cloned at every ``fit``.
    lambdas : array-like of float or None, default=None
        The λ list of ``"grid"`` (default: 9 values log-spaced over
        ``[1e-5, 0.1]``, Reiners Fig. 9a), or the interval ``(λ1, λ2)`` of the
        adaptive strategies (default ``(1e-5, 0.1)``).
    budget : int >= 2 or None, default=None
        The most λ values to train (each on every fold). None: the whole grid,
        or 8 for the adaptive strategies. A grid longer than the budget is
        thinned evenly.
    knee : {"chord", "ideal", "one_se", "tolerance"} or callable, default="chord"
        ``"chord"``: the front point farthest from the chord between its
        extremes on normalised axes (Das 1999, Kneedle); ``"ideal"``: the
        point closest to the ideal point; ``"one_se"``: the sparsest point
        whose mean loss is within one standard error of the smallest
        (Breiman et al. 1984; glmnet's ``lambda.1se``); ``"tolerance"``: the
        least complex point whose mean loss is within ``tolerance`` of the
        smallest ("the fastest model within one point of accuracy"). A
        callable gets the front (array of ``(loss, complexity)`` rows sorted
        by complexity, collapsed points left out) and returns an index into it.
    tolerance : float >= 0 or None, default=None
        The loss margin of ``knee="tolerance"`` (required there, unused by the
        other rules), in the units of the loss: with ``scoring=None`` a
        classifier's search then scores accuracy (the loss is the error rate,
        so ``0.01`` is one point of accuracy), a regressor's the mean squared
        error; else ``scoring``'s own units.
    complexity : {"density", "omega", "flops", "latency", "features"} or callable, \
            default="density"
        The second objective of the front: the share of non-zero weights;
        the regulariser Ω of the final weights; ``"flops"``, the multiply-adds
        per sample of the compacted network (``flops_``, :mod:`skprune.cost`);
        ``"latency"``, the median seconds of ``predict_proba`` of a sparsified
        copy on ``latency_batch_size`` rows of the validation fold, measured on
        this machine (noisy under load; with skprune's thread setting,
        :func:`~skprune.set_torch_threads`); ``"features"``, the number of
        inputs with a surviving weight. A callable receives the fitted
        estimator (a pipeline's last step) and returns a number.
    latency_batch_size : int >= 1, default=256
        Rows per prediction timed by ``complexity="latency"``.
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
    vectorize : "auto" or bool, default="auto"
        Train each round's (λ, fold) pairs together (see :ref:`engine`; a
        pipeline's last step too): ``"auto"`` when the engine serves the
        settings; True: also, else warn and train each pair alone, as False does.
    devices : list of str or None, default=None
        Devices (``["cuda:0", "cuda:1"]``) given to the candidates in turn,
        through the estimator's ``device`` parameter. Use with ``n_jobs``.
    cv : int, cross-validation generator or iterable, default=None
        As in :class:`~sklearn.model_selection.GridSearchCV` (5-fold
        stratified by default).
    scoring : str, callable or None, default=None
        Gives the loss objective: None is E of eq. 7 on the validation folds,
        the cross-entropy (``"neg_log_loss"``) of a classifier or the mean
        squared error (``"neg_mean_squared_error"``) of a regressor;
        ``"accuracy"`` gives the error rate ``1 − accuracy``; any other
        scorer ``s`` gives ``−s``.
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
    strategy__<option> : any
        An option of the strategy, whether named (``strategy="dichotomic",
        strategy__per_round=2``) or an instance, as ``regularizer__<name>``
        reaches the estimators' regulariser: stored as given, listed by
        ``get_params``, searchable, and set on the strategy at every ``fit``
        (an option the strategy does not take is a ``ValueError`` there).

    Attributes
    ----------
    cv_results_ : dict of ndarray
        One row per λ (in the order trained): ``param_lam`` (and
        ``param_max_epochs`` / ``param_device`` when set), per fold and mean
        ``test_score``, ``test_accuracy``, ``test_density``, ``test_omega``,
        and the chosen complexity's ``test_<name>`` (``test_flops``,
        ``test_latency``, ``test_features``; ``test_complexity`` for a
        callable), ``rank_test_*`` (complexities ranked ascending), ``sem_test_score``
        (the standard error of the mean score: sample standard deviation over
        the folds divided by √n_folds), fit times, and ``pareto_optimal``.
        ``params`` holds ``{param_name_: λ}``.
    param_name_ : str
        The parameter searched: ``param_name``, or the one found for None.
    pareto_front_ : ndarray of shape (n_points, 2)
        Non-dominated ``(loss, complexity)`` rows, by increasing complexity.
    pareto_index_ : ndarray of int
        The ``cv_results_`` row of each front point.
    knee_ : dict
        ``"lam"``, ``"index"`` (into ``pareto_front_``), ``"cv_index"`` (row
        of ``cv_results_``), ``"loss"``, ``"density"``, ``"omega"``, the
        chosen complexity (under its ``cv_results_`` name),
        ``"loss_se"`` (its standard error), ``"accuracy"`` (when scored),
        ``"rule"``, ``"fold_lams"`` (the knee found on each fold's own front,
        ``"one_se"`` using the standard errors over all folds) and ``"stability"`` (the share of
        folds whose knee is at ``"lam"``).
    best_index_, best_params_, best_score_ :
        The knee's row, ``{param_name_: λ}``, and its mean ``test_score``.
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

    _routed_prefixes = ("strategy",)

    _parameter_constraints = {
        **{
            k: v
            for k, v in BaseSearchCV._parameter_constraints.items()
            if k not in ("scoring", "refit")
        },
        "estimator": [HasMethods(["fit", "get_params"])],
        "param_name": [str, None],
        "strategy": [StrOptions(set(STRATEGIES)), SearchStrategy],
        "lambdas": ["array-like", None],
        "budget": [Interval(Integral, 2, None, closed="left"), None],
        "knee": [StrOptions(set(KNEE_RULES)), callable],
        "tolerance": [Interval(Real, 0, None, closed="left"), None],
        "complexity": [StrOptions(set(COMPLEXITIES)), callable],
        "latency_batch_size": [Interval(Integral, 1, None, closed="left")],
        "search_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start": ["boolean"],
        "memory": [str, os.PathLike, None],
        "vectorize": [StrOptions({"auto"}), "boolean"],
        "devices": [list, None],
        "scoring": [str, callable, None],
        "refit": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        *,
        param_name=None,
        strategy="bisection",
        lambdas=None,
        budget=None,
        knee="chord",
        tolerance=None,
        complexity="density",
        latency_batch_size=256,
        search_epochs=None,
        warm_start=False,
        memory=None,
        vectorize="auto",
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
        **routed,
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
        self.tolerance = tolerance
        self.complexity = complexity
        self.latency_batch_size = latency_batch_size
        self.search_epochs = search_epochs
        self.warm_start = warm_start
        self.memory = memory
        self.vectorize = vectorize
        self.devices = devices
        self.random_state = random_state
        self._set_routed_params(routed)

    # -- fitting -------------------------------------------------------------

    @fitted_aside  # all or nothing: any exception leaves the search as it was
    def fit(self, X, y=None, **params):
        """Search λ on ``cv`` folds, find the knee, refit there.

        Returns
        -------
        self : ParetoSearchCV
        """
        self._validate_params()
        check_params(self)  # no bool where an int is asked (budget, search_epochs)
        self._check_search_params()
        estimator = self.estimator
        with (
            warm_folder(self.warm_start, self.memory) as self._warm_folder,
            vectorized(self, estimator, X, y, params) as self._train_round,
            collapses_silenced(),  # one warning for the whole search, below
        ):
            # BaseSearchCV clones ``self.estimator`` for every fit; the stand-in
            # adds the on-disk cache (see _vectorize). An exception drops the copy.
            self.estimator = CandidateFit(estimator, *self._train_round.cache)
            super().fit(X, y, **params)
        self.estimator = estimator
        del self._warm_folder, self._strategy, self._train_round
        last_round = self.__dict__.pop("_round", None)
        if hasattr(self, "best_estimator_"):
            self.best_estimator_ = self.best_estimator_.estimator
        self._set_front(self.cv_results_, last_round)
        warn_collapsed_fits(self)
        return self

    def _check_search_params(self):
        self._check_tolerance()
        self.param_name_ = searched_param(self.estimator, self.param_name)
        check_needed_params(self.estimator, {"param_name": self.param_name_, **self._extra_keys()})
        if self.devices is not None and not self.devices:
            raise ValueError("The 'devices' parameter of ParetoSearchCV must not be empty.")
        self._check_routed_params()
        strategy = build_part(self, "strategy", self.strategy, names=STRATEGIES)
        self._strategy = strategy.initialize(self.lambdas, self.budget, self.random_state)

    def _check_tolerance(self):
        if self.knee == "tolerance" and self.tolerance is None:
            raise ValueError(
                "The 'tolerance' parameter of ParetoSearchCV is required with "
                "knee='tolerance': set the loss margin, e.g. tolerance=0.01 (one point of "
                "accuracy). Got None instead."
            )
        if self.knee != "tolerance" and self.tolerance is not None:
            warnings.warn(
                f"The 'tolerance' parameter ({self.tolerance!r}) is ignored with "
                f"knee={self.knee!r}; it is the margin of knee='tolerance'.",
                UserWarning,
                stacklevel=3,
            )

    @property
    def _loss_scoring(self):
        """The scoring of the loss objective: ``scoring``, or accuracy for ``knee="tolerance"``."""
        if self.scoring is None and self.knee == "tolerance" and is_classifier(self.estimator):
            return "accuracy"
        return self.scoring

    def _extra_keys(self):
        """Estimator parameters the search sets besides λ: epochs, device, callbacks."""
        return extra_keys(self.param_name_, self.search_epochs, self.devices, self.warm_start)

    # -- the scorers: both objectives per (λ, fold) ---------------------------

    def _get_scorers(self):
        raise_exc = self.error_score == "raise"
        scorer = objective_scorer(
            self.estimator,
            self._loss_scoring,
            raise_exc,
            self.complexity,
            self.latency_batch_size,
        )
        return scorer, "score"

    # -- the search -----------------------------------------------------------

    def _run_search(self, evaluate_candidates):
        # Each round's front and knee are computed once, in _format_results.
        strategy, tried, n_round = self._strategy, [], 0
        budget, batch = strategy.budget_, strategy.first()
        while True:
            batch = [lam for lam in dict.fromkeys(map(float, batch)) if lam not in tried]
            batch = batch[: budget - len(tried)]
            if not batch:
                break
            n_round += 1
            self._evaluate(evaluate_candidates, batch, tried, n_round)
            tried += batch
            batch = strategy.propose(self._round)

    def _evaluate(self, evaluate_candidates, batch, done, n_round):
        """Train ``batch`` (λ values) after ``done`` (those of earlier rounds)."""
        extra, n_done = self._extra_keys(), len(done)
        candidates = []
        for i, lam in enumerate(batch):
            candidate = {self.param_name_: float(lam)}
            if "search_epochs" in extra:
                candidate[extra["search_epochs"]] = self.search_epochs
            if "devices" in extra:
                candidate[extra["devices"]] = self.devices[(n_done + i) % len(self.devices)]
            candidates.append(candidate)
        more = None
        if self.warm_start:
            key = extra["warm_start"]
            own = list(self.estimator.get_params()[key] or [])
            more = add_warm_start(candidates, done, self.param_name_, key, own, self._warm_folder)
        self._train_round(candidates)  # vectorize: the pairs trained together, into the cache
        results = evaluate_candidates(candidates, more_results=more)
        if self.verbose > 0:
            scoring, name = self._loss_scoring, self.param_name_
            print_progress(results, scoring, name, len(batch), n_done, n_round)

    # -- results --------------------------------------------------------------

    def _summarize(self, results, split=None):
        """Front and knee of the averaged points (or of one fold's, with all folds' errors)."""
        rule, se = self.knee, None
        if rule == "tolerance":
            tolerance = self.tolerance
            rule = lambda front: knee_tolerance(front, tolerance)  # noqa: E731
        elif isinstance(rule, str):  # a callable takes the front alone
            rule, se = KNEE_RULES[rule], results["sem_test_score"]
        lams = results[f"param_{self.param_name_}"]
        return summarize(results, lams, self._loss_scoring, self.complexity, rule, se, split)

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        results = super()._format_results(candidate_params, n_splits, out, more_results)
        for name in dict.fromkeys(("density", "omega", complexity_key(self.complexity))):
            results[f"rank_test_{name}"] = rank_up(results[f"mean_test_{name}"])
        results["sem_test_score"] = standard_error(results, n_splits)
        # Candidates trained for ``search_epochs`` on ``devices``; the refit at
        # the knee takes λ alone and the estimator's own epochs and device.
        extra = set(self._extra_keys().values())
        results["params"] = [
            {k: v for k, v in p.items() if k not in extra} for p in candidate_params
        ]
        if self.warm_start:  # the WarmStart callbacks; ``warm_start_from`` says more
            results.pop(f"param_{self._extra_keys()['warm_start']}")
        self._round = self._summarize(results)
        on_front = np.zeros(len(candidate_params), dtype=bool)
        on_front[self._round.front] = True
        results["pareto_optimal"] = on_front
        return results

    def _select_best_index(self, refit, refit_metric, results):
        return self._round.knee

    def _set_front(self, results, last_round):
        self.pareto_index_ = last_round.front
        self.pareto_front_ = last_round.points[last_round.front]
        fold_lams = [self._summarize(results, s).knee_lam for s in range(self.n_splits_)]
        rule = self.knee if isinstance(self.knee, str) else "callable"
        self.knee_ = knee_record(
            results, last_round, self._loss_scoring, rule, fold_lams, self.complexity
        )
        order = np.argsort(last_round.lams, kind="stable")
        per_split = [cv_objectives(results, self._loss_scoring, s) for s in range(self.n_splits_)]
        self.lambdas_ = last_round.lams[order]
        self.loss_path_ = np.column_stack([p[0] for p in per_split])[order]
        self.density_path_ = np.column_stack([p[1] for p in per_split])[order]
        self.n_trainings_ = len(order) * self.n_splits_

    # -- delegation -------------------------------------------------------------

    def score(self, X, y=None):
        """``best_estimator_.score(X, y)`` (accuracy for a classifier)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.score(X, y)
