"""LOBSTER: loss-based sensitivity regularisation and its pruning stages.

Tartaglione et al., *LOBSTER: Loss-Based Sensitivity Regularization*.

Regulariser (§3.2). The sensitivity of a weight is :math:`S = |∂L/∂w|`
(eq. 3). Weights the loss is insensitive to (:math:`S < 1`) are shrunk:

.. math:: w^{t+1} = w^t - η \\frac{∂L}{∂w^t} - λ\\, w^t\\, [1 - S]\\, P(S),
   \\qquad P(x) = Θ(1 - |x|)  \\qquad \\text{(eqs. 4–5)}

:class:`LOBSTER` applies the shrinkage ``λ·w·(1−S)·P(S)``, computed at the
weights and gradient of the step, right after the optimiser step, so that it
is the same under SGD, momentum or Adam; under plain SGD the result is eq. (4)
exactly, i.e. eq. (8).

Procedure (§4). :class:`LobsterPruning` alternates a *learning stage*, which
lasts until the validation loss has not improved for ``patience`` (PWE)
epochs, and a *pruning stage* on the best network N̂ so far, which bisects for
the largest threshold T whose validation loss stays within the loss boundary
:math:`L_b = (1 + TWT)\\,\\hat L` (eq. 19) and sets ``|w| < T`` to zero for good.
It ends when a pruning stage prunes nothing (or ``max_epochs`` is spent).
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from ._pruning import Pruner, apply_masks_, module_state, stop_before_epoch
from ._regularizers import Regularizer

__all__ = [
    "lobster_shrinkage",
    "bisect_threshold",
    "validation_loss",
    "LOBSTER",
    "LobsterPruning",
]


@torch.no_grad()
def lobster_shrinkage(w, grad, lam):
    """The LOBSTER term ``λ·w·(1−S)·P(S)`` with ``S = |grad|`` (eqs. 3–5).

    ``P(S) = Θ(1 − S)`` switches the term off for sensitive weights (``S ≥ 1``).
    A missing gradient (``None``) counts as zero: the weight decays by ``λ·w``
    (eq. 11).

    Examples
    --------
    >>> w = torch.tensor([1.0, 1.0, -2.0, 0.5])
    >>> lobster_shrinkage(w, torch.tensor([0.0, 0.5, 0.25, 1.0]), lam=0.1)
    tensor([ 0.1000,  0.0500, -0.1500,  0.0000])
    """
    if grad is None:
        return lam * w.detach()
    sensitivity = grad.detach().abs()
    gate = (sensitivity < 1).to(w.dtype)
    return lam * w.detach() * (1 - sensitivity) * gate


def bisect_threshold(loss_at, t_max, bound, eps=1e-10):
    """Largest threshold T in [0, t_max] with ``loss_at(T) <= bound`` (LOBSTER §4.2).

    Starts at ``T = t_max / 2`` with step ``ΔT = T / 2``: T grows by ΔT while
    the loss stays within the boundary and shrinks by ΔT otherwise, ΔT halving
    each time, until ``ΔT <= eps``. Returns the largest T tried that kept the
    loss within the boundary (0.0 when none did), so the returned threshold is
    always admissible; the bisection assumes the loss grows with T.

    Examples
    --------
    >>> round(bisect_threshold(lambda t: t**2, t_max=1.0, bound=0.25, eps=1e-9), 6)
    0.5
    >>> bisect_threshold(lambda t: 1.0 + t, t_max=1.0, bound=0.5)
    0.0
    """
    t = t_max / 2.0
    step, best = t / 2.0, 0.0
    while True:
        if loss_at(t) <= bound:
            best = max(best, t)
            t += step
        else:
            t -= step
        step /= 2.0
        if step <= eps:
            return best


@torch.no_grad()
def validation_loss(net, dataset):
    """Mean validation loss (E) of ``net`` on ``dataset``, weighted by batch size."""
    total, count = 0.0, 0
    for batch in net.get_iterator(dataset, training=False):
        step = net.validation_step(batch)
        n = len(batch[1])
        total, count = total + float(step["loss"]) * n, count + n
    return total / max(count, 1)


class LOBSTER(Regularizer):
    r"""LOBSTER's sensitivity-based shrinkage, applied after each optimiser step.

    After the gradient of the training loss E is computed, the shrinkage
    :math:`λ\,w\,(1 - S)\,P(S)` with :math:`S = |∂E/∂w|` (eq. 4) is taken at the
    current weights; after the optimiser step it is subtracted from the
    weights. λ is the estimator's ``lam``; as LOBSTER acts outside the loss,
    the training loss is E alone (``in_loss = False``).

    ``penalty`` reports :math:`\tfrac12 \sum w^2`, the ℓ2 leading term of the
    regularisation function it minimises (eq. 13).

    Examples
    --------
    >>> LOBSTER().penalty([torch.tensor([1.0, -2.0])])
    tensor(2.5000)
    """

    in_loss = False

    def initialize(self):
        self.shrinkage_ = None
        return super().initialize()

    def penalty(self, weights):
        return sum(0.5 * w.detach().square().sum() for w in weights)

    def on_grad_computed(self, net, named_parameters, training=False, **kwargs):
        if not training or not net.lam:
            return
        self.shrinkage_ = [lobster_shrinkage(w, w.grad, net.lam) for w in net.regularized_weights()]

    @torch.no_grad()
    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.shrinkage_ is not None:
            torch._foreach_sub_(net.regularized_weights(), self.shrinkage_)
            self.shrinkage_ = None


class LobsterPruning(Pruner):
    """LOBSTER's learning and pruning stages (§4) with the pruned weights held at zero.

    Parameters
    ----------
    patience : int, default=5
        PWE: epochs without a lower validation loss that end a learning stage.
    loss_tolerance : float, default=0.05
        TWT: a pruning stage keeps the validation loss within
        ``(1 + loss_tolerance)·L̂`` (eq. 19), L̂ that of the best network N̂.
    eps : float, default=1e-10
        The bisection stops when its step ΔT is at most ``eps``.

    Notes
    -----
    A learning stage starts from the pruned network and its loss. The last
    epoch (``max_epochs``) ends with a pruning stage on N̂ whatever the
    plateau, so that the returned network is N̂ pruned. Training stops early,
    before the next epoch, once a pruning stage prunes nothing. History keys,
    on the epoch of each pruning stage: ``lobster_threshold`` (T) and
    ``event_lobster_prune`` (the number of weights it pruned).
    """

    estimator_params = ("patience", "loss_tolerance")
    incremental = False
    owns_schedule = True
    needs_validation = True
    _parameter_constraints = {
        "patience": [Interval(Integral, 1, None, closed="left")],
        "loss_tolerance": [Interval(Real, 0, None, closed="left")],
        "eps": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, patience=5, loss_tolerance=0.05, eps=1e-10):
        self.patience = patience
        self.loss_tolerance = loss_tolerance
        self.eps = eps

    def initialize(self):
        self.best_loss_ = float("inf")
        self.best_state_ = None
        self.wait_ = 0
        self.done_ = False
        self.epochs_ = 0
        return super().initialize()

    def on_train_begin(self, net, **kwargs):
        self.epochs_ = 0

    def on_train_end(self, net, **kwargs):
        self.best_state_ = None  # a copy of the network: not kept in the fitted estimator

    def on_epoch_begin(self, net, **kwargs):
        if self.done_:
            stop_before_epoch(net)

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        self.epochs_ += 1
        loss = net.history[-1, "valid_loss"]
        if loss < self.best_loss_:
            self._remember(net, loss)
        else:
            self.wait_ += 1
        if self.wait_ >= self.patience or self.epochs_ >= net.max_epochs:
            self.done_ = self._pruning_stage(net, dataset_valid) == 0

    def _remember(self, net, loss):
        self.best_loss_, self.wait_ = loss, 0
        self.best_state_ = module_state(net)

    def _pruning_stage(self, net, dataset):
        """Prune N̂ with the largest admissible T; returns how many weights it pruned."""
        net.module_.load_state_dict(self.best_state_)
        weights = net.regularized_weights()
        before = [w.detach().clone() for w in weights]

        def loss_at(t):
            _masked_copy_(weights, before, [b.abs() >= t for b in before])
            return validation_loss(net, dataset)

        bound = (1.0 + self.loss_tolerance) * loss_at(0.0)
        t_max = max(float(b.abs().max()) for b in before)
        threshold = bisect_threshold(loss_at, t_max, bound, self.eps)
        masks = [b.abs() >= threshold for b in before]
        if self.masks_ is not None:
            masks = [m & old for m, old in zip(masks, self.masks_)]
        _masked_copy_(weights, before, masks)
        pruned = sum(int((b != 0).sum() - (b * m != 0).sum()) for b, m in zip(before, masks))
        self.set_masks(net, masks)
        net.history.record("lobster_threshold", threshold)
        net.history.record("event_lobster_prune", pruned)
        self._remember(net, loss_at(threshold) if pruned else self.best_loss_)
        return pruned


@torch.no_grad()
def _masked_copy_(weights, source, masks):
    """``w = source · mask``, exact zeros outside the mask."""
    for w, src in zip(weights, source):
        w.copy_(src)
    apply_masks_(weights, masks)
