"""Which parameter :class:`~skprune.ParetoSearchCV` searches, and the ones it sets with it."""

import difflib

from sklearn.pipeline import Pipeline

__all__ = ["searched_param", "check_needed_params", "extra_keys"]


def searched_param(estimator, param_name):
    """The name of the searched λ: ``param_name``, or found when it is None.

    None finds ``"lam"``, or inside a pipeline the ``lam`` of its last step
    (``"sparsenetregressor__lam"``; a pipeline ending in a pipeline is followed
    to its end), as ``make_pipeline`` names it.
    """
    if param_name is not None:
        return param_name
    prefix, step, owner = "", None, estimator
    while isinstance(owner, Pipeline):
        step, owner = owner.steps[-1]
        prefix += f"{step}__"
    if hasattr(owner, "get_params") and "lam" in owner.get_params(deep=False):
        return prefix + "lam"
    what = type(owner).__name__
    if step is not None:
        what = f"the pipeline's last step {step!r} ({what})"
    raise ValueError(
        f"ParetoSearchCV searches the parameter 'lam', but {what} has none; end with a "
        "SparseNetClassifier or SparseNetRegressor, or name the parameter in param_name."
    )


def check_needed_params(estimator, needs):
    """Every ``needs`` value (option -> parameter) must be a parameter of ``estimator``.

    The error names the option and the missing parameter, and suggests the
    parameters of the same name elsewhere in a pipeline or, failing those,
    the closest spellings; it does not list all (a pipeline has dozens).
    """
    names = estimator.get_params()
    for option, param in needs.items():
        if param in names:
            continue
        leaf = param.rpartition("__")[2]
        near = [n for n in names if n.rpartition("__")[2] == leaf]
        near = near or difflib.get_close_matches(param, names, n=3)
        hint = f"; did you mean {' or '.join(map(repr, sorted(near)))}?" if near else "."
        raise ValueError(
            f"The {option!r} parameter of ParetoSearchCV needs the estimator's parameter "
            f"{param!r}, but {type(estimator).__name__} has no parameter {param!r}{hint}"
        )


def extra_keys(param_name, search_epochs, devices, warm_start):
    """Parameters the search sets besides λ, by option, beside ``param_name`` in a pipeline."""
    prefix = param_name.rpartition("__")[0]
    prefix = prefix + "__" if prefix else ""
    keys = {}
    if search_epochs is not None:
        keys["search_epochs"] = prefix + "max_epochs"
    if devices is not None:
        keys["devices"] = prefix + "device"
    if warm_start:
        keys["warm_start"] = prefix + "callbacks"
    return keys
