"""All or nothing: a fit that raises leaves what it was fitting as it was.

The rule of every call that fits several things at once (see the faults
guide): it finishes and its results appear together, or it raises
(``KeyboardInterrupt`` included, wherever it lands) and everything is as it
was before the call, fitted or not. Two ways to keep it:

* :func:`fitted_aside` runs ``fit`` on an :func:`unfitted_copy` of the
  estimator and hands it over with :func:`publish` (``ParetoSearchCV``;
  the estimators' ``fit`` uses the same pair);
* :func:`all_or_nothing` and :func:`unfinished_restored` keep the attributes
  of each estimator aside and put them back (the engine, which trains the
  very objects it is given).
"""

import functools

__all__ = [
    "fitted_attributes",
    "unfitted_copy",
    "publish",
    "fitted_aside",
    "all_or_nothing",
    "unfinished_restored",
]


def fitted_attributes(estimator):
    """Names of what ``fit`` made, as ``check_is_fitted`` finds them."""
    return [k for k in vars(estimator) if k.endswith("_") and not k.startswith("__")]


def unfitted_copy(estimator):
    """A shallow copy of ``estimator``: its parameters, none of its fitted attributes."""
    copied = object.__new__(type(estimator))
    copied.__dict__ = dict(vars(estimator))
    for name in fitted_attributes(copied):
        delattr(copied, name)
    return copied


def publish(estimator, trained):
    """Make the state of ``trained`` (a copy of ``estimator``) its own, in one assignment.

    A reader of ``estimator.__dict__`` sees the state before or after, never
    a mix. Attributes set on ``estimator`` in the meantime (parameters set
    from another thread) are not kept. Returns ``estimator``.
    """
    estimator.__dict__ = trained.__dict__
    return estimator


def fitted_aside(fit):
    """Decorate ``fit``: it runs on an unfitted shallow copy, published when it returns.

    The copy shares the parameters; its attributes replace the estimator's at
    once, so that a reader sees the old fit or the new, never a mix. If
    ``fit`` raises, the copy is dropped and the estimator is untouched.
    """

    @functools.wraps(fit)
    def fit_aside(self, *args, **kwargs):
        aside = unfitted_copy(self)
        fit(aside, *args, **kwargs)
        return publish(self, aside)

    return fit_aside


def all_or_nothing(train):
    """Decorate ``train(estimators, ...)``: if it raises, every estimator is put back."""

    @functools.wraps(train)
    def restoring(estimators, *args, **kwargs):
        saved = [_attributes(est) for est in estimators]
        try:
            return train(estimators, *args, **kwargs)
        except BaseException:
            _restore(saved)
            raise

    return restoring


def unfinished_restored(train):
    """:func:`all_or_nothing` for ``train`` returning one bool per estimator: fitted or not.

    Those it did not fit are put back too.
    """

    @functools.wraps(train)
    def restoring(estimators, *args, **kwargs):
        saved = [_attributes(est) for est in estimators]
        try:
            done = train(estimators, *args, **kwargs)
        except BaseException:
            _restore(saved)
            raise
        _restore(s for s, ok in zip(saved, done) if not ok)
        return done

    return restoring


def _attributes(estimator):
    """``(object, copy of its attributes)`` of ``estimator`` and its sub-estimators.

    Shallow copies suffice: training replaces what it fits (a new ``net_``, a
    pipeline's new ``steps``) rather than changing it in place.
    """
    params = estimator.get_params(deep=True).values()
    parts = [estimator, *(p for p in params if hasattr(p, "get_params") and hasattr(p, "fit"))]
    return [(obj, dict(vars(obj))) for obj in parts]


def _restore(saved):
    for attributes in saved:
        for obj, attrs in attributes:
            vars(obj).clear()
            vars(obj).update(attrs)
