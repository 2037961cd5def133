"""Warnings that point at the user's line, and the collapse warning.

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

__all__ = ["CollapseWarning", "warn_user", "collapses_silenced"]

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
