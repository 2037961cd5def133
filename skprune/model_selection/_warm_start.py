"""Warm start along λ: each candidate starts from its nearest trained neighbour.

As :class:`~sklearn.linear_model.LassoCV` follows its regularisation path,
:class:`~skprune.ParetoSearchCV` (``warm_start=True``) starts the training at a
new λ from the final weights of the nearest λ trained in an earlier round on
the same fold. :class:`WarmStart` is the skorch callback doing it: it loads the
neighbour's weights when training begins and stores its own when it ends,
keyed by a hash of the fold's training data and λ.
"""

import io
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import torch
from skorch.callbacks import Callback

from ..training._sparse_input import fold_key
from ._candidate import warn_unwritable

__all__ = ["WarmStart", "nearest_lambda", "warm_folder", "add_warm_start"]


def nearest_lambda(lam, trained):
    """The λ of ``trained`` nearest to ``lam`` in log λ (0 counts as far below), or None.

    Examples
    --------
    >>> nearest_lambda(3e-4, [1e-5, 1e-3, 1e-1])
    0.001
    >>> nearest_lambda(1e-4, []) is None
    True
    """
    if not len(trained):
        return None
    floor = 1e-12  # keeps λ = 0 on the log axis, far below every useful weight
    logs = np.log(np.maximum(np.asarray(trained, dtype=float), floor))
    return float(trained[int(np.argmin(np.abs(logs - np.log(max(lam, floor)))))])


def _state_path(folder, X, y, lam):
    fold = joblib.hash((fold_key(X), np.asarray(y.cpu())))
    return Path(folder) / f"warm-{fold}-{float(lam)!r}.pt"


class WarmStart(Callback):
    """Start from the weights trained at ``source_lam`` on the same fold; keep ours.

    Parameters
    ----------
    folder : str or path-like
        Where the final weights of every candidate are stored.
    source_lam : float or None, default=None
        The neighbour to start from; None starts from the usual initialisation.
    """

    def __init__(self, folder, source_lam=None):
        self.folder = folder
        self.source_lam = source_lam

    def initialize(self):
        # Trailing underscore: skorch lists attributes without one as parameters.
        self.path_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.path_ = _state_path(self.folder, X, y, net.lam)
        if self.source_lam is None:
            return
        source = _state_path(self.folder, X, y, self.source_lam)
        if source.exists():  # else the neighbour's fit failed: start cold
            state = torch.load(source, map_location=net.device, weights_only=True)
            net.module_.load_state_dict(state)

    def on_train_end(self, net, **kwargs):
        # Serialised in memory (torch.save on a full disk fails with a bare
        # RuntimeError), written aside and renamed. A write that fails warns
        # and keeps the fit: the neighbours that would start here start cold.
        state = io.BytesIO()
        torch.save(net.module_.state_dict(), state)
        partial = self.path_.with_suffix(".part")
        try:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            partial.write_bytes(state.getvalue())
            partial.replace(self.path_)
        except OSError as error:
            warn_unwritable(
                self.folder, error, "the λ values that would start from these weights start cold"
            )
        finally:
            partial.unlink(missing_ok=True)


def add_warm_start(candidates, done, param_name, key, own, folder):
    """Give each candidate a WarmStart callback (after ``own``) from its nearest earlier λ.

    Returns the ``cv_results_`` column ``warm_start_from`` (NaN: a cold start).
    """
    sources = []
    for candidate in candidates:
        source = nearest_lambda(candidate[param_name], done)
        candidate[key] = [*own, WarmStart(folder, source)]
        sources.append(np.nan if source is None else source)
    return {"warm_start_from": sources}


@contextmanager
def warm_folder(warm_start, memory):
    """Where warm-start weights go: ``memory``, or a temporary folder (or None)."""
    if not warm_start:
        yield None
    elif memory is not None:
        yield memory
    else:
        folder = tempfile.mkdtemp(prefix="skprune-warm-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
