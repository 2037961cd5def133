"""
Knee search on MNIST-10k with LeNet-5: bisection against a grid
===============================================================

LeNet-5 (Reiners Table 1a), ℓ1 on the dense layers with batchwise threshold
pruning (τ = 1e-3), Adam (lr 1e-3), batch 32, one CPU thread. Each search
trains its candidates for ``--search-epochs`` epochs on ``--cv`` folds of the
8,000 training images (multi-fidelity, Reiners §5), picks the chord knee of
(validation loss, density), and refits at the knee for ``--epochs`` epochs on
all 8,000 images; accuracy and density are those of the refit on the 2,000
test images. Reiners report a critical λ* = 3e-4 on full MNIST (Table 2a).
Wall time depends on what else runs; ``cpu s`` (process time, one thread) does
not, and includes the refit.

Run: ``python examples/benchmarks/knee_search_mnist.py [--search-epochs 4]
[--cv 2] [--epochs 30] [--mnist DIR] [--plot docs/_static/knee_search_mnist.png]``.
"""

import argparse
import time
import warnings

import torch

from skprune import ParetoSearchCV, SparseNetClassifier
from skprune.datasets import mnist_10k_split
from skprune.pareto import log_grid

SEARCHES = {
    # Reiners Fig. 9(a): a predefined list over [1e-5, 0.1], three per decade.
    "grid": dict(strategy="grid", lambdas=log_grid(1e-5, 1e-1, 13)),
    "bisection": dict(strategy="bisection", lambdas=(1e-5, 1e-1), budget=8),
}


def run(name, X_train, X_test, y_train, y_test, args):
    clf = SparseNetClassifier(
        module="lenet5", lam=3e-4, max_epochs=args.epochs, device="cpu", random_state=0
    )
    search = ParetoSearchCV(
        clf, search_epochs=args.search_epochs, cv=args.cv, random_state=0, **SEARCHES[name]
    )
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # collapsed candidates warn
        search.fit(X_train, y_train)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    knee = search.knee_
    return search, {
        "search": name,
        "lam": knee["lam"],
        "cv_loss": knee["loss"],
        "cv_density": knee["density"],
        "density": search.best_estimator_.density_,
        "accuracy": search.score(X_test, y_test),
        "trainings": search.n_trainings_,
        "seconds": seconds,
        "cpu": cpu,
        "refit_s": search.refit_time_,
        "stability": knee["stability"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--cv", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--plot", default=None, help="save the bisection front as PNG")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = mnist_10k_split(args.mnist)
    print(
        f"MNIST-10k, LeNet-5, l1 + batchwise pruning (tau=1e-3), Adam, "
        f"search {args.search_epochs} epochs x {args.cv} folds, refit {args.epochs} epochs"
    )
    header = (
        f"{'search':>10} {'lambda':>9} {'cv loss':>8} {'cv dens':>8} {'density':>8} "
        f"{'accuracy':>9} {'trainings':>9} {'wall s':>7} {'cpu s':>7} {'refit s':>7} "
        f"{'stable':>6}"
    )
    print(header)
    for name in SEARCHES:
        search, r = run(name, *data, args)
        print(
            f"{r['search']:>10} {r['lam']:9.2e} {r['cv_loss']:8.4f} {r['cv_density']:8.4f} "
            f"{r['density']:8.4f} {r['accuracy']:9.4f} {r['trainings']:9d} "
            f"{r['seconds']:7.1f} {r['cpu']:7.1f} {r['refit_s']:7.1f} {r['stability']:6.2f}",
            flush=True,
        )
        if args.plot and name == "bisection":
            from skprune.plotting import plot_pareto

            ax = plot_pareto(search)
            ax.set_title("MNIST-10k, LeNet-5: bisection knee search")
            ax.figure.savefig(args.plot, dpi=90, bbox_inches="tight")


if __name__ == "__main__":
    main()
