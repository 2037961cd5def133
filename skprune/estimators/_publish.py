"""Train aside, publish in one step: what a prediction sees while ``fit`` runs.

``fit`` and ``partial_fit`` train a copy of the estimator, made by
:func:`aside`, and :func:`publish` it when training ends by one assignment of
the estimator's ``__dict__``. A prediction reads that dict once, through
:func:`fitted_view`, so it sees the previous fit or the new one, never a
half-trained network nor a mix of two fits (``net_`` of one, ``classes_`` of
the other). A fit that raises publishes nothing: the previous model stays.
"""

import copy

from ..training._atomic import publish, unfitted_copy
from ..training._threads import flush_denormals, torch_threads

__all__ = ["train_aside", "aside", "publish", "fitted_view", "net_copy"]


def train_aside(estimator, method, *args, keep_fit=False):
    """Call ``method`` (a name) of an :func:`aside` copy of ``estimator``; publish the copy.

    Training runs with denormals flushed; its set-up on one torch thread, its
    loop on the threads its work calls for (see :mod:`skprune._threads`).
    Returns ``estimator``.
    """
    new = aside(estimator, keep_fit)
    with torch_threads(), flush_denormals():
        getattr(new, method)(*args)
    return publish(estimator, new)


def net_copy(net):
    """A deep copy of the skorch ``net``, to train on while ``net`` keeps predicting.

    ``copy.deepcopy(net)`` goes through skorch's pickling (``torch.save`` of
    the module and the optimiser): 12 ms for LeNet-300-100. Its attributes,
    copied with one memo, take ~1 ms and keep the references between them
    (the optimiser's and ``regularized_named_``'s tensors are the module's).
    Finished epochs of the history are shared: training only appends rows.
    """
    copied = object.__new__(type(net))
    memo = {id(net): copied, **{id(row): row for row in net.history[:-1]}}
    copied.__dict__ = copy.deepcopy(vars(net), memo)
    return copied


def aside(estimator, keep_fit):
    """A copy of ``estimator`` to train while ``estimator`` keeps predicting.

    It has the same parameters; with ``keep_fit`` also the fitted attributes,
    with ``net_`` copied (training changes it in place), else none of them.
    """
    if not keep_fit:
        return unfitted_copy(estimator)
    copied = object.__new__(type(estimator))
    copied.__dict__ = dict(vars(estimator))
    copied.net_ = net_copy(estimator.net_)
    return copied


def fitted_view(estimator):
    """``estimator`` as it is now: a later :func:`publish` does not change the view."""
    view = object.__new__(type(estimator))
    view.__dict__ = estimator.__dict__
    return view
