"""
A vectorised knee search: ``ParetoSearchCV(vectorize=True)`` against ``False``
==============================================================================

Times ``ParetoSearchCV(strategy="grid")`` over 8 λ values (log-spaced over
``[1e-5, 1e-1]``) × 3 folds of digits (``X / 16``) for the MLP 64-100-10 (ℓ1,
Adam, batch 32, 20 epochs), refit at the knee included, with
``vectorize=True`` (each round's 24 (λ, fold) pairs trained together by the
stacked engine) and ``vectorize=False`` (24 separate fits); rounds
interleaved, one thread. Prints the median over rounds of the time ratio and
both knees, which must be the same λ. With ``--regression``, the same for a
pipeline ``StandardScaler`` → ``SparseNetRegressor`` (MLP 10-100-1) on
diabetes: the scaler is fitted once per fold, the networks are stacked.

Run: ``python examples/benchmarks/bench_vectorize.py [--rounds 3] [--n-jobs 1] [--regression]``.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skprune import ParetoSearchCV, SparseNetClassifier, SparseNetRegressor

# The largest λ of the grid collapse the network: expected here, not news.
warnings.filterwarnings("ignore", message="Every regularised weight is zero")


def timed_search(vectorize, X, y, epochs=20, n_jobs=None, regression=False):
    """``(seconds, search)`` of one fitted ``ParetoSearchCV``."""
    if regression:
        estimator = make_pipeline(
            StandardScaler(), SparseNetRegressor(max_epochs=epochs, random_state=0)
        )
        param_name = "sparsenetregressor__lam"
    else:
        estimator, param_name = SparseNetClassifier(max_epochs=epochs, random_state=0), "lam"
    search = ParetoSearchCV(
        estimator,
        param_name=param_name,
        strategy="grid",
        lambdas=np.logspace(-5, -1, 8),
        cv=3,
        vectorize=vectorize,
        n_jobs=n_jobs,
    )
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search


def main(rounds=3, n_jobs=None, epochs=20, regression=False):
    torch.set_num_threads(1)
    if regression:
        name = "diabetes, scaler + MLP regressor"
        X, y = load_diabetes(return_X_y=True)
    else:
        name = "digits MLP"
        X, y = load_digits(return_X_y=True)
        X = (X / 16).astype(np.float32)
    timed_search(True, X, y, 1, None, regression)  # warm-up: first calls pay one-off costs
    ratios, times, knees = [], {True: [], False: []}, set()
    for _ in range(rounds):
        t_off, off = timed_search(False, X, y, epochs, n_jobs, regression)
        t_on, on = timed_search(True, X, y, epochs, n_jobs, regression)
        times[False].append(t_off), times[True].append(t_on)
        ratios.append(t_on / t_off)
        knees.add((off.knee_["lam"], on.knee_["lam"]))
        gap = np.abs(off.density_path_ - on.density_path_).max()
        print(f"  round: False {t_off:.2f}s, True {t_on:.2f}s, ratio {t_on / t_off:.3f}, "
              f"knees {off.knee_['lam']:.3g} / {on.knee_['lam']:.3g}, max |Δdensity| {gap:.1e}",
              flush=True)  # fmt: skip
    print(f"8 λ × 3 folds, {name}, {epochs} epochs, n_jobs={n_jobs}: "
          f"vectorize=True {statistics.median(times[True]):.2f}s, "
          f"False {statistics.median(times[False]):.2f}s, "
          f"median ratio {statistics.median(ratios):.3f}; knees (False, True): "
          f"{sorted(knees)}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--regression", action="store_true")
    args = parser.parse_args()
    main(args.rounds, args.n_jobs, args.epochs, args.regression)
