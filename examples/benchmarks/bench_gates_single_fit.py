"""
One fit with hard-concrete gates: the stacked loop (K = 1) against skorch's loop
================================================================================

``SparseNetClassifier(regularizer="hard_concrete", target_density=0.3)`` on
digits (MLP 64-100-10, 10 epochs, batch 32): ``fit`` as it runs now (through
the engine with one copy, ``training_loop_ == "stacked"``) against the same
fit through skorch's loop (what ``fit`` ran before the gates stacked), in
interleaved rounds, one torch thread. Prints the median time of each and the
median of the per-round ratios, and the largest weight difference.

Run: ``python examples/benchmarks/bench_gates_single_fit.py [--rounds 5]``.
"""

import argparse
import statistics
import time
from unittest import mock

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier, set_torch_threads


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    set_torch_threads(1)
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    est = SparseNetClassifier(
        regularizer="hard_concrete",
        target_density=0.3,
        max_epochs=10,
        batch_size=32,
        random_state=0,
    )
    clone(est).fit(X, y)  # warm-up
    stacked, skorch, ratios = [], [], []
    for _ in range(args.rounds):
        t_stack, a = _timed(lambda: clone(est).fit(X, y))
        with mock.patch("skprune.engine.fit_net", lambda *args: False):
            t_skorch, b = _timed(lambda: clone(est).fit(X, y))
        stacked.append(t_stack)
        skorch.append(t_skorch)
        ratios.append(t_stack / t_skorch)
    assert (a.training_loop_, b.training_loop_) == ("stacked", "skorch")
    with torch.no_grad():
        gap = max(
            float((p - q).abs().max())
            for p, q in zip(a.net_.module_.parameters(), b.net_.module_.parameters())
        )
    print(f"stacked (K = 1)  {statistics.median(stacked):.3f} s")
    print(f"skorch's loop    {statistics.median(skorch):.3f} s")
    print(f"stacked/skorch   {statistics.median(ratios):.2f}  (median of {args.rounds} rounds)")
    print(f"max |Δw|         {gap:.2e}   densities {a.density_:.4f} / {b.density_:.4f}")


if __name__ == "__main__":
    main()
