"""What :class:`~skprune.ParetoSearchCV` trains: one (λ, fold) fit, cached on disk.

:class:`CandidateFit` stands in for the searched estimator inside
``BaseSearchCV``: it takes and reports the estimator's own parameters (so
``cv_results_`` reads ``param_lam``, not ``param_estimator__lam``), clones into
a fresh copy of itself, and fits through a folder of finished fits when
``memory`` is given, so that an interrupted search resumes without retraining
what it had finished. The scorers reach the fitted estimator through it.
"""

import os
from pathlib import Path

import joblib
from sklearn.base import clone
from sklearn.utils import get_tags

__all__ = ["CandidateFit", "fit_key", "store", "sparse_step"]

#: Parameters that change where or how loudly a fit runs, not its result.
_NOT_IN_KEY = ("device", "verbose")


def fit_key(estimator, X, y, fit_params):
    """A hash of everything a fit's result depends on: class, parameters, data.

    Parameters named ``device`` or ``verbose`` (at any depth) are left out, so
    that a fit finished on ``"cuda:0"`` is found again on ``"cuda:1"``.
    """
    params = {
        k: v
        for k, v in estimator.get_params(deep=True).items()
        if k.rpartition("__")[2] not in _NOT_IN_KEY
    }
    cls = type(estimator)
    return joblib.hash((cls.__module__, cls.__qualname__, params, X, y, fit_params))


class CandidateFit:
    """The searched estimator, fitted through an optional on-disk cache.

    Parameters
    ----------
    estimator : estimator
        Unfitted; receives every ``set_params`` call.
    memory : str, path-like or None
        Folder of finished fits (``<key>.pkl``, see :func:`fit_key`); None
        fits every time.
    prefit : dict or None
        Fits a vectorised round trained (:mod:`skprune._vectorize`), by
        :func:`fit_key`; shared by every clone, each takes its own out.
    """

    def __init__(self, estimator, memory=None, prefit=None):
        self.estimator = estimator
        self.memory = memory
        self.prefit = prefit

    def __sklearn_clone__(self):
        return CandidateFit(clone(self.estimator), self.memory, self.prefit)

    def __sklearn_tags__(self):
        return get_tags(self.estimator)

    def get_params(self, deep=True):
        return self.estimator.get_params(deep=deep)

    def set_params(self, **params):
        self.estimator.set_params(**params)
        return self

    def fit(self, X, y=None, **fit_params):
        if self.prefit and (key := fit_key(self.estimator, X, y, fit_params)) in self.prefit:
            self.estimator = self.prefit.pop(key)
            return self
        if self.memory is None:
            self.estimator.fit(X, y, **fit_params)
            return self
        path = Path(self.memory) / f"{fit_key(self.estimator, X, y, fit_params)}.pkl"
        if path.exists():
            self.estimator = joblib.load(path)
            return self
        self.estimator.fit(X, y, **fit_params)
        store(path, self.estimator)
        return self

    def __getattr__(self, name):
        # Only reached for what the wrapper lacks: predict_proba, classes_, ...
        if name.startswith("__") or name in ("estimator", "memory", "prefit"):
            raise AttributeError(name)
        return getattr(self.estimator, name)


def store(path, estimator):
    """Write a finished fit to the cache file ``path`` (``<memory>/<fit_key>.pkl``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: an interruption never leaves half a file.
    partial = path.with_name(f"{path.stem}.{os.getpid()}.part")
    joblib.dump(estimator, partial)
    os.replace(partial, path)


def sparse_step(estimator):
    """The estimator that reports ``density_``: unwraps CandidateFit and Pipeline."""
    if isinstance(estimator, CandidateFit):
        estimator = estimator.estimator
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator
