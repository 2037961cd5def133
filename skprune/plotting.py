"""Plots of fitted skprune objects (needs the ``plot`` extra: matplotlib).

Each function takes ``ax=`` (a new figure when None), returns the Axes, and
raises a ``ValueError`` naming what the estimator lacks and how to get it.
"""

import numpy as np

from .model_selection._objectives import complexity_key, complexity_values, cv_objectives

__all__ = [
    "plot_pareto",
    "plot_density_history",
    "plot_weight_histogram",
    "plot_lambda_history",
    "plot_constraint_history",
    "plot_feature_path",
]

_COMPLEXITY_LABELS = {
    "density": "density (share of non-zero weights)",
    "omega": "Ω",
    "flops": "multiply-adds per sample (compacted network)",
    "latency": "latency of predict_proba (s)",
    "features": "inputs used",
    "complexity": "complexity",
}
_LOSS_LABELS = {
    None: "validation loss (cross-entropy)",
    "neg_log_loss": "validation loss (cross-entropy)",
    "accuracy": "validation error (1 - accuracy)",
    "balanced_accuracy": "validation error (1 - balanced accuracy)",
}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "skprune.plotting needs matplotlib: pip install 'skprune[plot]'."
        ) from exc
    return plt


def _axes(ax, size=(6.4, 4.2)):
    """``ax``, or the Axes of a new pyplot figure."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def _history(clf, key, how):
    """The per-epoch values of ``key`` in ``clf.history_``; says how to get them if absent."""
    history = getattr(clf, "history_", None)
    if history is None:
        raise ValueError(f"{type(clf).__name__} is not fitted: it has no history_; call fit first.")
    if not len(history) or key not in history[-1]:
        raise ValueError(f"The estimator's history_ has no {key!r}: {how}.")
    return history[:, key]


def plot_pareto(search, ax=None, labels=True, logy=True):
    """The λ values a fitted :class:`~skprune.ParetoSearchCV` tried, its front and knee.

    Every λ is a point (complexity, loss) averaged over the folds: dominated
    points as grey crosses, the Pareto front as a line through its points
    (sorted by complexity), the knee as a red star.

    Parameters
    ----------
    search : ParetoSearchCV
        Fitted.
    ax : matplotlib Axes or None, default=None
        Where to draw; a new figure when None.
    labels : bool, default=True
        Write each front point's λ next to it.
    logy : bool, default=True
        Loss on a log scale (collapsed networks have a loss far above the rest).

    Returns
    -------
    ax : matplotlib Axes
    """
    ax = _axes(ax)
    scoring = getattr(search, "_loss_scoring", search.scoring)
    loss, _, _ = cv_objectives(search.cv_results_, scoring)
    points = np.column_stack([loss, complexity_values(search.cv_results_, search.complexity)])
    lam = np.asarray(search.cv_results_[f"param_{search.param_name_}"], dtype=float)
    dominated = ~search.cv_results_["pareto_optimal"]
    front, knee = search.pareto_front_, search.knee_
    if dominated.any():
        ax.scatter(
            points[dominated, 1], points[dominated, 0], marker="x", color="0.6", label="dominated"
        )
    ax.plot(front[:, 1], front[:, 0], "o-", color="tab:blue", label="Pareto front")
    ax.plot(
        knee[complexity_key(search.complexity)],
        knee["loss"],
        "*",
        color="tab:red",
        markersize=16,
        label=f"knee: λ = {knee['lam']:.3g}",
    )
    if labels:
        _label_lambdas(ax, points[search.pareto_index_], lam[search.pareto_index_])
    if logy and np.all(points[np.isfinite(points[:, 0]), 0] > 0):
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")
        # Plain numbers rather than powers of ten: the losses span one decade or two.
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
    key = complexity_key(search.complexity)
    ax.set_xlabel(_COMPLEXITY_LABELS.get(key, key))
    ax.set_ylabel(_LOSS_LABELS.get(scoring, f"loss (-{scoring})"))
    ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    return ax


def _label_lambdas(ax, points, lam):
    """λ next to each front point, skipping labels that would overprint the last one."""
    z = np.column_stack([points[:, 1], np.log(np.maximum(points[:, 0], 1e-12))])
    span = np.ptp(z, axis=0)
    span[span == 0] = 1.0
    last = None
    for (x, y), zi, value in zip(points[:, ::-1], z, lam):
        if last is not None and np.all(np.abs(zi - last) < 0.04 * span):
            continue
        ax.annotate(f"{value:.2g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        last = zi


def plot_density_history(clf, ax=None, layers=True):
    """The share of non-zero weights per epoch: overall and per layer.

    Parameters
    ----------
    clf : SparseNetClassifier
        Fitted (``history_`` keys ``density`` and ``layer_density``).
    ax : matplotlib Axes or None, default=None
    layers : bool, default=True
        Also one dashed line per regularised layer.

    Returns
    -------
    ax : matplotlib Axes
    """
    how = "fit a SparseNetClassifier, which records it every epoch"
    density = _history(clf, "density", how)
    ax = _axes(ax)
    epochs = np.arange(1, len(density) + 1)
    ax.plot(epochs, density, "o-", color="black", label="all regularised weights")
    if layers:
        per_layer = _history(clf, "layer_density", how)
        for name in per_layer[-1]:
            ax.plot(epochs, [d.get(name, np.nan) for d in per_layer], "--", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("density (share of non-zero weights)")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="best")
    ax.grid(True, alpha=0.3)
    return ax


def plot_weight_histogram(clf, ax=None, bins=50):
    """Histogram of the non-zero weights of each regularised layer, log counts.

    Pruned weights (exact zeros) are left out: their number is in the
    legend, with each layer's density.

    Parameters
    ----------
    clf : SparseNetClassifier
        Fitted.
    ax : matplotlib Axes or None, default=None
    bins : int, default=50
        Bins shared by all layers, over the range of the non-zero weights.

    Returns
    -------
    ax : matplotlib Axes
    """
    net = getattr(clf, "net_", None)
    if net is None or not hasattr(net, "regularized_named_"):
        raise ValueError(
            f"plot_weight_histogram needs a fitted SparseNetClassifier; "
            f"{type(clf).__name__} has no net_: call fit first."
        )
    weights = {
        name: layer.weight.detach().cpu().numpy().ravel() for name, layer in net.regularized_named_
    }
    nonzero = {name: w[w != 0] for name, w in weights.items()}
    kept = np.concatenate(list(nonzero.values()))
    if not kept.size:
        raise ValueError("Every regularised weight is zero: there is nothing to plot.")
    ax = _axes(ax)
    edges = np.linspace(kept.min(), kept.max(), bins + 1)
    for name, w in nonzero.items():
        label = f"{name}: {w.size} of {weights[name].size} non-zero"
        ax.hist(w, bins=edges, histtype="step", linewidth=1.5, label=label)
    ax.set_yscale("log")
    ax.set_ylim(0.7, ax.get_ylim()[1] * 8)  # room above the bars for the legend
    ax.set_xlabel("weight value (pruned zeros left out)")
    ax.set_ylabel("number of weights (log scale)")
    ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    return ax


def plot_lambda_history(clf, ax=None, window=None):
    """The weight λ* a multi-objective optimiser chose at each step (Reiners Fig. 8).

    Parameters
    ----------
    clf : SparseNetClassifier
        Fitted with ``optimizer="smgd"``, ``"madam"`` or ``"mrmsprop"``
        (``lambda_history_``).
    ax : matplotlib Axes or None, default=None
    window : int or None, default=None
        Steps of the running mean; None: about one epoch's steps, or 50.

    Returns
    -------
    ax : matplotlib Axes
    """
    lam = getattr(clf, "lambda_history_", None)
    if lam is None:
        raise ValueError(
            f"{type(clf).__name__} has no lambda_history_: fit it with a multi-objective "
            f"optimizer (optimizer='smgd', 'madam' or 'mrmsprop')."
        )
    lam = np.asarray(lam, dtype=float)
    if window is None:
        epochs = len(getattr(clf, "history_", [])) or 1
        window = max(1, len(lam) // epochs) if epochs > 1 else 50
    window = int(min(window, len(lam)))
    ax = _axes(ax)
    steps = np.arange(1, len(lam) + 1)
    ax.plot(steps, lam, ".", color="0.6", markersize=3, label="λ* per step")
    mean = np.convolve(lam, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1 :], mean, color="tab:red", label=f"running mean ({window} steps)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("λ* (weight of Ω, eq. 15)")
    ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    return ax


def plot_constraint_history(clf, ax=None):
    """Density against its target and the Lagrange multipliers, per epoch.

    For ``regularizer="hard_concrete"`` with ``target_density`` (Gallego-Posada
    et al.): the expected density of each constrained group, the density
    counted on the test-time network, the target ε as a dotted line, and the
    multipliers on a second y axis (right).

    Parameters
    ----------
    clf : SparseNetClassifier
        Fitted (``history_`` keys ``expected_density``, ``multiplier``,
        ``density``).
    ax : matplotlib Axes or None, default=None

    Returns
    -------
    ax : matplotlib Axes
        The density axes; the multipliers' axes is ``ax.right_ax``.
    """
    how = "fit with regularizer='hard_concrete' and a target_density"
    expected = _history(clf, "expected_density", how)
    multiplier = _history(clf, "multiplier", how)
    density = _history(clf, "density", how)
    ax = _axes(ax)
    epochs = np.arange(1, len(density) + 1)
    ax.plot(epochs, density, "o-", color="black", label="density (test-time network)")
    for group in expected[-1]:
        ax.plot(epochs, [d.get(group, np.nan) for d in expected], "-", label=f"expected: {group}")
    target = clf.target_density
    targets = target if isinstance(target, dict) else {"target": target}
    for name, eps in targets.items():
        if eps is not None:
            ax.axhline(eps, linestyle=":", color="tab:green", label=f"ε = {eps:g} ({name})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("density")
    ax.set_ylim(0, 1.05)
    right = ax.twinx()
    for group in multiplier[-1]:
        values = [m.get(group, np.nan) for m in multiplier]
        right.plot(
            epochs, values, "s--", color="tab:purple", alpha=0.7, label=f"multiplier: {group}"
        )
    right.set_ylabel("Lagrange multiplier μ")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="center right")
    ax.grid(True, alpha=0.3)
    ax.right_ax = right
    return ax


def plot_feature_path(path, ax=None, feature_names=None, n_labels=5):
    """The inputs read along a :func:`~skprune.feature_selection.feature_path`.

    One line per input: its importance (``feature_importances_``) against λ on
    a log axis, until it drops out; the ``n_labels`` inputs that drop out last
    (LassoNet's most important) are labelled. The count of inputs read at each
    λ is on the right axis (``ax.right_ax``).

    Parameters
    ----------
    path : Bunch
        What :func:`~skprune.feature_selection.feature_path` returns.
    ax : matplotlib Axes or None, default=None
    feature_names : list of str or None, default=None
        Names for the labels; None numbers the inputs.
    n_labels : int, default=5

    Returns
    -------
    ax : matplotlib Axes
    """
    if not hasattr(path, "importances") or not hasattr(path, "drop_lambda"):
        raise ValueError(
            "plot_feature_path needs what skprune.feature_selection.feature_path returns; "
            f"got {type(path).__name__}."
        )
    ax = _axes(ax)
    names = (
        feature_names
        if feature_names is not None
        else [f"x{j}" for j in range(len(path.drop_lambda))]
    )
    order = np.lexsort((-path.importances[-1], -path.drop_lambda))
    for rank, j in enumerate(order):
        labelled = rank < n_labels
        ax.plot(
            path.lambdas,
            path.importances[:, j],
            "-",
            color=None if labelled else "0.75",
            label=names[j] if labelled else None,
            zorder=3 if labelled else 1,
        )
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("importance (input column norm)")
    right = ax.twinx()
    right.step(path.lambdas, path.n_selected, "k--", where="mid", label="inputs read")
    right.set_ylabel("inputs read")
    ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    ax.right_ax = right
    return ax
