"""Early stopping on a validation score, as scikit-learn's MLP does it.

With ``early_stopping=True`` the estimator scores the held-out
``validation_fraction`` after every epoch (accuracy for a classifier, R² for a
regressor), stops once the score has not improved by at least ``tol`` for
``n_iter_no_change`` epochs in a row, and restores the weights of the best
epoch.

Stacked (:mod:`skprune.training._stack_hooks`), each copy of a stack scores
its own validation rows and stops on its own: a copy that stops is taken out
of ``Stack.training`` and keeps its weights (:class:`FrozenCopies`) while the
others train on; the stack ends when every copy has stopped.
"""

import copy
import math

import torch
from skorch.callbacks import Callback

from ..parts._pruning import module_state, stop_before_epoch

__all__ = ["EarlyStopping", "FrozenCopies", "check_stopping", "stopping_callbacks"]


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

    # -- stacked: the same rules for each copy, state with a leading copy axis ----------

    def stack_begin(self, stack):
        K = stack.n_copies
        stack.state["early_stopping"] = {
            "scores": [[] for _ in range(K)],
            "best_score": [-math.inf] * K,
            "wait": [0] * K,
            "best": None,  # {name: (K, …)} the best epoch's weights of each copy
            "has_best": torch.zeros(K, dtype=torch.bool),
        }

    def stack_epoch_begin(self, stack):
        own = stack.state["early_stopping"]
        for k, wait in enumerate(own["wait"]):
            if wait >= self.n_iter_no_change:
                stack.training[k] = False  # as stop_before_epoch: no row for this epoch

    @torch.no_grad()
    def stack_epoch_end(self, stack):
        own = stack.state["early_stopping"]
        improved = torch.zeros(stack.n_copies, dtype=torch.bool)
        for k, score in enumerate(stack.records[self.score_key]):
            if not stack.training[k]:
                continue
            own["scores"][k].append(float(score))
            no_gain = score < own["best_score"][k] + self.tol
            own["wait"][k] = own["wait"][k] + 1 if no_gain else 0
            if score > own["best_score"][k]:
                own["best_score"][k], improved[k] = float(score), True
        if improved.any():
            params = stack.model.params
            if own["best"] is None:
                own["best"] = {name: p.detach().clone() for name, p in params.items()}
            else:
                _where_copies(improved, params, own["best"], own["best"])
            own["has_best"] |= improved

    @torch.no_grad()
    def stack_end(self, stack):
        own = stack.state["early_stopping"]
        if own["best"] is not None:  # each copy back at its best epoch
            _where_copies(own["has_best"], own["best"], stack.model.params, stack.model.params)
        for k, c in enumerate(stack.copies):
            mine = dict(c.net.callbacks_)["early_stopping"]
            mine.scores_, mine.best_score_ = own["scores"][k], own["best_score"][k]
            mine.wait_, mine.best_state_ = own["wait"][k], None


def _where_copies(mask, new, old, out):
    """``out[name][k] = new[name][k]`` where ``mask[k]``, else ``old[name][k]``, in place."""
    for name, o in out.items():
        m = mask.to(o.device).view(-1, *[1] * (o.dim() - 1))
        o.copy_(torch.where(m, new[name], old[name]))


class FrozenCopies:
    """Holds still the copies of a stack that stopped training (``Stack.training``).

    The stacked optimiser moves every copy; after each step :meth:`hold` puts
    the stopped copies' weights back as they were when they stopped, and
    :attr:`states` keeps each one's optimiser state of that moment (its slice,
    ``{parameter name: {key: value}}``), so that a stopped copy ends as its
    separate fit, which stopped there.
    """

    def __init__(self, stack):
        self.stack = stack
        self.frozen = torch.zeros(stack.n_copies, dtype=torch.bool)
        self.weights, self.states = None, {}

    @torch.no_grad()
    def update(self):
        """Take note of the copies that have just stopped; True if any copy still trains."""
        stopped = ~torch.tensor(self.stack.training, dtype=torch.bool)
        new = stopped & ~self.frozen
        if new.any():
            params = self.stack.model.params
            now = {name: p.detach().clone() for name, p in params.items()}
            self.weights = now if self.weights is None else self.weights
            _where_copies(new, now, self.weights, self.weights)
            for k in new.nonzero().flatten().tolist():
                self.states[k] = {
                    name: _state_slice(self.stack.optimizer.state.get(p), p, k)
                    for name, p in params.items()
                }
            self.frozen |= new
        return not bool(stopped.all())

    @torch.no_grad()
    def hold(self):
        """Put the stopped copies' weights back (call after every optimiser step)."""
        if self.weights is not None:
            params = self.stack.model.params
            _where_copies(self.frozen, self.weights, params, params)


def _state_slice(state, stacked, k):
    """Copy k's share of one stacked parameter's optimiser state."""
    if not state:
        return None
    return {
        key: (v[k] if v.shape == stacked.shape else v).clone() if torch.is_tensor(v) else v
        for key, v in state.items()
    }


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
