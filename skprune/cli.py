"""Command line: ``skprune demo`` (also ``python -m skprune demo``)."""

import argparse
import sys
import time

__all__ = ["main", "demo"]


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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skprune", description="Sparse networks in scikit-learn.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="train on the bundled digits at a few lambdas")
    p_demo.add_argument("--epochs", type=int, default=20)
    p_demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(max_epochs=args.epochs, random_state=args.seed)
    return 0
