"""
Accuracy against compression for ℓ1 / ℓ2 / ℓ0 / ℓ2+ℓ0 / LOBSTER × global / layerwise / random
=============================================================================================

The analogue of de Resende Oliveira et al. Fig. 2 (no fine-tuning) and Fig. 3
(with fine-tuning) on LeNet-300-100 and MNIST-10k. Each regulariser trains
once (Adam, lr 1e-3, batch 32, 15 epochs; λ = 1e-5, LOBSTER λ = 1e-4, the
unregularised network as reference); every compression level 2× … 200× is then
cut from those trained weights by global magnitude, layerwise magnitude or
random pruning and scored on the 2,000 test images, before and after
``--finetune`` epochs of training with the mask held. One CPU thread.

Run: ``python examples/benchmarks/compare_regularizers.py [--quick] [--finetune 1]
[--seed 0] [--mnist DIR] [--plot docs/_static/compare_regularizers.png]``.
"""

import argparse
import copy
import time

import numpy as np
import torch

from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split
from skprune.magnitude import MagnitudePruning

COMPRESSION = (2, 5, 10, 20, 50, 100, 200)
QUICK_COMPRESSION = (2, 10, 50, 200)
METHODS = ("global", "layerwise", "random")
REGULARIZERS = {  # name -> (regularizer, lam)
    "none": (None, 0.0),
    "l1": ("l1", 1e-5),
    "l2": ("l2", 1e-5),
    "l0": ("l0", 1e-5),
    "l2_l0": ("l2_l0", 1e-5),
    "lobster": ("lobster", 1e-4),
}


def train(name, X, y, epochs, seed):
    regularizer, lam = REGULARIZERS[name]
    clf = SparseNetClassifier(
        module="lenet300",
        regularizer=regularizer,
        lam=lam,
        pruning=None,
        max_epochs=epochs,
        random_state=seed,
        device="cpu",
    )
    return clf.fit(X, y)


def pruned_copy(clf, method, density, seed):
    """A copy of the fitted ``clf`` pruned to ``density``, and its mask callback."""
    clf = copy.deepcopy(clf)
    callback = MagnitudePruning(method, density, prune_after=0, seed=seed).initialize()
    callback.on_train_begin(clf.net_)
    clf.net_.callbacks_.append(("finetune_mask", callback))
    return clf


def finetune(clf, X, y, epochs):
    X = clf._to_tensor(np.asarray(X, dtype=np.float32))
    y = torch.as_tensor(np.searchsorted(clf.classes_, y))
    clf.net_.partial_fit(X, y, epochs=epochs)
    return clf


def evaluate(models, data, levels, ft_epochs, seed):
    """rows of (regulariser, method, compression, density, acc, acc after fine-tuning)."""
    X_train, X_test, y_train, y_test = data
    rows = []
    for name, clf in models.items():
        for method in METHODS:
            for c in levels:
                pruned = pruned_copy(clf, method, 1.0 / c, seed)
                acc = pruned.score(X_test, y_test)
                ft = finetune(pruned, X_train, y_train, ft_epochs).score(X_test, y_test)
                density = sum(
                    int(torch.count_nonzero(w)) for w in pruned.net_.regularized_weights()
                )
                rows.append((name, method, c, density / clf.n_weights_, acc, ft))
    return rows


def print_table(rows, levels, column, title):
    print(f"\n{title}")
    print(f"{'regulariser':<10} {'pruning':<10} " + " ".join(f"{c:>6}x" for c in levels))
    for name in REGULARIZERS:
        for method in METHODS:
            values = {r[2]: r[column] for r in rows if r[0] == name and r[1] == method}
            if values:
                cells = " ".join(f"{100 * values[c]:7.2f}" for c in levels)
                print(f"{name:<10} {method:<10} {cells}")


def plot(rows, levels, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError("The plot needs matplotlib: pip install skprune[plot]") from exc
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    styles = {"global": "-", "layerwise": "--", "random": ":"}
    colors = dict(zip(REGULARIZERS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, column, title in ((axes[0], 4, "no fine-tuning"), (axes[1], 5, "fine-tuned")):
        for name in REGULARIZERS:
            for method in METHODS:
                pts = [(r[2], 100 * r[column]) for r in rows if r[:2] == (name, method)]
                if pts:
                    x, y = zip(*pts)
                    label = f"{name} {method}" if ax is axes[0] else None
                    ax.plot(x, y, styles[method], color=colors[name], marker=".", label=label)
        ax.set(xscale="log", xlabel="compression (1 / density)", title=title, ylim=(0, 100))
        ax.set_xticks(levels, [f"{c}×" for c in levels])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.legend(loc="center right", fontsize=7, ncol=1)
    fig.subplots_adjust(right=0.82)
    fig.savefig(path, dpi=80)
    print(f"\nplot written to {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 epochs, 4 compression levels")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune", type=int, default=1, help="fine-tuning epochs per level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist", default=None, help="folder of the MNIST-10k files")
    parser.add_argument("--plot", default=None, help="save the figure to this PNG")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = mnist_10k_split(args.mnist, flat=True)
    epochs, levels = (5, QUICK_COMPRESSION) if args.quick else (args.epochs, COMPRESSION)
    start = time.perf_counter()
    models = {name: train(name, data[0], data[2], epochs, args.seed) for name in REGULARIZERS}
    print(f"LeNet-300-100, MNIST-10k, Adam lr 1e-3, {epochs} epochs, seed {args.seed}")
    for name, clf in models.items():
        print(f"  {name:<8} dense test accuracy {100 * clf.score(data[1], data[3]):.2f}")
    rows = evaluate(models, data, levels, args.finetune, args.seed)
    print_table(rows, levels, 4, "test accuracy (%) without fine-tuning")
    print_table(rows, levels, 5, f"test accuracy (%) after {args.finetune} fine-tuning epoch(s)")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.plot:
        plot(rows, levels, args.plot)
    return rows


if __name__ == "__main__":
    main()
