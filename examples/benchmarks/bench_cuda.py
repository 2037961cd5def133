"""
skprune on a CUDA device: stacked λ paths, single fits and prediction
=====================================================================

What a GPU changes, measured on ``device="cuda"`` (this script exits with a
message where no CUDA device is present):

* ``lambda_path``: the time of ``lambda_path`` with K λ values over the time
  of one ``fit`` — LeNet-5 on MNIST-10k training images (Adam, batch 64, ℓ1,
  batchwise pruning) and the MLP 64-100-10 on digits (batch 32);
* ``fit vs torch``: one LeNet-5 fit against a plain PyTorch loop doing the same
  work on the same device (autograd ℓ1 penalty, hardshrink after each step);
* ``predict``: ``predict_proba`` of a trained LeNet-5 on 256 and on 2,000 test
  images, before and after ``sparsify()``, against the plain float32 forward.

Times are wall-clock, after ``torch.cuda.synchronize()``; every ratio is the
median over interleaved rounds, after one warm-up round.

Run: ``python examples/benchmarks/bench_cuda.py [--rounds 3] [--images 8000]``.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier, lambda_path
from skprune.datasets import mnist_10k_split
from skprune.models import LeNet5

LAM, TAU, LR = 3e-4, 1e-3, 1e-3


DEVICE = "cuda"


def _sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def torch_loop(X, y, epochs, batch, seed=0):
    """LeNet-5, Adam, ``(1-λ)·CE + λ·Σ|w|`` through autograd, hardshrink after each step."""
    torch.manual_seed(seed)
    model = LeNet5().to(DEVICE)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    X, y = torch.from_numpy(X).to(DEVICE), torch.from_numpy(y).to(DEVICE)
    for _ in range(epochs):
        order = torch.randperm(len(X), device=DEVICE)
        for start in range(0, len(X), batch):
            idx = order[start : start + batch]
            opt.zero_grad(set_to_none=True)
            ce = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            ((1 - LAM) * ce + LAM * sum(w.abs().sum() for w in weights)).backward()
            opt.step()
            with torch.no_grad():
                for w in weights:
                    torch.hardshrink(w, TAU, out=w)
    return model


def path_row(estimator, X, y, ks, rounds):
    lams = {k: list(np.logspace(-5, -2, k)) for k in ks}
    lambda_path(estimator, X, y, lams[ks[-1]])  # warm-up
    clone(estimator).fit(X, y)
    ratios = {k: [] for k in ks}
    one_times = []
    for _ in range(rounds):
        one = _timed(lambda: clone(estimator).fit(X, y))
        one_times.append(one)
        for k in ks:
            ratios[k].append(_timed(lambda k=k: lambda_path(estimator, X, y, lams[k])) / one)
    return statistics.median(one_times), {k: statistics.median(v) for k, v in ratios.items()}


def fit_vs_torch(X, y, epochs, rounds):
    est = SparseNetClassifier(
        module="lenet5", lam=LAM, threshold=TAU, pruning="batch", lr=LR, batch_size=64,
        max_epochs=epochs, random_state=0, device=DEVICE,
    )  # fmt: skip
    est.fit(X, y)
    torch_loop(X, y, 1, 64)
    out = []
    for _ in range(rounds):
        a = _timed(lambda: clone(est).fit(X, y))
        b = _timed(lambda: torch_loop(X, y, epochs, 64))
        out.append((a, b))
    return est, out


def predict_rows(est, X_test, rounds):
    model = est.net_.module_.eval()
    rows = {}
    for n in (256, 2000):
        x = X_test[:n]
        xt = torch.from_numpy(x).to(DEVICE)

        def plain(xt=xt):
            with torch.inference_mode():
                torch.softmax(model(xt), 1).cpu()

        times = {"plain": [], "skprune": []}
        for _ in range(rounds + 1):
            times["plain"].append(_timed(plain))
            times["skprune"].append(_timed(lambda x=x: est.predict_proba(x)))
        rows[n] = {k: statistics.median(v[1:]) for k, v in times.items()}
    est.sparsify()
    for n in (256, 2000):
        x = X_test[:n]
        rows[n]["sparsified"] = statistics.median(
            [_timed(lambda x=x: est.predict_proba(x)) for _ in range(rounds + 1)][1:]
        )
    est.densify()
    return rows


def main(rounds=3, images=8000, epochs=3):
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    warnings.simplefilter("ignore", UserWarning)
    name = torch.cuda.get_device_name(0) if DEVICE.startswith("cuda") else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    X, X_test, y, y_test = mnist_10k_split()
    X, y = X[:images], y[:images]
    ks = (1, 4, 16, 48)
    lenet = SparseNetClassifier(
        module="lenet5", lam=1e-4, max_epochs=epochs, batch_size=64, random_state=0,
        device=DEVICE,
    )  # fmt: skip
    Xd, yd = load_digits(return_X_y=True)
    Xd = (Xd / 16).astype(np.float32)
    mlp = SparseNetClassifier(lam=1e-4, max_epochs=20, random_state=0, device=DEVICE)
    print(f"{'lambda_path / one fit':34s}" + "".join(f"{'K=' + str(k):>9s}" for k in ks))
    for name, est, data in (
        (f"LeNet-5 MNIST {len(X)}, {epochs} ep.", lenet, (X, y)),
        ("MLP digits, 20 ep.", mlp, (Xd, yd)),
    ):
        one, ratios = path_row(est, *data, ks, rounds)
        cells = "".join(f"{ratios[k]:8.2f}x" for k in ks)
        print(f"{name:34s}{cells}   (one fit {one:.2f} s)")
    est, pairs = fit_vs_torch(X, y, epochs, rounds)
    ratio = statistics.median(a / b for a, b in pairs)
    print(
        f"one LeNet-5 fit / plain torch loop: {ratio:.2f} "
        f"(skprune {statistics.median(a for a, _ in pairs):.2f} s, "
        f"torch {statistics.median(b for _, b in pairs):.2f} s), "
        f"test accuracy {est.score(X_test, y_test):.3f}, density {est.density_:.3f}"
    )
    for n, row in predict_rows(est, X_test, max(rounds, 5)).items():
        print(
            f"predict_proba, {n:5d} images: plain forward {row['plain'] * 1e3:.2f} ms, "
            f"skprune {row['skprune'] * 1e3:.2f} ms, sparsified {row['sparsified'] * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="'cpu' checks the script itself")
    args = parser.parse_args()
    DEVICE = args.device
    main(args.rounds, args.images, args.epochs)
