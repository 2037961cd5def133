"""
Torch threads: skprune's default (by the work of a step) against fixed counts
=============================================================================

Times ``fit`` (batch 64) of four networks with skprune's default
thread policy (``set_torch_threads("auto")``) and with each fixed count of
``--threads`` (default: 1 and the number of cores), in interleaved rounds;
prints the median time of each, the ratio to the best fixed count and the
threads the default chose. The networks: the digits MLP (64-100-10, on the
1,797 digits, 20 epochs), 784-300-100-10 and 784-1000-1000-10 on the 8,000
MNIST-10k training images (3 epochs), and LeNet-5 on them (1 epoch).

``--sweep`` prints, instead, the time of 2 epochs of 784-h-10 MLPs (h from 8 to
512), 784-300-100-10 and LeNet-5 on 2,000 images under each fixed count, against the
multiply-adds per step (:func:`skprune.training._threads.step_work`): where a second
thread starts to pay, which sets :data:`skprune.training._threads.WORK_PER_THREAD`.

Run: ``python examples/benchmarks/bench_threads.py [--rounds 5] [--threads 1 2] [--sweep]``.
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier, set_torch_threads
from skprune.datasets import mnist_10k_split
from skprune.training._threads import policy_threads, step_work


def _mlp(hidden, epochs=3):
    return SparseNetClassifier(
        module__hidden_layer_sizes=hidden, batch_size=64, max_epochs=epochs, random_state=0
    )


def _lenet(epochs=1):
    return SparseNetClassifier("lenet5", batch_size=64, max_epochs=epochs, random_state=0)


def cases():
    """name -> (estimator, X, y) of the table."""
    X, y = load_digits(return_X_y=True)
    X_mnist, _, y_mnist, _ = mnist_10k_split()
    mnist = (X_mnist.reshape(len(X_mnist), -1), y_mnist)
    return {
        "digits MLP 64-100-10, 20 ep.": (_mlp((100,), 20), (X / 16).astype(np.float32), y),
        "MNIST-10k 784-300-100-10": (_mlp((300, 100)), *mnist),
        "MNIST-10k 784-1000-1000-10": (_mlp((1000, 1000)), *mnist),
        "MNIST-10k LeNet-5, 1 epoch": (_lenet(), X_mnist, y_mnist),
    }


def sweep_cases():
    """name -> (estimator, X, y): 784-h-10 MLPs and LeNet-5, 2,000 images, 2 epochs."""
    X, _, y, _ = mnist_10k_split()
    X, y = X[:2000], y[:2000]
    flat = X.reshape(len(X), -1)
    mlps = {f"784-{h}-10": (_mlp((h,), 2), flat, y) for h in [8, 16, 32, 64, 128, 256, 512]}
    return {**mlps, "784-300-100-10": (_mlp((300, 100), 2), flat, y), "LeNet-5": (_lenet(2), X, y)}


def chosen_threads(estimator, X, y):
    """Multiply-adds of a step of ``estimator`` on ``X`` and the threads the default gives it."""
    fitted = clone(estimator).set_params(max_epochs=1).fit(X[:200], y[:200])
    work = step_work(fitted.net_.module_, fitted._validate_predict_data(X[:1]), 64)
    return work, policy_threads(work)


def _timed(estimator, X, y):
    start = time.perf_counter()
    clone(estimator).fit(X, y)
    return time.perf_counter() - start


def timings(estimator, X, y, settings, rounds):
    """setting -> median over rounds of the fit time; settings interleaved in each round."""
    times = {s: [] for s in settings}
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        for s in settings:
            set_torch_threads(s)
            times[s].append(_timed(estimator, X, y))
    set_torch_threads("auto")
    return {s: statistics.median(t[1:]) for s, t in times.items()}


def main(rounds=5, threads=None, sweep=False):
    warnings.simplefilter("ignore", UserWarning)
    threads = sorted(set([1, *(threads or [torch.get_num_threads()])]))
    settings = [*threads] if sweep else ["auto", *threads]
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    header = "  ".join(f"{s!s:>7}" for s in settings)
    print(f"{'fit':28s} {'work/step':>11} {'auto→':>5}  {header}  default/best", flush=True)
    for name, (est, X, y) in (sweep_cases() if sweep else cases()).items():
        work, n = chosen_threads(est, X, y)
        medians = timings(est, X, y, settings, rounds)
        best = min(medians[t] for t in threads)
        cells = "  ".join(f"{medians[s]:6.3f}s" for s in settings)
        ratio = "" if sweep else f"  {medians['auto'] / best:.2f}x"
        print(f"{name:28s} {work / 1e6:9.1f} M {n:5d}  {cells}{ratio}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="*", default=None)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    main(args.rounds, args.threads, args.sweep)
