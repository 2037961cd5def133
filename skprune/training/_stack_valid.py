"""The copies' validation rows in a stack, and what skorch's loop records of them.

With ``validation_fraction > 0`` a separate fit holds out the rows that
``estimator._split`` draws with the fit's seed and, after every epoch's
batches, skorch's loop evaluates them: ``valid_loss`` (E alone, the mean over
the rows, without Ω) and the scorers the net carries (``valid_acc`` of a
classifier, ``valid_r2`` with a regressor's early stopping), each with its
``…_best`` flag. :class:`ValidRows` does the same for K copies at once: each
copy has its own rows (``_Copy.valid_rows`` into the data, ``_Copy.valid_y``),
padded to one length; :meth:`ValidRows.error` is what
:meth:`~skprune.training._stack_hooks.Stack.valid_error` returns to a part.
"""

import numpy as np
import torch
from sklearn.metrics import accuracy_score, r2_score
from torch.nn.utils.rnn import pad_sequence

from ._net import _EVAL_BATCH_SIZE
from ._sparse_input import chunk_rows

__all__ = ["ValidRows"]

#: scorer name in ``net.callbacks_`` -> (score of (y_true, prediction), higher is better)
_SCORERS = {"valid_acc": accuracy_score, "valid_r2": r2_score}


class ValidRows:
    """Each copy's validation rows, evaluated together with the stacked weights.

    Parameters
    ----------
    copies : list of _Copy
        Each with ``valid_rows`` (indices into ``X``) and ``valid_y``.
    X : torch.Tensor or SparseRows
        The rows the indices point into.
    rows_error : callable
        E's rows and gradient (:func:`~skprune.training._stacked.error_grad`).
    batch_size : int
        The copies' training batch size: evaluation takes ``max(batch_size, 1024)``
        rows at a time (fewer of wide sparse rows), as skorch's validation batches do.
    """

    def __init__(self, copies, X, rows_error, batch_size):
        self.X, self.rows_error = X, rows_error
        self.sizes = [len(c.valid_rows) for c in copies]
        device = copies[0].rows.device
        self.rows = pad_sequence([c.valid_rows.to(device) for c in copies], batch_first=True)
        self.y = pad_sequence([c.valid_y.to(device) for c in copies], batch_first=True)
        self.counts = torch.tensor(self.sizes, device=device)
        positions = torch.arange(self.rows.shape[1], device=device)
        self.mask = (positions < self.counts[:, None]).float()
        self.shared = all(torch.equal(self.rows[0], r) for r in self.rows[1:])
        # As skorch's validation batches (SparseNet.get_iterator): fewer for wide sparse rows.
        self.chunk = chunk_rows(X, max(batch_size, _EVAL_BATCH_SIZE))
        self.y_true = [c.valid_y.cpu().numpy() for c in copies]
        net = copies[0].net
        self.scorers = [name for name in _SCORERS if name in dict(net.callbacks_)]
        self.best = {key: [None] * len(copies) for key in ("valid_loss", *self.scorers)}

    @torch.no_grad()
    def outputs(self, model):
        """The copies' outputs on their rows, (K, C, n) (rows past a copy's own count: padding)."""
        rows = self.rows[:1] if self.shared else self.rows
        out = []
        for cols in torch.split(torch.arange(rows.shape[1], device=rows.device), self.chunk):
            idx = rows[:, cols]
            xb = self.X.index_select(0, idx.reshape(-1)).view(*idx.shape, *self.X.shape[1:])
            out.append(model.forward(xb))
        return torch.cat(out, 2)

    @torch.no_grad()
    def error_rows(self, model, outputs=None):
        """Each copy's E of each of its rows, (K, n) (0 past a copy's own count)."""
        outputs = self.outputs(model) if outputs is None else outputs
        error_rows, _ = self.rows_error(outputs, self.y, torch.zeros_like(self.mask))
        return error_rows * self.mask

    def error(self, model):
        """Each copy's E on its validation rows, (K,): the mean over the rows."""
        return self.error_rows(model).sum(1) / self.counts

    def records(self, model):
        """The epoch's validation entries of every copy: key -> list of K values.

        ``valid_batch_count``, ``valid_loss``, the net's scorers, each with its
        ``…_best`` flag (better than every epoch before, as skorch's scorers
        say), and ``valid_batches``: each copy's ``(valid_loss, valid_batch_size)``
        of every evaluation batch.
        """
        outputs = self.outputs(model)
        rows = self.error_rows(model, outputs)
        sums = torch.stack([r.sum(1) for r in torch.split(rows, self.chunk, 1)], 1).cpu()
        n = torch.tensor(self.sizes)[:, None] - self.chunk * torch.arange(sums.shape[1])
        n = n.clamp(0, self.chunk)
        out = {
            "valid_batch_count": [int(c) for c in (n > 0).sum(1)],
            "valid_loss": (sums.sum(1) / n.sum(1)).tolist(),
            "valid_batches": [
                [(float(s / c), int(c)) for s, c in zip(ss, cs) if c > 0] for ss, cs in zip(sums, n)
            ],
        }
        predictions = _predictions(outputs, "valid_acc" in self.scorers)
        for name in self.scorers:
            out[name] = [
                float(_SCORERS[name](y, p[:m]))
                for y, p, m in zip(self.y_true, predictions, self.sizes)
            ]
        for key, best in self.best.items():
            lower = key == "valid_loss"  # the scorers: higher is better
            flags = [b is None or (v < b if lower else v > b) for v, b in zip(out[key], best)]
            best[:] = [v if f else b for v, b, f in zip(out[key], best, flags)]
            out[f"{key}_best"] = flags
        return out


def _predictions(outputs, classes):
    """Each copy's predictions as numpy: class indices (classifier) or (n, C) values."""
    if classes:
        return outputs.argmax(1).cpu().numpy()
    return np.ascontiguousarray(outputs.transpose(1, 2).cpu().numpy())
