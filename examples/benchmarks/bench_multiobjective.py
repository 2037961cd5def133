"""
Multi-objective optimisers on LeNet-5 / MNIST-10k: cost per epoch and λ against the knee
========================================================================================

Two measurements (Reiners et al. §6.3.1, Fig. 7–8):

1. **Cost.** Seconds per epoch of ``optimizer="madam"``, ``"mrmsprop"`` and
   ``"smgd"`` against ``"adam"`` with ℓ1 (λ = 3e-4), all with batchwise
   threshold pruning (τ = 1e-3), batch 64, one CPU thread, in interleaved
   rounds; the ratio to Adam is the figure of merit (goal ≤ 1.3).
2. **λ against the knee.** A small ℓ1-Adam grid over λ locates the knee of the
   (test error, density) trade-off — the point farthest from the chord between
   the extreme points on normalised axes; MAdam is then trained with the same
   settings, and its λ* per step, density and accuracy are set against the
   knee's. The paper's observation is that λ* stays far below the knee λ and
   the network stays denser.

Run: ``python examples/benchmarks/bench_multiobjective.py [--epochs 15]
[--rounds 3] [--time-epochs 3] [--plot docs/_static/multiobjective_mnist.png]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from skorch.callbacks import Callback

from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split

TAU, LR, BATCH = 1e-3, 1e-3, 64
GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
RATES = {"adam": 1e-3, "madam": 1e-3, "mrmsprop": 1e-3, "smgd": 0.05}


def knee_index(error, density):
    """Index of the knee: the point farthest from the chord between the extremes.

    Both objectives are scaled to [0, 1]; only non-dominated points compete.

    >>> knee_index([0.9, 0.05, 0.03, 0.02], [0.0, 0.1, 0.5, 1.0])
    1
    """
    error, density = np.asarray(error, float), np.asarray(density, float)
    points = np.column_stack([density, error])
    span = np.ptp(points, axis=0)
    points = (points - points.min(axis=0)) / np.where(span > 0, span, 1)
    dominated = [np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1)) for p in points]
    order = np.argsort(points[:, 0])
    a, b = points[order[0]], points[order[-1]]
    chord = (b - a) / max(np.linalg.norm(b - a), 1e-12)
    offsets = points - a
    distance = np.abs(offsets[:, 0] * chord[1] - offsets[:, 1] * chord[0])
    return int(np.argmax(np.where(dominated, -1.0, distance)))


class TestAccuracy(Callback):
    """Records the accuracy on held-out images after every epoch as ``test_acc``."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def on_epoch_end(self, net, **kwargs):
        X = torch.as_tensor(self.X)
        accuracy = float(np.mean(net.predict(X) == self.y))
        net.history.record("test_acc", accuracy)


def fit(X, y, optimizer, epochs, seed=0, lam=3e-4, callbacks=None):
    clf = SparseNetClassifier(
        module="lenet5",
        optimizer=optimizer,
        lam=lam,
        lr=RATES[optimizer],
        threshold=TAU,
        pruning="batch",
        batch_size=BATCH,
        max_epochs=epochs,
        random_state=seed,
        device="cpu",
        callbacks=callbacks,
    )
    return clf.fit(X, y)


def time_epochs(X, y, epochs, rounds):
    """Per-epoch seconds of each optimiser, ``rounds`` interleaved repeats."""
    times = {name: [] for name in RATES}
    for name in RATES:  # warm-up: first calls pay for lazy initialisation
        fit(X[:512], y[:512], name, 1)
    for r in range(rounds):
        for name in RATES:
            start = time.perf_counter()
            fit(X, y, name, epochs, seed=r)
            times[name].append((time.perf_counter() - start) / epochs)
    return times


def print_times(times, epochs, rounds):
    print(
        f"\nCost: LeNet-5, MNIST-10k train (8000), batch {BATCH}, batchwise tau={TAU}, "
        f"{epochs} epochs x {rounds} interleaved rounds, 1 thread"
    )
    base_best, base_median = min(times["adam"]), statistics.median(times["adam"])
    header = ("best s/ep", 10), ("median s/ep", 12), ("best ratio", 11), ("median ratio", 13)
    print(f"{'optimizer':<10}" + "".join(f" {name:>{width}}" for name, width in header))
    for name, ts in times.items():
        best, median = min(ts), statistics.median(ts)
        print(
            f"{name:<10} {best:10.3f} {median:12.3f} {best / base_best:11.3f} "
            f"{median / base_median:13.3f}"
        )


def knee_comparison(X_train, X_test, y_train, y_test, epochs):
    """ℓ1-Adam over ``GRID``, its knee, and MAdam with the same settings."""
    rows = []
    for lam in GRID:
        clf = fit(
            X_train, y_train, "adam", epochs, lam=lam, callbacks=[TestAccuracy(X_test, y_test)]
        )
        rows.append((lam, clf))
    errors = [1 - clf.history_[-1, "test_acc"] for _, clf in rows]
    knee = knee_index(errors, [clf.density_ for _, clf in rows])
    madam = fit(X_train, y_train, "madam", epochs, callbacks=[TestAccuracy(X_test, y_test)])
    return rows, knee, madam


def print_knee(rows, knee, madam, epochs):
    print(f"\nKnee: LeNet-5, MNIST-10k (8000 train / 2000 test), {epochs} epochs, batch {BATCH}")
    print(f"{'run':<16} {'lambda':>10} {'test acc':>9} {'density':>8} {'Omega':>9}")
    for i, (lam, clf) in enumerate(rows):
        name = "l1-Adam" + (" (knee)" if i == knee else "")
        print(
            f"{name:<16} {lam:10.1e} {clf.history_[-1, 'test_acc']:9.4f} "
            f"{clf.density_:8.4f} {clf.objectives_[1]:9.1f}"
        )
    lambdas, knee_lam = madam.lambda_history_, rows[knee][0]
    print(
        f"{'MAdam':<16} {'adaptive':>10} {madam.history_[-1, 'test_acc']:9.4f} "
        f"{madam.density_:8.4f} {madam.objectives_[1]:9.1f}"
    )
    last = lambdas[-len(lambdas) // epochs :]
    print(
        f"MAdam λ* per step: mean {lambdas.mean():.2e}, median {np.median(lambdas):.2e}, "
        f"max {lambdas.max():.2e}, last-epoch mean {last.mean():.2e}; "
        f"{np.mean(lambdas < knee_lam):.1%} of {len(lambdas)} steps below the knee "
        f"λ={knee_lam:.0e}, {np.mean(lambdas == 0):.1%} at λ*=0"
    )
    denser = madam.density_ / rows[knee][1].density_
    print(f"MAdam density / knee density = {denser:.2f}")


def plot(rows, knee, madam, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    knee_lam, knee_clf = rows[knee]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    lambdas = madam.lambda_history_
    per_epoch = len(lambdas) // len(madam.history_)
    smooth = np.convolve(lambdas, np.ones(per_epoch) / per_epoch, mode="valid")
    ax1.plot(lambdas, lw=0.3, alpha=0.4, label="MAdam λ* per step")
    ax1.plot(np.arange(per_epoch - 1, len(lambdas)), smooth, label="MAdam λ*, mean over an epoch")
    ax1.axhline(knee_lam, ls="--", c="k", label=f"knee λ of ℓ1-Adam ({knee_lam:.0e})")
    ax1.set(xlabel="optimiser step", ylabel="λ", title="λ per step (cf. Reiners Fig. 8)")
    ax1.legend(fontsize=8)
    epochs = np.arange(1, len(madam.history_) + 1)
    ax2.plot(epochs, madam.history_[:, "test_acc"], label=f"MAdam (density {madam.density_:.2f})")
    label = f"ℓ1-Adam at the knee (density {knee_clf.density_:.2f})"
    ax2.plot(epochs, knee_clf.history_[:, "test_acc"], ls="--", c="k", label=label)
    ax2.set(xlabel="epoch", ylabel="test accuracy", title="accuracy (cf. Reiners Fig. 7)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    print(f"\nsaved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the knee comparison")
    parser.add_argument("--time-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="0 skips the cost measurement")
    parser.add_argument("--mnist", default=None, help="folder of the MNIST-10k files")
    parser.add_argument("--plot", default=None, help="save the λ / accuracy figure here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X_train, X_test, y_train, y_test = mnist_10k_split(args.mnist)
    times = None
    if args.rounds:
        times = time_epochs(X_train, y_train, args.time_epochs, args.rounds)
        print_times(times, args.time_epochs, args.rounds)
    rows, knee, madam = knee_comparison(X_train, X_test, y_train, y_test, args.epochs)
    print_knee(rows, knee, madam, args.epochs)
    if args.plot:
        plot(rows, knee, madam, args.plot)
    return {"times": times, "rows": rows, "knee": knee, "madam": madam}


if __name__ == "__main__":
    main()
