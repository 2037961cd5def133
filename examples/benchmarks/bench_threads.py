"""
Torch threads for small networks: one thread against torch's default
====================================================================

Times ``fit`` of the digits MLP (64-100-10, ℓ1, 5 epochs) and of LeNet-5 on
2,000 MNIST-10k images (batch 64, 1 epoch) with ``set_torch_threads(n)`` for
each ``n`` of ``--threads`` (default: 1 and torch's own default, the number of
cores), rounds interleaved; prints the median over rounds of each time over
the time with one thread.

Run: ``python examples/benchmarks/bench_threads.py [--rounds 5] [--threads 1 2]``.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier, set_torch_threads
from skprune.datasets import mnist_10k_split


def _timed(estimator, X, y):
    start = time.perf_counter()
    clone(estimator).fit(X, y)
    return time.perf_counter() - start


def thread_ratios(estimator, X, y, threads, rounds):
    """Per n: median over rounds of time(fit, n threads) / time(fit, 1 thread)."""
    times = {n: [] for n in threads}
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        for n in threads:
            set_torch_threads(n)
            times[n].append(_timed(estimator, X, y))
    set_torch_threads(1)
    return {
        n: statistics.median(t / o for t, o in zip(times[n][1:], times[1][1:])) for n in threads
    }, {n: statistics.median(times[n][1:]) for n in threads}


def main(rounds=5, threads=None):
    warnings.simplefilter("ignore", UserWarning)
    threads = sorted(set([1, *(threads or [torch.get_num_threads()])]))
    X, y = load_digits(return_X_y=True)
    digits = ((X / 16).astype(np.float32), y)
    X, _, y, _ = mnist_10k_split()
    cases = {
        "MLP digits, 5 epochs": (SparseNetClassifier(max_epochs=5, random_state=0), *digits),
        "LeNet-5 MNIST 2000, 1 epoch": (
            SparseNetClassifier("lenet5", batch_size=64, max_epochs=1, random_state=0),
            X[:2000],
            y[:2000],
        ),
    }
    for name, (est, X, y) in cases.items():
        ratios, medians = thread_ratios(est, X, y, threads, rounds)
        cells = "  ".join(f"{n} threads: {medians[n]:.2f}s ({ratios[n]:.2f}x)" for n in threads)
        print(f"{name:28s} {cells}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="*", default=None)
    args = parser.parse_args()
    main(args.rounds, args.threads)
