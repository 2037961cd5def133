"""The two objectives of :class:`~skprune.ParetoSearchCV` per (λ, fold).

Every candidate fit is scored on its validation part by a multi-metric
scorer: the loss objective (``score``, and ``accuracy`` for a classifier)
and the complexities, read from the fitted network (``density``, ``omega``,
and the search's own ``complexity`` when it is another: ``flops``,
``features``, ``latency`` measured on a sparsified copy, or a callable's
value under the key ``complexity``).
:func:`cv_objectives` turns the rows of ``cv_results_`` back into the two
minimised objectives of Reiners et al. (6): the loss E and the complexity;
:func:`summarize` gives their front and knee, and :func:`knee_record` the
search's ``knee_``.
"""

import copy
import time

import numpy as np
from scipy.stats import rankdata
from sklearn.base import is_classifier
from sklearn.metrics import check_scoring

from ..cost import is_chain, live_units, trace_layers
from ..training._threads import torch_threads
from ._candidate import sparse_step
from ._pareto import find_knee
from ._strategies import SearchResults

__all__ = [
    "print_progress",
    "COMPLEXITIES",
    "complexity_key",
    "complexity_values",
    "measure_latency",
    "n_features_used",
    "objective_scorer",
    "cv_objectives",
    "standard_error",
    "rank_up",
    "summarize",
    "knee_record",
]

#: Scorers whose value v gives the loss objective 1 − v (an error rate).
_RATE_SCORERS = ("accuracy", "balanced_accuracy")
#: The complexity objectives by name, read from the fitted network or measured on it.
COMPLEXITIES = ("density", "omega", "flops", "latency", "features")
#: Those scored for every search: the knee record and collapse detection read them.
_ALWAYS = ("density", "omega")
#: Repeats of the latency measurement (after one warm-up call); the median is kept.
LATENCY_REPEATS = 5


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


def _flops(step):
    """Multiply-adds per sample of the compacted network (``flops_``)."""
    return step.flops_


@torch_threads()  # one thread: tiny tensors
def n_features_used(step):
    """The number of inputs with a surviving weight: the first layer's live inputs.

    Counted as compaction keeps them (:func:`skprune.cost.live_units`): an input
    whose weights all lead to removed units is not used. For a first
    convolution, its input channels.

    Examples
    --------
    >>> import numpy as np
    >>> from skprune import SparseNetClassifier
    >>> X, y = np.eye(6, dtype=np.float32)[:, :4], [0, 1, 0, 1, 0, 1]
    >>> clf = SparseNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    >>> _ = clf.net_.module_.layer1.weight.data[:, 1:].zero_()
    >>> n_features_used(clf)
    1
    """
    module = step.net_.module_
    traced = trace_layers(module, tuple(step._input_shape))
    if not is_chain(module):  # each layer alone: the first one's non-zero input columns
        return int(traced[0][1].weight.detach().transpose(0, 1).flatten(1).ne(0).any(1).sum())
    live = live_units([layer.weight.detach() for _, layer, _ in traced])
    return int(live[0][1].sum())


def measure_latency(step, X, batch_size, repeats=LATENCY_REPEATS):
    """Median seconds of ``predict_proba`` of a sparsified copy on ``batch_size`` rows.

    The rows are those of ``X`` (repeated when there are fewer), the copy is
    made by ``copy.deepcopy`` and :meth:`~skprune.SparseNetClassifier.sparsify`
    (``step`` is not changed); one warm-up call, then ``repeats`` timed ones on
    this machine, with skprune's thread setting
    (:func:`~skprune.set_torch_threads`).
    """
    deployed = copy.deepcopy(step).sparsify()
    predict = getattr(deployed, "predict_proba", deployed.predict)
    rows = np.resize(np.arange(len(X)), batch_size)
    batch = X[rows] if not hasattr(X, "iloc") else X.iloc[rows]
    predict(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


class _LatencyScorer:
    """Scorer measuring the latency of the fitted network on rows of the validation fold."""

    def __init__(self, batch_size):
        self.batch_size = batch_size

    def __call__(self, estimator, X, y=None, sample_weight=None):
        return measure_latency(sparse_step(estimator), X, self.batch_size)

    def _accept_sample_weight(self):
        return True


class _CallableScorer:
    """Scorer calling the user's complexity on the fitted estimator."""

    def __init__(self, function):
        self.function = function

    def __call__(self, estimator, X, y=None, sample_weight=None):
        value = self.function(sparse_step(estimator))
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(
                "The 'complexity' callable of ParetoSearchCV must return a number for the "
                f"fitted estimator. Got {value!r} instead."
            ) from None

    def _accept_sample_weight(self):
        return True


def complexity_key(complexity):
    """The ``cv_results_`` key of a complexity: its name, or ``"complexity"`` for a callable.

    Examples
    --------
    >>> complexity_key("flops"), complexity_key(len)
    ('flops', 'complexity')
    """
    return complexity if isinstance(complexity, str) else "complexity"


def _complexity_scorer(complexity, latency_batch_size):
    if callable(complexity):
        return _CallableScorer(complexity)
    if complexity == "latency":
        return _LatencyScorer(latency_batch_size)
    read = {"flops": _flops, "features": n_features_used}[complexity]
    return _AttributeScorer(read)


def objective_scorer(estimator, scoring, raise_exc, complexity="density", latency_batch_size=256):
    """The scorers of ``score`` (the loss), ``accuracy``, ``density``, ``omega`` and ``complexity``.

    ``scoring=None`` is E of eq. (7) on the validation fold: the cross-entropy
    (``"neg_log_loss"``) for a classifier, the mean squared error
    (``"neg_mean_squared_error"``) for a regressor. A ``complexity`` other than
    ``"density"`` and ``"omega"`` adds its scorer under :func:`complexity_key`.
    """
    default = "neg_log_loss" if is_classifier(estimator) else "neg_mean_squared_error"
    scorers = {"score": check_scoring(estimator, scoring or default)}
    if scoring != "accuracy" and is_classifier(estimator):
        scorers["accuracy"] = check_scoring(estimator, "accuracy")
    scorers.update(density=_AttributeScorer(_density), omega=_AttributeScorer(_omega))
    if complexity_key(complexity) not in _ALWAYS:
        scorers[complexity_key(complexity)] = _complexity_scorer(complexity, latency_batch_size)
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


def complexity_values(results, complexity, split=None):
    """The complexity objective per row of ``cv_results_``, averaged over folds or of one split.

    Examples
    --------
    >>> complexity_values({"mean_test_flops": [10, 20]}, "flops").tolist()
    [10.0, 20.0]
    """
    prefix = "mean_test" if split is None else f"split{split}_test"
    return np.asarray(results[f"{prefix}_{complexity_key(complexity)}"], dtype=float)


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
    points = np.column_stack([loss, complexity_values(results, complexity, split)])
    front, knee = find_knee(points, density == 0, rule, loss_se)
    se = np.asarray(results["sem_test_score"], dtype=float)
    return SearchResults(np.asarray(lams, dtype=float), points, omega, se, front, knee)


def knee_record(results, summary, scoring, rule_name, fold_lams, complexity="density"):
    """The search's ``knee_`` dict: the knee's λ, objectives, rule and fold agreement."""
    loss, density, omega = cv_objectives(results, scoring)
    key = complexity_key(complexity)
    knee, lam = summary.knee, summary.knee_lam
    record = {
        "lam": lam,
        "index": int(np.flatnonzero(summary.front == knee)[0]),
        "cv_index": int(knee),
        "loss": float(loss[knee]),
        "loss_se": float(summary.loss_se[knee]),
        "density": float(density[knee]),
        "omega": float(omega[knee]),
        key: float(complexity_values(results, complexity)[knee]),
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
