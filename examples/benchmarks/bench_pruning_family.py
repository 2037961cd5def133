"""
The regulariser and pruning family on LeNet-300-100, MNIST-10k (issue #3's figures)
===================================================================================

* Adam (lr 1e-3, batch 32), 15 epochs, λ = 1e-5: each of ℓ1, ℓ2, ℓ0, ℓ2+ℓ0
  with global pruning to 5 % (+3 fine-tuning epochs), layerwise pruning to
  10 % (+3) and random pruning to 5 % (+3), against the unregularised network;
* LOBSTER: SGD (lr 0.1), λ = 1e-4, ``loss_tolerance=0.05``,
  ``validation_fraction=0.1``, ``patience=5``, 40 epochs, against the dense
  network trained the same way without regulariser and pruning.

Accuracy on the 2,000 MNIST-10k test images; one CPU thread.

Run: ``python examples/benchmarks/bench_pruning_family.py [--seed 0] [--mnist DIR]
[--skip-magnitude] [--skip-lobster] [--patience 5] [--lobster-epochs 40]
[--lobster-lam 1e-4]``.
"""

import argparse
import time

import torch

from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split

MAGNITUDE = dict(module="lenet300", lam=1e-5, max_epochs=15, finetune_epochs=3)
LOBSTER = dict(
    module="lenet300",
    optimizer="sgd",
    lr=0.1,
    lam=1e-4,
    loss_tolerance=0.05,
    validation_fraction=0.1,
    max_epochs=40,
)


def _fit(data, **params):
    X_train, X_test, y_train, y_test = data
    start = time.perf_counter()
    clf = SparseNetClassifier(device="cpu", **params).fit(X_train, y_train)
    return clf, clf.score(X_test, y_test), time.perf_counter() - start


def _row(name, clf, acc, seconds, reference):
    layers = " ".join(f"{d:.4f}" for d in clf.layer_density_.values())
    print(
        f"{name:<28} {acc:7.4f} {100 * (acc - reference):+7.2f} {clf.density_:8.4f} "
        f"{1 / max(clf.density_, 1e-12):7.1f}x  {layers:<24} {seconds:6.1f}"
    )


def magnitude_runs(data, seed):
    dense, ref, s = _fit(data, regularizer=None, pruning=None, random_state=seed, **MAGNITUDE)
    _row("none (dense)", dense, ref, s, ref)
    for reg in ("l1", "l2", "l0", "l2_l0"):
        for pruning, density in (("global", 0.05), ("layerwise", 0.10), ("random", 0.05)):
            clf, acc, s = _fit(
                data,
                regularizer=reg,
                pruning=pruning,
                target_density=density,
                random_state=seed,
                **MAGNITUDE,
            )
            _row(f"{reg} {pruning} {density:.0%}", clf, acc, s, ref)


def lobster_runs(data, seed, patience, epochs, lam):
    params = {**LOBSTER, "max_epochs": epochs}
    dense, ref, s = _fit(data, regularizer=None, pruning=None, random_state=seed, **params)
    _row(f"sgd dense ({epochs} ep)", dense, ref, s, ref)
    params["lam"] = lam
    clf, acc, s = _fit(
        data,
        regularizer="lobster",
        pruning="lobster",
        patience=patience,
        random_state=seed,
        **params,
    )
    _row(f"lobster (PWE={patience}, λ={lam:g})", clf, acc, s, ref)
    print("  pruning stages (epoch, T, weights pruned, density after):")
    for row in clf.history_:
        if "event_lobster_prune" in row:
            print(
                f"    {row['epoch']:4d} {row['lobster_threshold']:.4g} "
                f"{row['event_lobster_prune']:7d} {row['density']:.4f}"
            )
    print(f"  epochs run: {len(clf.history_)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist", default=None, help="folder of the MNIST-10k files")
    parser.add_argument("--skip-magnitude", action="store_true")
    parser.add_argument("--skip-lobster", action="store_true")
    parser.add_argument("--patience", type=int, default=5, help="LOBSTER's PWE")
    parser.add_argument("--lobster-epochs", type=int, default=40)
    parser.add_argument("--lobster-lam", type=float, default=1e-4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X_train, X_test, y_train, y_test = mnist_10k_split(args.mnist, flat=True)
    data = (X_train, X_test, y_train, y_test)
    print(
        f"{'run':<28} {'acc':>7} {'Δpt':>7} {'density':>8} {'ratio':>8}  "
        f"{'layer densities':<24} {'fit s':>6}"
    )
    if not args.skip_magnitude:
        magnitude_runs(data, args.seed)
    if not args.skip_lobster:
        lobster_runs(data, args.seed, args.patience, args.lobster_epochs, args.lobster_lam)


if __name__ == "__main__":
    main()
