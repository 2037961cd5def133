"""What :class:`~skprune.ParetoSearchCV` trains: one (λ, fold) fit, cached on disk.

:class:`CandidateFit` stands in for the searched estimator inside
``BaseSearchCV``: it takes and reports the estimator's own parameters (so
``cv_results_`` reads ``param_lam``, not ``param_estimator__lam``), clones into
a fresh copy of itself, and fits through a folder of finished fits when
``memory`` is given, so that an interrupted search resumes without retraining
what it had finished. The scorers reach the fitted estimator through it.
"""

import hashlib
import io
import os
import tempfile
import threading
import warnings
from pathlib import Path

import joblib
from sklearn.base import clone
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "CandidateFit",
    "fit_key",
    "store",
    "store_or_warn",
    "warn_unwritable",
    "sparse_step",
    "check_memory",
]

#: Parameters that change where or how loudly a fit runs, not its result.
_NOT_IN_KEY = ("device", "verbose")
#: First bytes of a cache entry, followed by the SHA-256 of the pickle after it.
_MAGIC = b"skprune-fit-v1\n"


def fit_key(estimator, X, y, fit_params):
    """A hash of everything a fit's result depends on: class, parameters, data.

    Parameters named ``device`` or ``verbose`` (at any depth) are left out, so
    that a fit finished on ``"cuda:0"`` is found again on ``"cuda:1"``.
    """
    params = {
        k: v
        for k, v in estimator.get_params(deep=True).items()
        if k.rpartition("__")[2] not in _NOT_IN_KEY
    }
    cls = type(estimator)
    return joblib.hash((cls.__module__, cls.__qualname__, params, X, y, fit_params))


class CandidateFit:
    """The searched estimator, fitted through an optional on-disk cache.

    Parameters
    ----------
    estimator : estimator
        Unfitted; receives every ``set_params`` call.
    memory : str, path-like or None
        Folder of finished fits (``<key>.pkl``, see :func:`fit_key`); None
        fits every time.
    prefit : dict or None
        Fits a vectorised round trained (:mod:`skprune._vectorize`), by
        :func:`fit_key`; shared by every clone, each takes its own out.
    unwritable : set or None
        Folders whose write failed (a full disk), shared by every clone, so
        that a search warns once per folder (see :func:`store_or_warn`).
    """

    def __init__(self, estimator, memory=None, prefit=None, unwritable=None):
        self.estimator = estimator
        # Checked here, before the search trains anything: a bad folder
        # would otherwise fail only when the first fit is written.
        self.memory = check_memory(memory)
        self.prefit = prefit
        self.unwritable = set() if unwritable is None else unwritable

    def __sklearn_clone__(self):
        # Bypasses __init__: the folder was checked when the search began.
        copy = object.__new__(CandidateFit)
        copy.estimator, copy.memory = clone(self.estimator), self.memory
        copy.prefit, copy.unwritable = self.prefit, self.unwritable
        return copy

    def __sklearn_tags__(self):
        return get_tags(self.estimator)

    def get_params(self, deep=True):
        return self.estimator.get_params(deep=deep)

    def set_params(self, **params):
        self.estimator.set_params(**params)
        return self

    def fit(self, X, y=None, **fit_params):
        if self.prefit and (key := fit_key(self.estimator, X, y, fit_params)) in self.prefit:
            self.estimator = self.prefit.pop(key)
            return self
        if self.memory is None:
            self.estimator.fit(X, y, **fit_params)
            return self
        path = Path(self.memory) / f"{fit_key(self.estimator, X, y, fit_params)}.pkl"
        if path.exists():
            cached = load_fit(path, type(self.estimator))
            if cached is not None:
                self.estimator = cached
                return self
        # ``fit`` raises on an interruption or a divergence: only a finished
        # fit reaches the cache.
        self.estimator.fit(X, y, **fit_params)
        store_or_warn(path, self.estimator, self.unwritable)
        return self

    def __getattr__(self, name):
        # Only reached for what the wrapper lacks: predict_proba, classes_, ...
        if name.startswith("__") or name in ("estimator", "memory", "prefit", "unwritable"):
            raise AttributeError(name)
        return getattr(self.estimator, name)


def check_memory(memory):
    """``memory`` as a writable folder (created if missing), or None.

    Raises ``ValueError`` for ``""`` (which would write into the working
    directory), a path that is a file, or a folder that cannot be written.
    """
    if memory is None:
        return None
    if not str(memory).strip():
        raise ValueError(
            f"The 'memory' parameter must be a folder path or None; got {memory!r}, which "
            "would write into the working directory."
        )
    folder = Path(memory)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"The 'memory' parameter must be a folder; got {str(memory)!r}, which is a file."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(
            f"The 'memory' parameter must be a folder that can be written; got "
            f"{str(memory)!r} ({error.strerror or error})."
        ) from error
    return memory


def dump_fit(estimator, path):
    """Write a fitted estimator to ``path`` with a checksum, atomically.

    Written aside and renamed: an interruption never leaves half a file under
    the entry's name; the aside file is removed.
    """
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    payload = buffer.getvalue()
    # One name per process and thread: two writers of one entry never share it.
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with open(partial, "wb") as file:
            file.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_fit(path, cls):
    """The fitted ``cls`` stored at ``path``, or None (with a warning) if it is damaged."""
    try:
        data = Path(path).read_bytes()
        head, digest = len(_MAGIC), len(_MAGIC) + 32
        if data[:head] != _MAGIC or hashlib.sha256(data[digest:]).digest() != data[head:digest]:
            raise ValueError("its checksum does not match its content")
        estimator = joblib.load(io.BytesIO(data[digest:]))
        if not isinstance(estimator, cls):
            raise ValueError(f"it holds a {type(estimator).__name__}, not a {cls.__name__}")
        check_is_fitted(estimator)
    except Exception as error:
        warnings.warn(
            f"The cached fit {str(path)!r} is corrupt or truncated ({error}); it is trained "
            "again and replaced.",
            UserWarning,
            stacklevel=2,
        )
        return None
    return estimator


def store(path, estimator):
    """Write a finished fit to the cache file ``path`` (``<memory>/<fit_key>.pkl``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    dump_fit(estimator, Path(path))


def store_or_warn(path, estimator, unwritable=None):
    """:func:`store`; a write that fails (a full disk) warns, once per folder, and is skipped.

    The fit itself is kept: a cache that cannot be written costs the resume,
    never the result. ``unwritable`` is the set of folders already warned
    about (None: warn every time).
    """
    unwritable = set() if unwritable is None else unwritable
    try:
        store(path, estimator)
    except OSError as error:
        folder = str(Path(path).parent)
        if folder not in unwritable:
            unwritable.add(folder)
            warn_unwritable(folder, error, "finished fits are kept but not cached")


def warn_unwritable(folder, error, consequence):
    """The ``UserWarning`` of a write into ``folder`` that failed with ``error``."""
    warnings.warn(
        f"Could not write to the cache folder {folder!r} ({error.strerror or error}); "
        f"{consequence}.",
        UserWarning,
        stacklevel=3,
    )


def sparse_step(estimator):
    """The estimator that reports ``density_``: unwraps CandidateFit and Pipeline."""
    if isinstance(estimator, CandidateFit):
        estimator = estimator.estimator
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator
