"""Command line: ``skprune demo`` (also ``python -m skprune demo``).

The demo trains on scikit-learn's bundled digits at a few λ and prints λ,
accuracy and density; then it searches the knee of the trade-off with
:class:`~skprune.ParetoSearchCV`, prints the Pareto front and saves its plot.
"""

import argparse
import sys
import time

import torch

from .model_selection._demo_search import demo_search

__all__ = ["main", "demo"]


def demo(lambdas=(0.0, 1e-4, 1e-3, 3e-3, 1e-2), max_epochs=20, random_state=0, file=None):
    """Train on scikit-learn's bundled digits at a few λ; print λ, accuracy, density.

    Returns the rows as a list of dicts.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .estimators._classes import SparseNetClassifier

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
