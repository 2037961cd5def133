"""Vectorised search rounds: a round's (λ, fold) pairs trained together.

With ``ParetoSearchCV(vectorize=...)`` on, each round first trains all its
(λ, fold) pairs with the stacked engine (:func:`skprune.engine.train_stackable`)
and hands every finished fit, under the key :func:`~skprune._candidate.fit_key`
gives it, to the :class:`~skprune._candidate.CandidateFit` that
``evaluate_candidates`` then clones and fits: it takes its fit instead of
training, so scoring, ``cv_results_``, ``n_jobs`` and the refit stay
scikit-learn's. What the round does not hand over (pairs whose settings the
engine does not serve, a copy that diverged) trains there alone, as without
``vectorize``, and fails as its own fit fails.

With one job the fits are handed over in memory (the ``prefit`` mapping every
clone shares), and also written to ``memory`` when it is set. With ``n_jobs``
> 1 the pairs are split into ``n_jobs`` stacks trained in parallel by joblib;
each worker writes its fits to the cache folder (``memory``, or a temporary
folder all workers must see), where the candidates' workers load them — which
costs a pickling per fit (about 0.05 s for a 20-epoch digits MLP, its history
included).

A pipeline whose last step is the network (``StandardScaler`` then
``SparseNetClassifier``) is trained the same way: the engine fits its earlier
steps once per fold and stacks the networks (see
:func:`~skprune.engine.train_stackable`).
"""

import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params

from ..training._engine import train_stackable, unstackable_reason
from ._candidate import fit_key, store_or_warn

__all__ = ["vectorize_reason", "vectorized"]


def vectorize_reason(search, estimator, fit_params):
    """Why ``search`` cannot train its rounds together (a sentence), or None if it can."""
    if search.warm_start:
        return "warm_start=True adds a WarmStart callback, which the engine does not serve"
    if fit_params:
        return f"fit parameters {sorted(fit_params)} are passed"
    cv = search.cv  # a splitter object; ints and iterables give fixed folds
    if getattr(cv, "shuffle", False) and getattr(cv, "random_state", 0) is None:
        return "cv shuffles without a random_state, so its folds are not known in advance"
    if isinstance(estimator, Pipeline):
        last = estimator.steps[-1][0]
        name = search.param_name or f"{last}__lam"  # None: the last step's (_search_params)
        if name != f"{last}__lam":
            return f"param_name={name!r} is not the lam of the last step {last!r}"
        estimator = estimator.steps[-1][1]
    try:
        return unstackable_reason(estimator)
    except Exception as exc:  # invalid settings: the usual fits report them
        return f"its settings do not build ({exc})"


class RoundTrainer:
    """Trains a round's (candidate, fold) pairs into ``prefit`` or ``memory``; off: nothing."""

    def __init__(self, memory, search=None, estimator=None, X=None, y=None, params=None):
        self.memory, self.search, self.estimator = memory, search, estimator
        self.X, self.y, self.params, self.splits = X, y, params, None
        self.prefit = {}
        self.unwritable = set()  # folders whose write failed: warned about once

    @property
    def cache(self):
        """``(memory, prefit, unwritable)``: where the candidates find the round's fits."""
        return self.memory, self.prefit, self.unwritable

    def __call__(self, candidates):
        if self.search is None:
            return
        if self.splits is None:  # the folds BaseSearchCV made, after it made them
            split = self.search._get_routed_params_for_fit(self.params).splitter.split
            cv = getattr(self.search, "_checked_cv_orig", None)  # set by fit from sklearn 1.7
            if cv is None:  # the same check_cv call as BaseSearchCV.fit's
                cv = check_cv(
                    self.search.cv, self.y, classifier=is_classifier(self.search.estimator)
                )
            self.splits = [t for t, _ in cv.split(self.X, self.y, **split)]
        todo = [pair for params in candidates for pair in self._pairs(params)]
        n = min(joblib.effective_n_jobs(self.search.n_jobs), len(todo))
        if n <= 1:
            self.prefit.update(_train(todo, self.X, self.y, self.memory, self.unwritable, True))
            return
        stacks = [[todo[i] for i in chunk] for chunk in np.array_split(range(len(todo)), n)]
        # scikit-learn's Parallel: the workers get the config and warning filters.
        Parallel(n_jobs=n, pre_dispatch=self.search.pre_dispatch)(
            delayed(_train)(stack, self.X, self.y, self.memory, self.unwritable) for stack in stacks
        )

    def _pairs(self, params):
        """``(estimator, train rows, key)`` of each fold not already in ``memory``."""
        for train in self.splits:
            est = clone(self.estimator).set_params(**params)
            X, y = _safe_indexing(self.X, train), _safe_indexing(self.y, train)
            key = fit_key(est, X, y, {})
            if self.memory is None or not (Path(self.memory) / f"{key}.pkl").exists():
                yield est, train, key


def _train(stack, X, y, memory, unwritable=None, keep=False):
    """Train ``stack`` together; store the fits in ``memory``; return ``{key: fit}`` if ``keep``.

    A fit that cannot be stored (a full disk) warns: kept, it is handed over;
    else its candidate trains it again, as without ``vectorize``.
    """
    if not stack:
        return {}
    estimators, rows, keys = zip(*stack)
    done = train_stackable(estimators, X, y, rows)
    fits = {key: est for est, key, ok in zip(estimators, keys, done) if ok}
    if memory is not None:
        for key, est in fits.items():
            store_or_warn(Path(memory) / f"{key}.pkl", est, unwritable)
    return fits if keep else {}


@contextmanager
def vectorized(search, estimator, X, y, params):
    """The search's :class:`RoundTrainer` for one ``fit``, and its cache folder.

    Off (``vectorize=False``, or ``"auto"``/``True`` with settings the engine
    does not serve, ``True`` then warning why), it trains nothing and the
    folder is ``memory``. On, the folder is ``memory``, or with ``n_jobs`` > 1
    a temporary folder removed when the search ends.
    """
    X, y = indexable(X, y)
    params = _check_method_params(X, params=params)
    fit_params = {k: v for k, v in params.items() if k != "groups"}
    mode = search.vectorize if isinstance(search.vectorize, str) else bool(search.vectorize)
    reason = None if mode is False else vectorize_reason(search, estimator, fit_params)
    if mode is False or reason is not None:
        if mode is True:
            warnings.warn(
                f"ParetoSearchCV(vectorize=True) trains each (λ, fold) pair alone: {reason}.",
                UserWarning,
                stacklevel=4,
            )
        yield RoundTrainer(search.memory)
        return
    folder, temporary = search.memory, False
    if folder is None and joblib.effective_n_jobs(search.n_jobs) > 1:
        folder, temporary = tempfile.mkdtemp(prefix="skprune-"), True
    trainer = RoundTrainer(folder, search, estimator, X, y, params)
    try:
        yield trainer
    finally:
        trainer.prefit.clear()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
