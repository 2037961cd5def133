"""Early stopping on a validation score, as scikit-learn's MLP does it.

With ``early_stopping=True`` the estimator scores the held-out
``validation_fraction`` after every epoch (accuracy for a classifier, R² for a
regressor), stops once the score has not improved by at least ``tol`` for
``n_iter_no_change`` epochs in a row, and restores the weights of the best
epoch.
"""

import copy
import math

import torch
from skorch.callbacks import Callback

from ..parts._pruning import module_state, stop_before_epoch

__all__ = ["EarlyStopping", "check_stopping", "stopping_callbacks"]


class EarlyStopping(Callback):
    """Stop when the validation score stalls; keep the best weights.

    Parameters
    ----------
    score_key : str
        The ``net.history`` key of the validation score (higher is better).
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
        An epoch improves on the best score only by more than ``tol``.

    Attributes
    ----------
    scores_ : list of float
        The validation score of every epoch.
    best_score_ : float
    """

    def __init__(self, score_key, n_iter_no_change=10, tol=1e-4):
        self.score_key = score_key
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol

    def initialize(self):
        self.scores_, self.best_score_, self.best_state_, self.wait_ = [], -math.inf, None, 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        if self.wait_ >= self.n_iter_no_change:
            stop_before_epoch(net)

    def on_epoch_end(self, net, **kwargs):
        score = float(net.history[-1, self.score_key])
        self.scores_.append(score)
        # sklearn's MLP: an epoch counts as no improvement unless it beats best + tol.
        self.wait_ = self.wait_ + 1 if score < self.best_score_ + self.tol else 0
        if score > self.best_score_:
            self.best_score_ = score
            self.best_state_ = module_state(net)

    @torch.no_grad()
    def on_train_end(self, net, **kwargs):
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)
            self.best_state_ = None  # a copy of the network: not kept in the fitted estimator


def check_stopping(estimator, pruner, incremental):
    """``early_stopping`` and ``partial_fit`` against the pruning mode and the split."""
    if incremental and pruner is not None and not pruner.incremental:
        raise ValueError(
            f"partial_fit cannot prune with pruning={estimator.pruning!r}: that mode needs "
            "the end of training. Use fit, or pruning='batch' or 'epoch'."
        )
    if not estimator.early_stopping:
        return
    if incremental:
        raise ValueError("early_stopping=True needs fit; partial_fit makes one pass per call.")
    if not estimator.validation_fraction:
        raise ValueError(
            "early_stopping=True scores a held-out share of the data, but the "
            "'validation_fraction' parameter is 0; set it > 0 (e.g. 0.1)."
        )
    if pruner is not None and pruner.owns_schedule:
        raise ValueError(
            f"early_stopping=True cannot be combined with pruning={estimator.pruning!r}, "
            "which decides itself how long training lasts; set early_stopping=False."
        )


def stopping_callbacks(estimator):
    """``(name, callback)`` pairs of early stopping: the validation scorer and the stopper.

    They go before the pruner, so that the best weights are restored before
    its last act.
    """
    if not estimator.early_stopping:
        return []
    key, *scorers = estimator._validation_score
    stopping = EarlyStopping(key, estimator.n_iter_no_change, estimator.tol)
    return [*copy.deepcopy(scorers), ("early_stopping", stopping)]
