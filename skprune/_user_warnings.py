"""Warnings that point at the user's line, and the collapse warning of a search.

``warnings.warn(stacklevel=n)`` needs the depth of the call stack between the
warning and the user's code, which differs between a plain ``fit`` (sklearn's
``_fit_context``, skprune's guards) and the engine (context-manager
decorators, which put ``contextlib.py`` in the stack). :func:`warn_user`
counts it instead: the first frame outside skprune and the libraries it calls
through. (Python 3.12's ``skip_file_prefixes`` does the same; skprune
supports 3.10.)
"""

import sys
import warnings
from contextlib import contextmanager

import numpy as np

from ._candidate import sparse_step

__all__ = ["CollapseWarning", "warn_user", "collapses_silenced", "warn_collapsed_fits"]

#: Top-level modules whose frames stand between a warning and the user's call.
_INTERNAL = frozenset({"skprune", "sklearn", "skorch", "joblib", "contextlib", "functools"})


class CollapseWarning(UserWarning):
    """A fit ended with every regularised weight at zero (the network collapsed)."""


def warn_user(message, category=UserWarning):
    """``warnings.warn(message, category)`` attributed to the first frame outside skprune."""
    frame, level = sys._getframe(1), 2  # level 2: the caller of warn_user
    while frame is not None and _is_internal(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _is_internal(frame):
    return frame.f_globals.get("__name__", "").partition(".")[0] in _INTERNAL


@contextmanager
def collapses_silenced():
    """No per-fit collapse warning inside: ``ParetoSearchCV`` warns once, after the search.

    A grid that reaches the collapse would otherwise warn once per (λ, fold)
    fit. The filter reaches joblib workers through scikit-learn's ``Parallel``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        yield


def warn_collapsed_fits(search):
    """One :class:`CollapseWarning` for all the collapsed fits of a fitted ``search``, if any."""
    message = collapse_summary(search)
    if message:
        warn_user(message, CollapseWarning)


def collapse_summary(search):
    """The sentence saying which of ``search``'s fits collapsed, or None if none did."""
    results = search.cv_results_
    density = np.array([results[f"split{s}_test_density"] for s in range(search.n_splits_)])
    collapsed = density == 0  # shape (n_splits, n_lambdas); NaN (a failed fit) is not 0
    best = getattr(search, "best_estimator_", None)
    refit = best is not None and getattr(sparse_step(best), "density_", None) == 0
    if not collapsed.any() and not refit:
        return None
    lams = np.asarray(results[f"param_{search.param_name_}"], dtype=float)
    where = ", ".join(f"{lam:.3g}" for lam in sorted(lams[collapsed.any(axis=0)]))
    fits = f"{int(collapsed.sum())} of {collapsed.size} fits of the search"
    return (
        f"The network collapsed (every regularised weight is zero) in {fits}"
        + (f" (lam in [{where}])" if where else "")
        + (", and in the refit at the knee" if refit else "")
        + ". Lower the top of 'lambdas', or the threshold, to spend the budget on "
        "networks that keep weights."
    )
