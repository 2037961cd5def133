"""
Does the counted cost predict measured latency?
===============================================

A front of LeNet-5 models on MNIST-10k, structured-sparse at different levels
(``regularizer="group_l1"``, ``regularized_layers="all"``, one λ each, trained
together by :func:`skprune.lambda_path`), each sparsified. For each: the
multiply-adds counted by :mod:`skprune.cost` (``flops_``), the activations it
writes (output values of every layer: memory passes), and the measured
latency of ``predict_proba`` on 256 test images. One torch thread, one BLAS
thread; the models are timed in interleaved rounds (each round the mean of
``--calls`` calls per model) and the median of the rounds is kept, in
wall-clock time. Spearman's rank correlation of each count with the latency
is printed (target: ≥ 0.9 for the multiply-adds).

``--plot PATH`` draws test accuracy and latency against the counted
multiply-adds (the figure of the "Choosing by cost" guide).

Run: ``python examples/benchmarks/bench_cost.py [--mnist DIR] [--epochs N]
[--rounds R] [--calls C] [--plot PATH]``.
"""

import argparse
import statistics
import time

import numpy as np
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from skprune import SparseNetClassifier, lambda_path, set_torch_threads
from skprune.cost import total_cost
from skprune.datasets import mnist_10k_split
from skprune.estimators._cost import estimator_cost

LAMS = (0.0, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2)


def interleaved(functions, rounds, calls):
    """Median over ``rounds`` of each function's mean seconds per call, run in turn."""
    times = [[] for _ in functions]
    for _ in range(rounds):
        for f, t in zip(functions, times):
            f()
            start = time.perf_counter()
            for _ in range(calls):
                f()
            t.append((time.perf_counter() - start) / calls)
    return [statistics.median(t) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    X_train, X_test, y_train, y_test = mnist_10k_split(args.mnist)
    est = SparseNetClassifier(
        "lenet5",
        regularizer="group_l1",
        regularized_layers="all",
        max_epochs=args.epochs,
        random_state=0,
    )
    models = [m for m in lambda_path(est, X_train, y_train, LAMS) if m.n_nonzero_]
    X = X_test[:256]
    for m in models:
        m.sparsify()
    set_torch_threads(1)
    with threadpool_limits(1):
        latency = interleaved(
            [lambda m=m: m.predict_proba(X) for m in models], args.rounds, args.calls
        )
    costs = [total_cost(estimator_cost(m)) for m in models]
    flops = [c.flops for c in costs]
    activations = [c.activations for c in costs]
    accuracy = [m.score(X_test, y_test) for m in models]
    print(f"{'λ':>8} {'accuracy':>8} {'flops':>8} {'activations':>11} {'ms':>7}")
    for m, acc, f, a, t in zip(models, accuracy, flops, activations, latency):
        print(f"{m.lam:8.2g} {acc:8.4f} {f:8d} {a:11d} {1e3 * t:7.3f}")
    for name, counts in (("multiply-adds", flops), ("activations", activations)):
        rho = spearmanr(counts, latency).statistic
        print(f"Spearman(latency, {name}) = {rho:.3f} over {len(models)} models")
    both = np.asarray(flops) + np.asarray(activations)
    print(
        f"Spearman(latency, multiply-adds + activations) = {spearmanr(both, latency).statistic:.3f}"
    )
    if args.plot:
        plot(models, accuracy, flops, latency, args.plot)


def plot(models, accuracy, flops, latency, path):
    """Test accuracy and latency against the counted multiply-adds, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(flops, accuracy, "o-")
    for m, f, a in zip(models, flops, accuracy):
        left.annotate(f"λ={m.lam:.2g}", (f, a), textcoords="offset points", xytext=(4, 4))
    right.plot(flops, [1e3 * t for t in latency], "s")
    left.set_ylabel("test accuracy (MNIST-10k)")
    right.set_ylabel("sparsified predict_proba, 256 images, 1 thread (ms)")
    for ax in (left, right):
        ax.set_xlabel("multiply-adds per image (compacted network)")
        ax.grid(True, alpha=0.3)
    fig.suptitle("LeNet-5, regularizer='group_l1', regularized_layers='all'")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
