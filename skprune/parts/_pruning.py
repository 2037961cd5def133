"""Pruning as skorch callbacks that act after ``optimizer.step()``.

Every pruning mode is a :class:`Pruner`: a parameter object
(:class:`~skprune._part.Part`) and a callback that reaches the regularised
weights through ``net.regularized_weights()`` and, once it has set masks,
holds them after every optimiser step, so pruned weights stay exactly zero
whatever momentum or Adam moments they carry.
"""

import functools
from numbers import Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.callbacks import Callback

from ._part import Part

__all__ = [
    "soft_threshold_",
    "apply_masks_",
    "Pruner",
    "ThresholdPruning",
    "StopTraining",
    "stop_before_epoch",
    "module_state",
]


class StopTraining(Exception):
    """Raised by a callback to end training early and normally.

    :class:`~skprune._net.SparseNet` catches it, finishes the fit as if the
    last epoch had been the last one, and lets ``KeyboardInterrupt`` through.
    """


def stop_before_epoch(net):
    """End training in ``on_epoch_begin``, before the epoch skorch has just opened.

    Stopping here rather than at the end of the last epoch lets every callback
    record that epoch first.
    """
    net.history.pop()  # the row skorch opened for an epoch that will not run
    raise StopTraining


def module_state(net):
    """A copy of ``net.module_``'s state, to restore the best network later."""
    return {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


@torch.no_grad()
def soft_threshold_(weights, threshold):
    """Set every weight with ``|w| <= threshold`` to zero, in place (Reiners §4).

    "Soft" in the paper's sense: the weights are not frozen and may grow back.
    One ``hardshrink`` kernel per tensor, written in place: an order of magnitude
    cheaper than building a boolean mask and calling ``masked_fill_``.

    Examples
    --------
    >>> w = torch.tensor([0.5, -1e-4, 2e-3, 0.0])
    >>> soft_threshold_([w], 1e-3)
    >>> w
    tensor([0.5000, 0.0000, 0.0020, 0.0000])
    """
    for w in weights:
        torch.hardshrink(w, threshold, out=w)


@torch.no_grad()
def apply_masks_(weights, masks):
    """Set the weights outside their mask to exactly zero, in place.

    Examples
    --------
    >>> w = torch.tensor([1.0, -2.0, 3.0])
    >>> apply_masks_([w], [torch.tensor([True, False, True])])
    >>> w
    tensor([1., 0., 3.])
    """
    for w, m in zip(weights, masks):
        w.masked_fill_(~m, 0.0)


class Pruner(Part, Callback):
    """Base class of the pruning modes.

    A subclass decides when to prune with skorch's hooks (``on_train_begin``,
    ``on_epoch_end``, ...) and calls :meth:`set_masks` to prune; the base class
    then holds the masks after every training step. Holding them does not
    depend on the subclass calling ``super()``: a subclass's own
    ``initialize`` and ``on_batch_end`` are wrapped when the class is made, so
    that the masks are reset and held whatever they do. Parameters are
    ``__init__`` arguments, settable as ``pruning__<name>``.

    Attributes
    ----------
    estimator_params : tuple of str, class attribute, default=()
        Estimator parameters the pruner takes as its own arguments of the same
        name when built from a name (``threshold``, ``target_density``, ...).
    needs_validation : bool, class attribute, default=False
        Whether the pruner reads the validation loss (``validation_fraction``
        must then be > 0).
    extra_epochs : int, default=0
        Epochs the estimator trains beyond ``max_epochs`` (fine-tuning).
    incremental : bool, default=True
        Whether it can prune pass by pass (``partial_fit``); ``False`` for
        modes that need the end of training.
    owns_schedule : bool, class attribute, default=False
        Whether it decides itself how long training lasts (magnitude pruning's
        fine-tuning, LOBSTER's stages); early stopping then does not apply.
    masks_ : list of bool tensors or None
        The masks held, one per regularised weight; None before pruning.
    """

    estimator_params = ()
    needs_validation = False
    extra_epochs = 0
    incremental = True
    owns_schedule = False
    masks_ = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        guards = (
            ("initialize", _resetting_masks),
            ("on_batch_end", _holding_masks),
            ("stack_batch_end", _holding_stack_masks),
        )
        for name, guard in guards:
            hook = cls.__dict__.get(name)
            if hook is not None and not getattr(hook, "_pruner_guard", False):
                setattr(cls, name, guard(hook))

    def initialize(self):
        self.masks_ = None
        return super().initialize()

    def set_masks(self, net, masks):
        """Prune ``net`` to ``masks`` now and hold them from here on."""
        self.masks_ = masks
        apply_masks_(net.regularized_weights(), masks)

    def hold_masks(self, net):
        """Set the weights outside the masks held back to zero (after a training step)."""
        if self.masks_ is not None:
            apply_masks_(net.regularized_weights(), self.masks_)

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.hold_masks(net)

    # -- the same, for K copies trained stacked (skprune.training._stack_hooks) --

    def set_stack_masks(self, stack, masks):
        """Prune every copy of ``stack`` to ``masks`` now and hold them from here on.

        ``masks`` are bool tensors, one per regularised weight, each of the
        stacked weight's shape ``(K, …)``: copy k's mask is ``mask[k]``.
        """
        stack.state[id(self)] = masks
        apply_masks_(stack.weights, masks)

    def stack_masks(self, stack):
        """The masks held for every copy of ``stack`` (``(K, …)`` bool tensors), or None."""
        return stack.state.get(id(self))

    def hold_stack_masks(self, stack):
        """:meth:`hold_masks` for every copy of ``stack``."""
        masks = stack.state.get(id(self))
        if masks is not None:
            apply_masks_(stack.weights, masks)

    def stack_batch_end(self, stack):
        self.hold_stack_masks(stack)

    def stack_end(self, stack):
        """Give each copy's own pruner its share of the masks, as its separate fit leaves them."""
        masks = stack.state.get(id(self))
        for k, copy in enumerate(stack.copies):
            if copy.pruner is not None:
                copy.pruner.masks_ = None if masks is None else [m[k].clone() for m in masks]

    def validate(self, estimator=None):
        """Check the parameters, and the pruner against ``estimator``'s settings, before ``fit``."""
        super().validate(estimator)
        if self.needs_validation and estimator is not None and not estimator.validation_fraction:
            raise ValueError(
                f"{self!r} evaluates the validation loss every epoch, but the "
                "'validation_fraction' parameter is 0; set it > 0 (e.g. 0.1)."
            )
        return self


def _resetting_masks(initialize):
    """A subclass's ``initialize``, which starts without masks whether or not it calls super."""

    @functools.wraps(initialize)
    def wrapped(self):
        self.masks_ = None
        return initialize(self)

    wrapped._pruner_guard = True
    return wrapped


def _holding_masks(on_batch_end):
    """A subclass's ``on_batch_end``, then the masks held, whether or not it calls super."""

    @functools.wraps(on_batch_end)
    def wrapped(self, net, *args, training=False, **kwargs):
        result = on_batch_end(self, net, *args, training=training, **kwargs)
        if training:
            self.hold_masks(net)
        return result

    wrapped._pruner_guard = True
    return wrapped


def _holding_stack_masks(stack_batch_end):
    """A subclass's ``stack_batch_end``, then every copy's masks held."""

    @functools.wraps(stack_batch_end)
    def wrapped(self, stack):
        result = stack_batch_end(self, stack)
        self.hold_stack_masks(stack)
        return result

    wrapped._pruner_guard = True
    return wrapped


class ThresholdPruning(Pruner):
    """Intra-training threshold pruning with τ (Reiners §4).

    All modes prune once before training ("we already start with a sparse
    initialized weight matrix") and once after the last step; ``"batch"`` also
    prunes after every optimiser step and ``"epoch"`` after every epoch. No mask
    is held: pruned weights may grow back.

    Parameters
    ----------
    threshold : float >= 0, default=1e-3
        τ; weights with ``|w| <= τ`` are set to zero.
    when : {"batch", "epoch", "after"}, default="batch"
    """

    estimator_params = ("threshold",)
    _parameter_constraints = {
        "threshold": [Interval(Real, 0, None, closed="left")],
        "when": [StrOptions({"batch", "epoch", "after"})],
    }

    def __init__(self, threshold=1e-3, when="batch"):
        self.threshold = threshold
        self.when = when

    @property
    def incremental(self):
        return self.when != "after"

    def _prune(self, net):
        soft_threshold_(net.regularized_weights(), self.threshold)

    def on_train_begin(self, net, **kwargs):
        self._prune(net)

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.when == "batch":
            self._prune(net)

    def on_epoch_end(self, net, **kwargs):
        if self.when == "epoch":
            self._prune(net)

    def on_train_end(self, net, **kwargs):
        self._prune(net)

    def _stack_prune(self, stack):
        soft_threshold_(stack.weights, self.threshold)

    def stack_begin(self, stack):
        self._stack_prune(stack)

    def stack_batch_end(self, stack):
        if self.when == "batch":
            self._stack_prune(stack)

    def stack_epoch_end(self, stack):
        if self.when == "epoch":
            self._stack_prune(stack)

    def stack_end(self, stack):
        self._stack_prune(stack)
        super().stack_end(stack)
