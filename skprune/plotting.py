"""Plots of fitted skprune objects (needs the ``plot`` extra: matplotlib)."""

import numpy as np

__all__ = ["plot_pareto"]

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
        raise ImportError("plot_pareto needs matplotlib: pip install 'skprune[plot]'.") from exc
    return plt


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
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    points = search._points(search.cv_results_)
    lam = np.asarray(search.cv_results_[f"param_{search.param_name}"], dtype=float)
    dominated = ~search.cv_results_["pareto_optimal"]
    front, knee = search.pareto_front_, search.knee_
    if dominated.any():
        ax.scatter(
            points[dominated, 1], points[dominated, 0], marker="x", color="0.6", label="dominated"
        )
    ax.plot(front[:, 1], front[:, 0], "o-", color="tab:blue", label="Pareto front")
    ax.plot(
        knee[search.complexity],
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
    complexity = "density (share of non-zero weights)" if search.complexity == "density" else "Ω"
    ax.set_xlabel(complexity)
    ax.set_ylabel(_LOSS_LABELS.get(search.scoring, f"loss (-{search.scoring})"))
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
