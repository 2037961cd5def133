"""Model selection: ParetoSearchCV, strategies, Pareto front and knee rules, cache, warm start."""

from ._pareto import find_knee, knee_chord_distance, knee_ideal_point, knee_one_se, pareto_front
from ._search import ParetoSearchCV
from ._strategies import Bisection, Dichotomic, Grid, SearchStrategy, StochasticDichotomic

__all__ = [
    "ParetoSearchCV",
    "SearchStrategy",
    "Grid",
    "Dichotomic",
    "StochasticDichotomic",
    "Bisection",
    "pareto_front",
    "find_knee",
    "knee_chord_distance",
    "knee_ideal_point",
    "knee_one_se",
]
