"""Names of the built-in parts, mapped to their classes.

The estimators resolve every string parameter here (``regularizer="l1"``,
``pruning="batch"``, ``strategy="bisection"``, ...); no other module imports
this one, so the parts never import each other through it. Adding a built-in
part is one class in its own module plus one line below.
"""

# -- search: strategies and knee rules (ParetoSearchCV's ``strategy``, ``knee``)

from .pareto import knee_chord_distance, knee_ideal_point, knee_one_se  # noqa: E402
from .strategies import Bisection, Dichotomic, Grid, StochasticDichotomic  # noqa: E402

STRATEGIES = {
    "grid": Grid,
    "dichotomic": Dichotomic,
    "stochastic_dichotomic": StochasticDichotomic,
    "bisection": Bisection,
}
KNEE_RULES = {"chord": knee_chord_distance, "ideal": knee_ideal_point, "one_se": knee_one_se}
