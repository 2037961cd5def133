"""
Every part trains stacked: ``lambda_path`` of 8 λ against 8 separate fits
=========================================================================

For each setting below (an MLP on digits, or ``"vgg"`` on CIFAR-shaped random
data), ``lambda_path`` of 8 values of λ is compared with the 8 separate fits
``clone(est).set_params(lam=λ).fit(X, y)``:

* ``loop``: which loop trained the path (``stacked``: one stack of 8;
  ``skorch``: it fell back to separate fits);
* ``max |Δw|``: the largest weight difference between a path's network and
  its separate fit (target ≤ 1e-4), and whether their densities are equal;
* ``path / separate``: the median over interleaved rounds of
  time(lambda_path) / time(8 separate fits) (target ≤ 0.5; for ``vgg`` ≤ 1).

One torch thread. Run: ``python examples/benchmarks/bench_stacked_parts.py
[--rounds 3] [--only NAME ...]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier, lambda_path, set_torch_threads

LAMS = list(np.logspace(-5, -2, 8))
MLP = dict(max_epochs=10, batch_size=32, random_state=0)

#: name -> (estimator parameters, data): one row each.
CASES = {
    "l1 (reference)": (dict(MLP), "digits"),
    "vgg (dropout, batch norm)": (dict(MLP, module="vgg", max_epochs=2, batch_size=64), "cifar"),
    "validation_fraction=0.1": (dict(MLP, validation_fraction=0.1), "digits"),
    "sigmoid lr + early stopping": (
        dict(
            MLP,
            max_epochs=20,
            lr_schedule="sigmoid",
            validation_fraction=0.1,
            early_stopping=True,
            n_iter_no_change=3,
        ),
        "digits",
    ),  # fmt: skip
    "madam": (dict(MLP, optimizer="madam"), "digits"),
    "class_weight='balanced'": (dict(MLP, class_weight="balanced"), "digits"),
    "hard_concrete ε=0.3": (dict(MLP, regularizer="hard_concrete", target_density=0.3), "digits"),
    "hard_concrete penalised": (dict(MLP, regularizer="hard_concrete"), "digits"),
}


def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def cifar_shaped(n=256, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, 3, 32, 32).astype(np.float32), rng.randint(0, 10, n)


DATA = {"digits": digits, "cifar": cifar_shaped}


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def max_weight_gap(fitted, separate):
    with torch.no_grad():
        return max(
            float((a - b).abs().max())
            for f, s in zip(fitted, separate)
            for a, b in zip(f.net_.module_.parameters(), s.net_.module_.parameters())
        )


def run_case(params, X, y, rounds):
    est = SparseNetClassifier(**params)
    ratios = []
    clone(est).fit(X, y)  # warm-up: the first calls pay one-off costs
    for _ in range(rounds):
        t_path, path = _timed(lambda: lambda_path(est, X, y, LAMS))
        t_sep, separate = _timed(lambda: [clone(est).set_params(lam=lam).fit(X, y) for lam in LAMS])
        ratios.append(t_path / t_sep)
    loops = {p.training_loop_ for p in path}
    same_density = all(p.density_ == s.density_ for p, s in zip(path, separate))
    return {
        "loop": "/".join(sorted(loops)),
        "gap": max_weight_gap(path, separate),
        "same_density": same_density,
        "ratio": statistics.median(ratios),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    set_torch_threads(1)
    cache = {}
    print(f"{'setting':<42} {'loop':>8} {'max |Δw|':>10} {'density':>8} {'path/sep':>9}")
    for name, (params, data) in CASES.items():
        if args.only and name not in args.only:
            continue
        X, y = cache.setdefault(data, DATA[data]())
        row = run_case(params, X, y, args.rounds)
        density = "equal" if row["same_density"] else "DIFFER"
        print(
            f"{name:<42} {row['loop']:>8} {row['gap']:>10.2e} {density:>8} {row['ratio']:>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
