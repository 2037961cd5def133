"""Search strategies: which weights λ :class:`~skprune.ParetoSearchCV` trains.

A strategy is asked twice: :meth:`SearchStrategy.first` gives the λ values of
the first round, and :meth:`SearchStrategy.propose` the next ones from a
:class:`SearchResults` — every λ trained so far with its cross-validated
point, the front and the knee, computed once per round by the search. An
empty proposal ends the search; so does the budget, which the search enforces.

Built in: :class:`Grid` (Reiners Fig. 9a), :class:`Dichotomic`,
:class:`StochasticDichotomic` (Reiners Algorithm 3) and :class:`Bisection`
(Reiners §5, §6.3.2). A new strategy is a subclass in user code, passed as
``ParetoSearchCV(strategy=MyStrategy())``.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from ..parts._part import Part
from ._pareto import log_grid, pareto_front, propose_bisection, propose_dichotomic

__all__ = [
    "STRATEGIES",
    "SearchResults",
    "SearchStrategy",
    "Grid",
    "Dichotomic",
    "StochasticDichotomic",
    "Bisection",
]

#: Reiners Fig. 9(a): weights from [1e-5, 0.1], condensed towards small values.
DEFAULT_INTERVAL = (1e-5, 1e-1)


@dataclass(frozen=True)
class SearchResults:
    """What a round of the search has found: one entry per λ, in the order trained.

    Attributes
    ----------
    lams : ndarray of shape (n,)
        The weights trained so far.
    points : ndarray of shape (n, 2)
        ``(loss, complexity)`` averaged over the folds, both minimised.
    omega : ndarray of shape (n,)
        Ω of the final weights averaged over the folds (the second objective
        of the weighted sum (7), whatever the front's complexity).
    loss_se : ndarray of shape (n,)
        Standard error of the mean loss over the folds.
    front : ndarray of int
        Rows on the Pareto front, by increasing complexity.
    knee : int
        The knee's row.
    """

    lams: np.ndarray
    points: np.ndarray
    omega: np.ndarray
    loss_se: np.ndarray
    front: np.ndarray
    knee: int

    @property
    def knee_lam(self):
        """The knee's λ."""
        return float(self.lams[self.knee])


class SearchStrategy(Part, ABC):
    """Base class of the search strategies: a first round, then proposals.

    A parameter object like the regularizers and pruners
    (:class:`~skprune._part.Part`): subclasses store their options in
    ``__init__``, declared in ``_parameter_constraints`` (so that
    ``get_params``, ``clone``, :meth:`validate` and
    ``ParetoSearchCV(strategy__option=...)`` work) and implement
    :meth:`first` and :meth:`propose`. The search clones the strategy and
    calls :meth:`initialize` at the start of every ``fit``; state made there
    ends in ``_``. By default ``lambdas`` is an interval ``(λ1, λ2)``; a
    strategy taking a list of weights overrides :meth:`check_lambdas`.
    """

    def initialize(self, lambdas=None, budget=None, random_state=None):
        """Check the options and ``lambdas``, fix budget and random generator; returns self."""
        self.validate()
        self.lambdas_ = self.check_lambdas(lambdas)
        self.budget_ = budget if budget is not None else self.default_budget()
        self.random_state_ = check_random_state(random_state)
        return self

    def check_lambdas(self, lambdas):
        """The interval ``(λ1, λ2)`` with ``0 <= λ1 < λ2 < 1`` (default ``(1e-5, 0.1)``)."""
        if lambdas is None:
            return DEFAULT_INTERVAL
        lams = _weights(lambdas)
        if lams.size != 2 or not lams[0] < lams[1]:
            raise ValueError(
                f"The 'lambdas' parameter of ParetoSearchCV must be an interval "
                f"(lam1, lam2) with lam1 < lam2 for strategy={self!r}. "
                f"Got {lams.tolist()} instead."
            )
        return tuple(lams.tolist())

    def default_budget(self):
        """The most λ values to train when ``budget=None``."""
        return 8

    @abstractmethod
    def first(self):
        """The λ values of the first round (a list of float)."""

    @abstractmethod
    def propose(self, results):
        """The next λ values given the :class:`SearchResults` so far; [] to stop."""


def _weights(lambdas):
    lams = np.asarray(lambdas, dtype=float).ravel()
    if lams.size == 0:
        raise ValueError("The 'lambdas' parameter of ParetoSearchCV must not be empty.")
    if not np.all((lams >= 0) & (lams < 1)):
        raise ValueError(
            f"The 'lambdas' parameter of ParetoSearchCV must hold weights in [0, 1). "
            f"Got {lams.tolist()} instead."
        )
    return lams


class Grid(SearchStrategy):
    """Every λ of a list, in one round (Reiners Fig. 9a).

    ``lambdas`` is the list (default: 9 values log-spaced over
    ``[1e-5, 0.1]``, or ``budget`` values when given); a list longer than the
    budget is thinned evenly.
    """

    def check_lambdas(self, lambdas):
        """The sorted unique weights (default: log-spaced over ``[1e-5, 0.1]``)."""
        if lambdas is None:
            return None
        return np.unique(_weights(lambdas))

    def initialize(self, lambdas=None, budget=None, random_state=None):
        super().initialize(lambdas, budget, random_state)
        if self.lambdas_ is None:
            self.lambdas_ = log_grid(*DEFAULT_INTERVAL, self.budget_)
        return self

    def default_budget(self):
        return 9 if self.lambdas_ is None else len(self.lambdas_)

    def first(self):
        grid = self.lambdas_
        keep = np.unique(np.round(np.linspace(0, len(grid) - 1, self.budget_)).astype(int))
        return [float(lam) for lam in grid[keep]]

    def propose(self, results):
        return []


class Dichotomic(SearchStrategy):
    """The dichotomic search: the weight at which (7) ranks two neighbours equal.

    Starts from the two ends of the interval; for each pair of neighbouring
    points of the front of (loss, Ω) adds the weight of Algorithm 3, line 11,
    until no new weight comes up (one within ``tol`` of a known one is
    dropped).

    Parameters
    ----------
    tol : float, default=1e-3
        The closeness test of Algorithm 3, line 12.
    per_round : int >= 1 or None, default=None
        The most new weights of a round, the first ones in the order of the
        front (by increasing Ω); None: all that come up. Smaller rounds spend
        the budget more adaptively; a pair left out comes up again next round.

    Examples
    --------
    >>> Dichotomic(per_round=2)
    Dichotomic(per_round=2)
    """

    _parameter_constraints = {
        "tol": [Interval(Real, 0, None, closed="left")],
        "per_round": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, tol=1e-3, per_round=None):
        self.tol = tol
        self.per_round = per_round

    def first(self):
        return list(self.lambdas_)

    def propose(self, results):
        new = propose_dichotomic(
            _omega_front(results), results.lams.tolist(), self.lambdas_, self._rng(), self.tol
        )
        return new if self.per_round is None else new[: self.per_round]

    def _rng(self):
        return None


class StochasticDichotomic(Dichotomic):
    """Algorithm 3 of Reiners et al.: the dichotomic search with random restarts.

    A new weight within ``tol`` of a known λ̂ is replaced by one drawn
    uniformly from ``[max(0.9·λ̂, λ1), min(1.1·λ̂, λ2)]`` (lines 12–14),
    seeded by the search's ``random_state``.
    """

    def _rng(self):
        return self.random_state_


def _omega_front(results):
    """The front of (loss, Ω), the objectives of (7), sorted by Ω."""
    points = np.column_stack([results.points[:, 0], results.omega])
    return points[pareto_front(points)]


class Bisection(SearchStrategy):
    """The bisection search of Reiners §5: halve the λ intervals next to the knee.

    Starts from ``n_start`` weights log-spaced over the interval (in log λ,
    since critical weights lie in a narrow range close to zero, §6.3.2), then
    halves the intervals on either side of the current knee, the side whose
    ends lie farther apart on normalised axes first. It stops, before its
    budget, once the knee's neighbours on both sides lie within
    ``resolution`` decades of it.

    Parameters
    ----------
    resolution : float > 0, default=0.5
        In decades of λ (``log10``): the knee is resolved when
        ``log10(λ_right / λ_knee) <= resolution`` and
        ``log10(λ_knee / λ_left) <= resolution``. The default is the spacing
        of Reiners' benchmark grid (9 weights over four decades, Fig. 9a):
        from 5 starting weights one halving resolves a knee that stays put.
    n_start : int >= 2, default=5
        Weights of the first round (two levels of halving of the interval).
    """

    _parameter_constraints = {
        "resolution": [Interval(Real, 0, None, closed="neither")],
        "n_start": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, resolution=0.5, n_start=5):
        self.resolution = resolution
        self.n_start = n_start

    def first(self):
        return log_grid(*self.lambdas_, min(self.budget_, self.n_start)).tolist()

    def propose(self, results):
        return propose_bisection(results.lams, results.knee_lam, results.points, self.resolution)


#: ``ParetoSearchCV(strategy=)`` name -> SearchStrategy class
STRATEGIES = {
    "grid": Grid,
    "dichotomic": Dichotomic,
    "stochastic_dichotomic": StochasticDichotomic,
    "bisection": Bisection,
}
