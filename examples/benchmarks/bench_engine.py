"""
Training K networks at once: the stacked engine against K separate fits
=======================================================================

:func:`skprune.lambda_path` trains the networks of K values of λ as one stacked
model (:mod:`skprune.engine`). This benchmark times it against K and compares
single fits with a plain PyTorch loop and scikit-learn's ``MLPClassifier``:

* ``lambda_path``: the time of ``lambda_path`` with K λ values over the time
  of one ``fit`` (which trains through the engine with K = 1) — the MLP
  64-100-10 on digits (Adam, batch 32, ℓ1, batchwise pruning), the
  ``SparseNetRegressor`` MLP 10-100-1 on diabetes (same settings) and LeNet-5
  on 2,000 MNIST-10k images; in brackets, over K times one fit through skorch's
  loop (the engine turned off: the path every fit took before it);
* equivalence: the largest weight difference between ``lambda_path`` of 4 λ
  and the 4 separate fits (2 epochs on digits);
* ``single``: one fit on digits and breast cancer (MLP with 100 hidden units,
  Adam, batch 32) — dense (no regulariser, no pruning) against
  ``MLPClassifier`` (``alpha=0``, no early stop) and a plain torch loop; ℓ1
  with batchwise pruning against a plain torch loop doing the same work; and
  a dense ``SparseNetRegressor`` against ``MLPRegressor`` on diabetes.

Times are wall-clock, one thread (``--threads``), rounds interleaved; the table
gives the median over rounds of each ratio.

Run: ``python examples/benchmarks/bench_engine.py [--quick] [--rounds 3] [--plot PATH]``;
``--only mlp --ks 16 --rounds 7`` gives the one row (here: 16 MLPs) with more rounds.
"""

import argparse
import statistics
import time
import warnings
from unittest import mock

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

from skprune import SparseNetClassifier, SparseNetRegressor, lambda_path, set_torch_threads
from skprune.datasets import mnist_10k_split

LAM, TAU, LR, BATCH = 1e-4, 1e-3, 1e-3, 32


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def skorch_loop():
    """Fits through skorch's training loop: the engine turned off."""
    return mock.patch("skprune.engine.fit_net", lambda *args: False)


def path_ratios(estimator, X, y, ks, rounds):
    """Per K: median of time(lambda_path, K) / time(one fit) and / (K · skorch fit).

    One fit is ``fit`` as it is now (through the engine where it serves the
    settings); a skorch fit is ``fit`` with the engine turned off.
    """
    lams = {k: list(np.logspace(-5, -2, k)) for k in ks}
    ratios = {k: ([], []) for k in ks}
    lambda_path(estimator, X, y, lams[ks[-1]])  # warm-up: first calls pay one-off costs
    for _ in range(rounds):
        one = _timed(lambda: clone(estimator).fit(X, y))
        with skorch_loop():
            separate = _timed(lambda: clone(estimator).fit(X, y))
        for k in ks:
            t = _timed(lambda k=k: lambda_path(estimator, X, y, lams[k]))
            ratios[k][0].append(t / one)
            ratios[k][1].append(t / (k * separate))
    return {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in ratios.items()}


def equivalence(X, y, lams=(1e-5, 1e-4, 1e-3, 1e-2), epochs=2):
    """Max |Δw| between ``lambda_path`` and separate fits through skorch's loop."""
    est = SparseNetClassifier(max_epochs=epochs, random_state=0)
    path = lambda_path(est, X, y, lams)
    with skorch_loop(), torch.no_grad():
        separate = [clone(est).set_params(lam=lam).fit(X, y) for lam in lams]
        return max(
            float((a - b).abs().max())
            for p, s in zip(path, separate)
            for a, b in zip(p.net_.module_.parameters(), s.net_.module_.parameters())
        )


def torch_loop(X, y, epochs, lam, seed=0):
    """The same training written as one plain PyTorch loop (fused Adam, autograd)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 100), torch.nn.ReLU(), torch.nn.Linear(100, int(y.max()) + 1)
    )
    weights = [model[0].weight, model[2].weight]
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), BATCH):
            idx = order[start : start + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            if lam:
                loss = (1 - lam) * loss + lam * sum(w.abs().sum() for w in weights)
            loss.backward()
            opt.step()
            if lam:
                with torch.no_grad():
                    for w in weights:
                        torch.hardshrink(w, TAU, out=w)


def single_ratios(X, y, epochs, rounds):
    """Median ratios of one fit: dense vs MLPClassifier and torch; ℓ1 vs torch."""
    dense = SparseNetClassifier(regularizer=None, pruning=None, max_epochs=epochs, random_state=0)
    l1 = SparseNetClassifier(lam=LAM, max_epochs=epochs, random_state=0)
    sk = MLPClassifier(
        (100,), alpha=0.0, batch_size=BATCH, learning_rate_init=LR, max_iter=epochs,
        tol=0.0, n_iter_no_change=epochs + 1, random_state=0,
    )  # fmt: skip
    out = {"dense/MLPClassifier": [], "dense/torch": [], "l1/torch": []}
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        t = {
            "dense": _timed(lambda: dense.fit(X, y)),
            "sk": _timed(lambda: sk.fit(X, y)),
            "torch": _timed(lambda: torch_loop(X, y, epochs, 0.0)),
            "l1": _timed(lambda: l1.fit(X, y)),
            "torch_l1": _timed(lambda: torch_loop(X, y, epochs, LAM)),
        }
        out["dense/MLPClassifier"].append(t["dense"] / t["sk"])
        out["dense/torch"].append(t["dense"] / t["torch"])
        out["l1/torch"].append(t["l1"] / t["torch_l1"])
    return {name: statistics.median(v[1:]) for name, v in out.items()}


def regression_ratio(X, y, epochs, rounds):
    """Median ratio of one dense ``SparseNetRegressor`` fit over ``MLPRegressor``'s."""
    dense = SparseNetRegressor(regularizer=None, pruning=None, max_epochs=epochs, random_state=0)
    sk = MLPRegressor(
        hidden_layer_sizes=(100,), alpha=0.0, batch_size=BATCH, learning_rate_init=LR,
        max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=0,
    )  # fmt: skip
    ratios = [
        _timed(lambda: dense.fit(X, y)) / _timed(lambda: sk.fit(X, y)) for _ in range(rounds + 1)
    ]
    return {"dense/MLPRegressor": statistics.median(ratios[1:])}  # the first round warms up


def _datasets(quick):
    X, y = load_digits(return_X_y=True)
    digits = ((X / 16).astype(np.float32), y)
    X, y = load_breast_cancer(return_X_y=True)
    cancer = (StandardScaler().fit_transform(X).astype(np.float32), y)
    X, y = load_diabetes(return_X_y=True)
    diabetes = (StandardScaler().fit_transform(X).astype(np.float32), y)
    X, _, y, _ = mnist_10k_split()
    n = 500 if quick else 2000
    return digits, cancer, diabetes, (X[:n], y[:n])


def main(quick=False, rounds=3, plot=None, ks=None, only=None):
    """All rows; with ``only`` ("mlp", "regressor", "lenet5") that network's path row alone."""
    warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning))
    digits, cancer, diabetes, mnist = _datasets(quick)
    if only is None:
        print(f"lambda_path of 4 λ vs 4 separate fits, digits, 2 epochs: max |Δw| = "
              f"{equivalence(*digits):.1e}")  # fmt: skip
    ks = tuple(ks or ((1, 4, 16) if quick else (1, 4, 16, 48)))
    mlp_epochs, lenet_epochs = (3, 1) if quick else (20, 3)
    rows = {
        "mlp": (f"MLP digits, {mlp_epochs} epochs", SparseNetClassifier, {}, digits),
        "regressor": (f"MLP regressor diabetes, {mlp_epochs} ep.", SparseNetRegressor, {},
                      diabetes),
        "lenet5": (f"LeNet-5 MNIST {len(mnist[0])}, {lenet_epochs} ep.", SparseNetClassifier,
                   {"module": "lenet5", "max_epochs": lenet_epochs}, mnist),
    }  # fmt: skip
    paths = {}
    for key, (name, cls, params, data) in rows.items():
        if only in (None, key):
            est = cls(**{"lam": LAM, "max_epochs": mlp_epochs, "random_state": 0, **params})
            paths[name] = path_ratios(est, *data, ks, rounds)
    print(f"{'lambda_path':32s} " + " ".join(f"{'K=' + str(k):>14s}" for k in ks))
    for name, ratios in paths.items():
        cells = " ".join(f"{a:5.2f}x ({b:4.2f})" for a, b in (ratios[k] for k in ks))
        print(f"{name:32s} {cells}")
    print("  (time over one fit; in brackets, over K fits through skorch's loop)")
    if only is not None:
        return paths
    for name, data in (("digits", digits), ("breast cancer", cancer)):
        ratios = single_ratios(*data, mlp_epochs, rounds)
        print(f"single fit, {name:14s} " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    ratios = regression_ratio(*diabetes, mlp_epochs, rounds)
    print(f"single fit, {'diabetes':14s} " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    if plot:
        _plot(paths, ks, plot)
    return paths


def _plot(paths, ks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, ratios in paths.items():
        ax.plot(ks, [ratios[k][0] for k in ks], "o-", label=f"{name}: stacked")
    ax.plot(ks, ks, "k--", lw=1, label="K separate fits")
    ax.set(xscale="log", yscale="log", xlabel="K (networks trained)", ylabel="time / one fit")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--ks", type=int, nargs="+", default=None, help="numbers of networks")
    parser.add_argument("--only", choices=["mlp", "regressor", "lenet5"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the plain torch loop and MLPClassifier's BLAS
    set_torch_threads(args.threads)  # skprune's fits (one thread by default)
    main(args.quick, args.rounds, args.plot, args.ks, args.only)
