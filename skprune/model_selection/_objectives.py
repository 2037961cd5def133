"""The two objectives of :class:`~skprune.ParetoSearchCV` per (λ, fold).

Every candidate fit is scored on its validation part by a multi-metric
scorer: the loss objective (``score``, and ``accuracy`` for a classifier)
and the complexity, read from the fitted network (``density``, ``omega``).
:func:`cv_objectives` turns the rows of ``cv_results_`` back into the two
minimised objectives of Reiners et al. (6): the loss E and the complexity;
:func:`summarize` gives their front and knee, and :func:`knee_record` the
search's ``knee_``.
"""

import numpy as np
from scipy.stats import rankdata
from sklearn.base import is_classifier
from sklearn.metrics import check_scoring

from ._candidate import sparse_step
from ._pareto import find_knee
from ._strategies import SearchResults

__all__ = [
    "print_progress",
    "COMPLEXITIES",
    "objective_scorer",
    "cv_objectives",
    "standard_error",
    "rank_up",
    "summarize",
    "knee_record",
]

#: Scorers whose value v gives the loss objective 1 − v (an error rate).
_RATE_SCORERS = ("accuracy", "balanced_accuracy")
#: The complexity objectives, read from the fitted network.
COMPLEXITIES = ("density", "omega")


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


def objective_scorer(estimator, scoring, raise_exc):
    """The scorers of ``score`` (the loss), ``accuracy``, ``density`` and ``omega``.

    ``scoring=None`` is E of eq. (7) on the validation fold: the cross-entropy
    (``"neg_log_loss"``) for a classifier, the mean squared error
    (``"neg_mean_squared_error"``) for a regressor.
    """
    default = "neg_log_loss" if is_classifier(estimator) else "neg_mean_squared_error"
    scorers = {"score": check_scoring(estimator, scoring or default)}
    if scoring != "accuracy" and is_classifier(estimator):
        scorers["accuracy"] = check_scoring(estimator, "accuracy")
    scorers.update(density=_AttributeScorer(_density), omega=_AttributeScorer(_omega))
    # A dict gives scikit-learn's own multi-metric scorer, by public API.
    return check_scoring(estimator, scorers, raise_exc=raise_exc)


def cv_objectives(results, scoring, split=None):
    """Per row: (loss, density, omega), averaged over folds or of one split.

    The loss is ``1 − score`` for a rate (``"accuracy"``: the error rate) and
    ``−score`` otherwise (``"neg_log_loss"``: the cross-entropy).
    """
    prefix = "mean_test" if split is None else f"split{split}_test"
    offset = 1.0 if scoring in _RATE_SCORERS else 0.0
    loss = offset - np.asarray(results[f"{prefix}_score"], dtype=float)
    density = np.asarray(results[f"{prefix}_density"], dtype=float)
    return loss, density, np.asarray(results[f"{prefix}_omega"], dtype=float)


def standard_error(results, n_splits, key="score"):
    """Standard error of each row's mean: ``std(ddof=1) / √n_splits`` (NaN for one split).

    Examples
    --------
    >>> results = {"split0_test_score": [0.1, 0.5], "split1_test_score": [0.3, 0.5]}
    >>> standard_error(results, 2).round(3).tolist()
    [0.1, 0.0]
    """
    splits = np.column_stack([results[f"split{s}_test_{key}"] for s in range(n_splits)])
    if n_splits < 2:
        return np.full(len(splits), np.nan)
    return np.std(splits.astype(float), axis=1, ddof=1) / np.sqrt(n_splits)


def rank_up(values):
    """Ranks for a minimised objective (1 = smallest; NaN last)."""
    values = np.nan_to_num(np.asarray(values, dtype=float), nan=np.inf)
    return rankdata(values, method="min").astype(np.int32)


def summarize(results, lams, scoring, complexity, rule, loss_se=None, split=None):
    """The :class:`~skprune.strategies.SearchResults` of ``cv_results_`` rows.

    Points averaged over the folds (or of one ``split``), their front and the
    knee by ``rule`` (:func:`~skprune.pareto.find_knee`; collapsed networks,
    density 0, are never the knee).
    """
    loss, density, omega = cv_objectives(results, scoring, split)
    points = np.column_stack([loss, density if complexity == "density" else omega])
    front, knee = find_knee(points, density == 0, rule, loss_se)
    se = np.asarray(results["sem_test_score"], dtype=float)
    return SearchResults(np.asarray(lams, dtype=float), points, omega, se, front, knee)


def knee_record(results, summary, scoring, rule_name, fold_lams):
    """The search's ``knee_`` dict: the knee's λ, objectives, rule and fold agreement."""
    loss, density, omega = cv_objectives(results, scoring)
    knee, lam = summary.knee, summary.knee_lam
    record = {
        "lam": lam,
        "index": int(np.flatnonzero(summary.front == knee)[0]),
        "cv_index": int(knee),
        "loss": float(loss[knee]),
        "loss_se": float(summary.loss_se[knee]),
        "density": float(density[knee]),
        "omega": float(omega[knee]),
        "rule": rule_name,
        "fold_lams": [float(x) for x in fold_lams],
        "stability": float(np.mean(np.isclose(fold_lams, lam))),
    }
    if "mean_test_accuracy" in results or scoring == "accuracy":
        key = "accuracy" if "mean_test_accuracy" in results else "score"
        record["accuracy"] = float(results[f"mean_test_{key}"][knee])
    return record


def print_progress(results, scoring, param_name, n_new, n_done, n_round):
    """One line per λ of the last ``n_new`` rows of ``results`` (``verbose > 0``).

    It counts the λ trained so far, not out of the budget: an adaptive
    strategy may stop before spending it.
    """
    loss, density, _ = cv_objectives(results, scoring)
    lam = results[f"param_{param_name}"]
    for j, row in enumerate(range(len(loss) - n_new, len(loss))):
        print(
            f"[ParetoSearchCV] round {n_round}, lambda #{n_done + j + 1}: "
            f"lam={float(lam[row]):.3g} loss={loss[row]:.4f} density={density[row]:.4f}",
            flush=True,
        )
