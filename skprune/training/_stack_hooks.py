"""How a part trains stacked: the loop's hooks and the :class:`Stack` they receive.

skorch calls a part's ``on_train_begin``, ``on_batch_end``, ... with one net.
The stacked loop (:mod:`skprune.training._stack_loop`) trains K copies at once
and calls, at the same points, the part's *stack hooks* with one
:class:`Stack`: the copies' weights as tensors with a leading copy axis
``(K, …)``, each copy's λ, the stacked optimiser and the epoch. A part keeps
its per-copy state (masks, gates, multipliers) as tensors with that leading
axis, in ``stack.state[<its name>]`` or its own ``_`` attributes, and at the
end writes each copy's share back into that copy's own part
(``stack_end``), so that each fitted estimator looks like its separate fit.

=====================  ========================================================
skorch hook            stack hook (called with the :class:`Stack`)
=====================  ========================================================
``on_train_begin``     ``stack_begin``: before the first epoch
``on_epoch_begin``     ``stack_epoch_begin``: before each epoch
``on_batch_begin``     ``stack_batch_begin``: before each forward
``on_grad_computed``   ``stack_grad``: after the backward (``p.grad`` holds
                       ``(1 − λ)·∂E/∂w + λ·∂Ω/∂w``), before the optimiser step
``on_batch_end``       ``stack_batch_end``: after the optimiser step
``on_epoch_end``       ``stack_epoch_end``: after each epoch, before its history rows
``on_train_end``       ``stack_end``: after the last epoch, before the weights
                       are written back to the copies' nets
=====================  ========================================================

With ``validation_fraction > 0`` each copy holds out the rows its separate
fit holds out; :meth:`Stack.valid_error` gives every copy's error E on them
with the current weights (what skorch records as ``valid_loss``). A part
records per-copy history entries through :attr:`Stack.records`.
A regularizer whose Ω is not a function of the stacked weights (the gates'
expected ℓ0 norm) defines ``stack_penalty(stack)``: Ω of each copy, shape
``(K,)``, for the loss ``(1 − λ)·E + λ·Ω``; it adds λ·∂Ω/∂(its own
parameters) itself in ``stack_grad``, and the loop adds no ∂Ω/∂w.

A part trains stacked when, for every skorch hook its class overrides beyond
its base class, it also defines the matching stack hook
(:func:`missing_stack_hooks`); else the fit trains through skorch's loop and
``unstackable_reason`` names the part and the hooks it lacks.
"""

from dataclasses import dataclass, field

import torch

__all__ = ["STACK_HOOKS", "Stack", "missing_stack_hooks", "stack_parts", "call_stack_hook"]

#: skorch's hook -> the stack hook a part defines to be called in its place.
STACK_HOOKS = {
    "on_train_begin": "stack_begin",
    "on_epoch_begin": "stack_epoch_begin",
    "on_batch_begin": "stack_batch_begin",
    "on_grad_computed": "stack_grad",
    "on_batch_end": "stack_batch_end",
    "on_epoch_end": "stack_epoch_end",
    "on_train_end": "stack_end",
}


@dataclass
class Stack:
    """What a stack hook sees: K copies of one network trained as one model.

    Attributes
    ----------
    copies : list
        The copies (each with ``estimator``, ``net``, ``lam``, ``seed``, ``rows``).
    model : StackedMLP, StackedLeNet5 or FuncStack
        The stacked model; ``model.params`` maps a parameter name to its
        stacked tensor ``(K, *shape)``.
    names : list of str
        Names of the regularised weights (``"<layer>.weight"``), in the order
        of ``net.regularized_named_``.
    weights : list of torch.Tensor
        The regularised weights, stacked: ``model.params[name]`` for ``names``.
    lam : torch.Tensor of shape (K,)
        Each copy's λ.
    optimizer : torch.optim.Optimizer
        The optimiser over the stacked parameters.
    X : torch.Tensor
        All the rows the copies index into.
    epoch : int
        The epoch being trained (1-based, as skorch's history counts), 0 before.
    state : dict
        Scratch space of the parts, by name.
    rngs : list of torch.Generator or None
        Copy k's generator, in the state torch's global generator has where
        copy k's separate fit starts training (its network initialised under
        its seed): what that fit's dropout layers, and anything else that
        samples in training, draw from. A part that samples draws copy k's
        numbers from ``rngs[k]``, in the order the separate fit draws them.
        None when a copy's start state is unknown.
    valid : ValidRows or None
        The copies' validation rows (``validation_fraction > 0``), else None;
        see :meth:`valid_error`.
    training : list of bool
        Whether each copy still trains. A part that ends a copy's training
        (early stopping, in ``stack_epoch_begin``) sets its entry to False:
        from then on the copy's weights stay as they are, it gets no more
        history rows, and the stack ends when no copy trains.
    records : dict
        The epoch's history entries of each copy beyond the loop's own: a part
        that records ``key`` sets ``records[key]`` to K values (one per copy)
        before the epoch's rows are written (by ``stack_epoch_end``); the
        loop writes them into each copy's row (a part's ``penalty`` replaces the
        loop's Ω of the weights) and empties the dict.
    """

    copies: list
    model: object
    names: list
    weights: list
    lam: torch.Tensor
    optimizer: object
    X: torch.Tensor
    epoch: int = 0
    state: dict = field(default_factory=dict)
    rngs: list = None
    valid: object = None
    records: dict = field(default_factory=dict)
    training: list = field(init=False)

    def __post_init__(self):
        self.training = [True] * len(self.copies)

    @property
    def n_copies(self):
        return len(self.copies)

    def lam_as(self, w):
        """λ of each copy, shaped ``(K, 1, …, 1)`` to broadcast over ``w``."""
        return self.lam.view(-1, *[1] * (w.dim() - 1))

    def valid_error(self):
        """Each copy's error E on its own validation rows, (K,), with the current weights.

        E is the mean cross-entropy or squared error over the copy's rows, without
        Ω: skorch's ``valid_loss``. The rows are those the copy's separate fit
        holds out (``estimator._split`` with the copy's seed).

        Raises
        ------
        ValueError
            If the copies hold out no rows (``validation_fraction`` is 0).
        """
        if self.valid is None:
            raise ValueError(
                "Stack.valid_error needs validation rows; the estimators' "
                "'validation_fraction' parameter is 0."
            )
        return self.valid.error(self.model)


def missing_stack_hooks(part, base):
    """The stack hooks ``part`` lacks for the skorch hooks its class overrides beyond ``base``.

    Examples
    --------
    >>> from skorch.callbacks import Callback
    >>> class Logs(Callback):
    ...     def on_epoch_end(self, net, **kwargs):
    ...         pass
    >>> missing_stack_hooks(Logs(), Callback)
    ['stack_epoch_end']
    >>> class StackedLogs(Logs):
    ...     def stack_epoch_end(self, stack):
    ...         pass
    >>> missing_stack_hooks(StackedLogs(), Callback)
    []
    >>> class MoreLogs(StackedLogs):
    ...     def on_epoch_end(self, net, **kwargs):
    ...         pass
    >>> missing_stack_hooks(MoreLogs(), Callback)
    ['stack_epoch_end']
    """
    mro = type(part).__mro__
    missing = []
    for hook, stack_hook in STACK_HOOKS.items():
        if getattr(type(part), hook, None) is getattr(base, hook, None):
            continue  # not overridden: nothing to stand in for
        # The stack hook must come from the class that overrides the skorch hook, or below
        # it: a base's stack hook does not stand in for a subclass's own skorch hook.
        defines = [k for k, c in enumerate(mro) if hook in vars(c)]
        stands_in = [k for k, c in enumerate(mro) if stack_hook in vars(c)]
        if not stands_in or stands_in[0] > defines[0]:
            missing.append(stack_hook)
    return missing


def stack_parts(net):
    """The net's callbacks that define a stack hook (parts, schedules, early
    stopping), in the order skorch's loop calls them."""
    hooks = STACK_HOOKS.values()
    return [cb for _, cb in net.callbacks_ if any(hasattr(cb, h) for h in hooks)]


def call_stack_hook(parts, hook, stack):
    """Call ``hook`` on every part that defines it, in order."""
    for part in parts:
        method = getattr(part, hook, None)
        if method is not None:
            method(stack)
