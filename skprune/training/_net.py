"""The skorch net behind :class:`~skprune.SparseNetClassifier`.

Two things differ from a plain skorch net:

* the loss is the weighted sum ``(1 − λ)·E + λ·Ω`` of Reiners eq. (7), made in
  one place, :meth:`SparseNet.get_loss`, with Ω's gradient taken analytically;
* batches are slices of tensors already on the device (:class:`TensorBatches`),
  not per-sample ``Dataset.__getitem__`` calls collated by a ``DataLoader``,
  which is most of skorch's overhead on small networks.
"""

import math
import re
import sys

import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback
from skorch.callbacks import PrintLog as _SkorchPrintLog

from ..metrics import count_nonzero, layer_density, regularized_layers
from ..parts._optim import MultiObjectiveOptimizer
from ..parts._pruning import StopTraining
from ._sparse_input import SparseRows, chunk_rows

__all__ = ["TensorBatches", "SparseNet", "SparseNetRegression", "SparsityHistory", "PrintLog"]

_EVAL_BATCH_SIZE = 1024


class TensorBatches:
    """Mini-batches of ``(X, y)`` tensors, reshuffled on every pass.

    The last batch may be smaller, as in Keras and ``DataLoader``. With
    ``sample_weight`` a batch is ``(X, (y, sample_weight))``.

    Examples
    --------
    >>> X, y = torch.arange(5.0)[:, None], torch.arange(5)
    >>> [len(xb) for xb, _ in TensorBatches(X, y, batch_size=2)]
    [2, 2, 1]
    """

    def __init__(self, X, y, batch_size, shuffle=False, generator=None, sample_weight=None):
        self.X, self.y = X, y
        self.batch_size = len(X) if batch_size == -1 else batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.sample_weight = sample_weight

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def _batch(self, take):
        if self.sample_weight is None:
            return take(self.X), take(self.y)
        return take(self.X), (take(self.y), take(self.sample_weight))

    def __iter__(self):
        n, size = len(self.X), self.batch_size
        if not self.shuffle:
            for start in range(0, n, size):
                yield self._batch(lambda t, start=start: t[start : start + size])
            return
        order = torch.randperm(n, generator=self.generator).to(self.X.device)
        for start in range(0, n, size):
            idx = order[start : start + size]
            yield self._batch(lambda t, idx=idx: t.index_select(0, idx))


class PrintLog(_SkorchPrintLog):
    """skorch's epoch table, coloured only on a terminal.

    skorch colours the best value of each column with ANSI codes, which
    redirected logs (a file, a CI log, a notebook's captured output) show as
    ``\x1b[32m``. Colours are kept when the table is printed to a terminal.
    """

    def format_row(self, row, key, color):
        text = super().format_row(row, key, color)
        if isinstance(text, str) and not _colour_terminal(self.sink):
            return _ANSI.sub("", text)
        return text


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _colour_terminal(sink):
    """Whether ``sink`` prints to a terminal: ``print`` to an interactive ``sys.stdout``."""
    isatty = getattr(sys.stdout, "isatty", None)
    return sink is print and isatty is not None and isatty()


class _SparseTraining:
    """A skorch net trained on ``(1 − λ)·E + λ·Ω`` (Reiners eq. 7).

    Mixed into :class:`skorch.NeuralNetClassifier` (E the cross-entropy) and
    :class:`skorch.NeuralNetRegressor` (E the mean squared error).

    Parameters
    ----------
    module, criterion, optimizer, ... :
        As for :class:`skorch.NeuralNet`.
    regularizer : Regularizer or None, default=None
        Ω, a :class:`skprune.regularizers.Regularizer`.
    lam : float, default=0.0
        λ ∈ [0, 1).
    regularized_layers : {"dense", "all"} or list of str, default="dense"
        See :func:`skprune.metrics.regularized_layers`.
    seed : int or None, default=None
        Seeds the shuffling of the training batches.
    """

    def __init__(
        self,
        module,
        *args,
        regularizer=None,
        lam=0.0,
        regularized_layers="dense",
        seed=None,
        **kwargs,
    ):
        super().__init__(module, *args, **kwargs)
        self.regularizer = regularizer
        self.lam = lam
        self.regularized_layers = regularized_layers
        self.seed = seed
        #: Per-sample weights of the training rows (a tensor), or None; set by the estimator.
        self.train_sample_weight = None

    def get_default_callbacks(self):
        # PrintLog comes last, from the estimator, so that it sees what the
        # sparsity callbacks record at the end of each epoch.
        return [(n, cb) for n, cb in super().get_default_callbacks() if n != "print_log"]

    def initialize_module(self):
        super().initialize_module()
        self.regularized_named_ = regularized_layers(self.module_, self.regularized_layers)
        return self

    def __setstate__(self, state):
        # skorch pickles ``module_`` apart from the other attributes (as bytes,
        # for CUDA), so the layers in ``regularized_named_`` would come back as
        # copies detached from ``module_``: look them up again.
        super().__setstate__(state)
        if getattr(self, "initialized_", False) and hasattr(self, "regularized_named_"):
            self.regularized_named_ = regularized_layers(self.module_, self.regularized_layers)

    @torch.no_grad()
    def sparsity_summary(self):
        """Counted sparsity and Ω of the regularised weights, as they are now.

        Returns a dict with ``n_nonzero``, ``n_weights``, ``density`` (1.0 when
        nothing is regularised), ``layer_density`` (name -> density) and
        ``penalty`` (Ω, 0.0 without a regularizer).
        """
        named = self.named_regularized_weights()
        weights = [w for _, w in named]
        nonzero, total = count_nonzero(weights)
        reg = self.regularizer
        return {
            "n_nonzero": nonzero,
            "n_weights": total,
            "density": nonzero / total if total else 1.0,
            "layer_density": layer_density(named),
            "penalty": float(reg.penalty(weights)) if reg is not None and weights else 0.0,
        }

    def named_regularized_weights(self):
        """``(layer name, weight)`` of the regularised layers."""
        return [(name, layer.weight) for name, layer in self.regularized_named_]

    def regularized_weights(self):
        return [layer.weight for _, layer in self.regularized_named_]

    def partial_fit(self, X, y=None, classes=None, epochs=None, **fit_params):
        """skorch's ``partial_fit`` for ``epochs`` epochs; ``KeyboardInterrupt`` propagates.

        skorch ends training quietly on ``KeyboardInterrupt`` and would return a
        network trained for fewer epochs than asked as if it were finished;
        callbacks that end training early raise :class:`StopTraining` instead.
        """
        if not self.initialized_:
            self.initialize()
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, epochs=epochs, **fit_params)
        except StopTraining:
            pass
        self.notify("on_train_end", X=X, y=y)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        reg, weights = self.regularizer, self.regularized_weights()
        self._penalized = bool(reg is not None and self.lam > 0 and weights and reg.in_loss)
        if isinstance(self.optimizer_, MultiObjectiveOptimizer):
            # Reiners §3.2: E is the loss, Ω goes to the optimiser apart.
            self._penalized = False
            self.optimizer_.set_objective(reg, weights)
        if getattr(self, "_generator", None) is None:  # kept across partial_fit calls
            self._generator = torch.Generator()
            if self.seed is not None:
                self._generator.manual_seed(self.seed)
        self.reset_error()

    def reset_error(self):
        """Start a new running mean of the training error E."""
        self._error_batches, self._error_sizes = [], []

    def mean_error(self):
        """Mean training error E since :meth:`reset_error`, or NaN."""
        if not self._error_sizes:
            return float("nan")
        sizes = torch.stack([torch.as_tensor(n, dtype=torch.float32) for n in self._error_sizes])
        error, sizes = torch.stack(self._error_batches).float().cpu(), sizes.cpu()
        return float((error * sizes).sum() / sizes.sum())

    def get_loss(self, y_pred, y_true, X=None, training=False):
        weight = None
        if isinstance(y_true, tuple):
            y_true, weight = y_true
        error = self._error(y_pred, y_true, weight, X, training)
        if not training:
            return error
        # Kept as tensors and reduced once per epoch: no kernel, no sync per batch.
        self._error_batches.append(error.detach())
        self._error_sizes.append(len(y_true) if weight is None else weight.sum())
        if not self._penalized:
            return error
        omega = self.regularizer.loss_term(self.regularized_weights())
        return (1.0 - self.lam) * error + self.lam * omega

    def _error(self, y_pred, y_true, weight, X, training):
        """E of the batch: the criterion's mean, or its weighted mean ``Σ wᵢℓᵢ / Σ wᵢ``."""
        if weight is None:
            return super().get_loss(y_pred, y_true, X=X, training=training)
        y_pred = y_pred[0] if isinstance(y_pred, tuple) else y_pred
        losses = type(self.criterion_)(reduction="none")(y_pred, y_true)
        losses = losses.reshape(len(losses), -1).mean(dim=1)  # per sample, over outputs
        return (weight * losses).sum() / weight.sum().clamp_min(1e-12)

    def _set_training(self, training=True):
        # skorch calls this for every batch; walking the module tree each time
        # is measurable on small networks.
        if self.module_.training != training:
            super()._set_training(training)

    def _zero_grad_optimizer(self, set_to_none=None):
        super()._zero_grad_optimizer(set_to_none=True)

    def get_iterator(self, dataset, training=False):
        X, y = dataset.X, dataset.y
        if not (isinstance(X, (torch.Tensor, SparseRows)) and isinstance(y, torch.Tensor)):
            return super().get_iterator(dataset, training=training)
        prefix = "iterator_train" if training else "iterator_valid"
        # Evaluation batches only need memory: larger ones predict faster and give
        # the same (size-weighted) validation loss. Wide sparse rows densify fewer.
        default = self.batch_size if training else max(self.batch_size, _EVAL_BATCH_SIZE)
        default = default if training else chunk_rows(X, default)
        batch_size = self.get_params_for(prefix).get("batch_size", default)
        generator = getattr(self, "_generator", None) if training else None
        weight = self.train_sample_weight if training else None
        return TensorBatches(X, y, batch_size, training, generator, sample_weight=weight)


class SparseNet(_SparseTraining, NeuralNetClassifier):
    """The skorch net of :class:`~skprune.SparseNetClassifier`: E is the cross-entropy."""

    error_key = "ce"


class SparseNetRegression(_SparseTraining, NeuralNetRegressor):
    """The skorch net of :class:`~skprune.SparseNetRegressor`: E is the mean squared error."""

    error_key = "mse"


class SparsityHistory(Callback):
    """Records, per epoch, E, Ω and the density of the regularised layers.

    Keys written to ``net.history``: ``ce`` or ``mse`` (``net.error_key``: the
    mean training error E of the epoch), ``penalty`` (Ω of the weights at the end of the epoch),
    ``density``, ``n_nonzero`` and ``layer_density`` (dict name -> density).
    """

    def on_epoch_end(self, net, **kwargs):
        summary = net.sparsity_summary()
        net.history.record(net.error_key, net.mean_error())
        for key in ("penalty", "n_nonzero", "density", "layer_density"):
            net.history.record(key, summary[key])
        net.reset_error()
