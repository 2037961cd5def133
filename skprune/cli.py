"""Command line: ``skprune demo`` (also ``python -m skprune demo``).

The demo trains on scikit-learn's bundled digits at a few λ and prints λ,
accuracy and density; then it searches the knee of the trade-off with
:class:`~skprune.ParetoSearchCV`, prints the Pareto front and saves its plot.
"""

import argparse
import sys
import time
import warnings

import torch

__all__ = ["main", "demo", "demo_search"]


def demo(lambdas=(0.0, 1e-4, 1e-3, 3e-3, 1e-2), max_epochs=20, random_state=0, file=None):
    """Train on scikit-learn's bundled digits at a few λ; print λ, accuracy, density.

    Returns the rows as a list of dicts.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .estimators import SparseNetClassifier

    file = file or sys.stdout
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, stratify=y, random_state=random_state
    )
    print(
        f"Digits: {len(X_train)} training / {len(X_test)} test images, MLP 64-100-10, "
        f"l1 + batchwise pruning (tau=1e-3), Adam, {max_epochs} epochs",
        file=file,
    )
    print(
        f"{'lambda':>8} {'accuracy':>9} {'density':>8} {'nonzero':>8} {'fit s':>6}",
        file=file,
    )
    rows = []
    for lam in lambdas:
        clf = SparseNetClassifier(lam=lam, max_epochs=max_epochs, random_state=random_state)
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        row = {
            "lam": lam,
            "accuracy": clf.score(X_test, y_test),
            "density": clf.density_,
            "n_nonzero": clf.n_nonzero_,
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        print(
            f"{lam:8.0e} {row['accuracy']:9.3f} {row['density']:8.3f} "
            f"{row['n_nonzero']:8d} {row['seconds']:6.1f}",
            file=file,
            flush=True,
        )
    return rows


def demo_search(
    png_path=None,
    strategy="bisection",
    budget=7,
    max_epochs=20,
    search_epochs=None,
    cv=3,
    random_state=0,
    file=None,
):
    """Search the knee of (validation loss, density) on digits; print it, plot it.

    An MLP 64-100-10 with ℓ1 and batchwise pruning; candidates train on ``cv``
    folds of 75 % of the digits, the knee is refit on all of them and scored
    on the other 25 %. Candidates train for the full ``max_epochs`` (digits
    is tiny): with fewer, the sparse candidates are under-trained, their CV
    loss misranks them, and the knee can land on a λ that the demo's own
    table shows dominated.

    Parameters
    ----------
    png_path : str, path-like or None, default=None
        Where to save the plot of the front (needs matplotlib); None: no plot.
    strategy, budget, cv, random_state :
        As for :class:`~skprune.ParetoSearchCV`.
    max_epochs : int, default=20
        Epochs of the refit and of each candidate.
    search_epochs : int or None, default=None
        Fewer epochs for the candidates (None: ``max_epochs``).
    file : file-like or None, default=None
        Where to print (standard output by default).

    Returns
    -------
    search : ParetoSearchCV
        Fitted.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .estimators import SparseNetClassifier
    from .estimators._user_warnings import CollapseWarning
    from .model_selection import ParetoSearchCV

    file = file or sys.stdout
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, stratify=y, random_state=random_state
    )
    search = ParetoSearchCV(
        SparseNetClassifier(max_epochs=max_epochs, random_state=random_state),
        strategy=strategy,
        budget=budget,
        search_epochs=search_epochs,
        cv=cv,
        random_state=random_state,
    )
    print(
        f"Knee search ({strategy}, at most {budget} lambdas x {cv} folds, "
        f"{search_epochs or max_epochs} epochs each) on digits, MLP 64-100-10, "
        f"l1 + batchwise pruning",
        file=file,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # the table shows them
        search.fit(X_train, y_train)
    _print_front(search, file)
    knee = search.knee_
    print(
        f"knee: lambda={knee['lam']:.3g}, refit for {max_epochs} epochs: test accuracy "
        f"{search.score(X_test, y_test):.3f}, density {search.best_estimator_.density_:.3f} "
        f"({search.n_trainings_} trainings, {time.perf_counter() - start:.1f} s)",
        file=file,
    )
    if png_path is not None:
        _save_plot(search, png_path, file)
    return search


def _print_front(search, file):
    results = search.cv_results_
    lam = results[f"param_{search.param_name_}"]
    print(f"{'lambda':>9} {'cv loss':>8} {'cv acc':>7} {'density':>8}  front", file=file)
    for row in sorted(range(len(lam)), key=lambda r: float(lam[r])):
        mark = "knee" if row == search.knee_["cv_index"] else ""
        mark = mark or ("*" if results["pareto_optimal"][row] else "")
        print(
            f"{float(lam[row]):9.2e} {-results['mean_test_score'][row]:8.4f} "
            f"{results['mean_test_accuracy'][row]:7.3f} "
            f"{results['mean_test_density'][row]:8.3f}  {mark}",
            file=file,
        )


def _save_plot(search, png_path, file):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("Saving the plot needs matplotlib: pip install 'skprune[plot]'.") from exc
    from .plotting import plot_pareto

    # A bare Figure: no pyplot, so the user's backend is left alone.
    figure = Figure(figsize=(6.4, 4.2))
    ax = plot_pareto(search, ax=figure.subplots())
    ax.set_title("Digits, MLP: cross-validated knee search")
    figure.savefig(png_path, dpi=90, bbox_inches="tight")
    print(f"plot saved to {png_path}", file=file)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skprune", description="Sparse networks in scikit-learn.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="train on the bundled digits at a few lambdas")
    p_demo.add_argument("--epochs", type=int, default=20)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument(
        "--plot", default="skprune_demo_pareto.png", help="where to save the Pareto front plot"
    )
    p_demo.add_argument("--no-search", action="store_true", help="skip the knee search")
    args = parser.parse_args(argv)
    if args.command == "demo":
        # These networks are tiny: one intra-op thread is fastest.
        torch.set_num_threads(1)
        demo(max_epochs=args.epochs, random_state=args.seed)
        if not args.no_search:
            print()
            # The same epochs as the table, so that the knee compares with its rows.
            demo_search(png_path=args.plot or None, max_epochs=args.epochs, random_state=args.seed)
    return 0
