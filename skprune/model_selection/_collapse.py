"""The one collapse warning of a search: which of its fits ended with every weight at zero."""

import numpy as np

from ..estimators._user_warnings import CollapseWarning, warn_user
from ._candidate import sparse_step

__all__ = ["warn_collapsed_fits", "collapse_summary"]


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
