"""
Reproduce Reiners et al., Table 2 (a)-(c), on MNIST-10k with LeNet-5
====================================================================

LeNet-5 (Table 1a), Adam (lr 1e-3), batch 32, ℓ1 on the dense layers, threshold
τ = 1e-3, 20 epochs, for λ ∈ {0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3} and batchwise,
epochwise and after-training pruning. For each run the table gives the
cross-entropy on the training and test images, Ω = Σ|w| of the dense layers,
the non-zero weights of each dense layer, and the accuracies — the columns of
the paper's Table 2.

Run: ``python examples/benchmarks/reproduce_reiners_table2.py [--epochs 20]
[--mnist DIR] [--out docs/reproductions/reiners_table2.rst]``. Takes about
ten minutes on one CPU thread.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import log_loss

from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split

LAMBDAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
MODES = {"batch": "(b) batchwise", "epoch": "(c) epochwise", "after": "(a) after training"}
HEADER = (
    "λ",
    "CE train",
    "CE test",
    "Ω ℓ1",
    "w¹ ≠ 0",
    "w² ≠ 0",
    "w³ ≠ 0",
    "density",
    "acc train",
    "acc test",
    "fit s",
)


def run(mode, lam, data, epochs, seed):
    X_train, X_test, y_train, y_test = data
    clf = SparseNetClassifier(
        module="lenet5",
        regularizer="l1",
        lam=lam,
        pruning=mode,
        threshold=1e-3,
        optimizer="adam",
        lr=1e-3,
        batch_size=32,
        max_epochs=epochs,
        random_state=seed,
    )
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    nonzero = [
        round(d * w.numel())
        for (_, w), d in zip(clf.net_.named_regularized_weights(), clf.layer_density_.values())
    ]
    p_train, p_test = clf.predict_proba(X_train), clf.predict_proba(X_test)
    return {
        "λ": lam,
        "CE train": log_loss(y_train, p_train, labels=clf.classes_),
        "CE test": log_loss(y_test, p_test, labels=clf.classes_),
        "Ω ℓ1": clf.objectives_[1],
        **{f"w{s} ≠ 0": n for s, n in zip("¹²³", nonzero)},
        "density": clf.density_,
        "acc train": np.mean(clf.classes_[p_train.argmax(1)] == y_train),
        "acc test": np.mean(clf.classes_[p_test.argmax(1)] == y_test),
        "fit s": seconds,
    }


def _fmt(key, value):
    if key == "λ":
        return "0" if value == 0 else f"{value:.0e}"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.1f}" if key in ("Ω ℓ1", "fit s") else f"{value:.3f}"


def rst_table(title, rows):
    cells = [HEADER] + [tuple(_fmt(k, r[k]) for k in HEADER) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    rule = " ".join("=" * w for w in widths)
    lines = [
        title,
        "~" * len(title),
        "",
        rule,
        " ".join(h.rjust(w) for h, w in zip(HEADER, widths)),
        rule,
    ]
    lines += [" ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells[1:]]
    return "\n".join(lines + [rule, ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist", default=None, help="folder of the MNIST-10k files")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", default=None, help="also write the tables (RST) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = mnist_10k_split(args.mnist)
    tables = []
    for mode in args.modes:
        rows = []
        for lam in LAMBDAS:
            rows.append(run(mode, lam, data, args.epochs, args.seed))
            print(" ".join(f"{k}={_fmt(k, v)}" for k, v in rows[-1].items()), flush=True)
        title = f"{MODES[mode]} pruning, MNIST-10k, LeNet-5, τ = 1e-3, {args.epochs} epochs"
        tables.append(rst_table(title, rows))
        print("\n" + tables[-1], flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(tables))
    return tables


if __name__ == "__main__":
    main()
