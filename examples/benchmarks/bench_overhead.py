"""
Fit time of SparseNetClassifier against plain PyTorch loops doing the same work
===============================================================================

LeNet-5 on the 8,000 MNIST-10k training images, Adam (lr 1e-3), batch 64,
ℓ1 with λ = 3e-4 and batchwise threshold pruning (τ = 1e-3), 4 epochs, one CPU
thread. Compared, in interleaved rounds:

* ``naive loop``: the loss ``(1-λ)·CE + λ·Σ|w|`` through autograd and a mask
  multiply after every step (what one writes first);
* ``skorch``: a plain ``skorch.NeuralNetClassifier`` with the same module and
  the naive penalty and pruning, fed numpy arrays (its default data path);
* ``skprune``: ``SparseNetClassifier``.

Ratios are given on process CPU time (one thread, so it is the work done, and
other processes on the machine barely change it) and on wall-clock time; the
function returns the CPU times.

Run: ``python examples/benchmarks/bench_overhead.py [--rounds 5] [--mnist DIR]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from skorch import NeuralNetClassifier

from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split
from skprune.models import LeNet5

LAM, TAU, LR, BATCH, EPOCHS = 3e-4, 1e-3, 1e-3, 64, 4


def _dense(model):
    return [model.layer1.weight, model.layer2.weight, model.layer3.weight]


@torch.no_grad()
def _mask_prune(weights):
    for w in weights:
        w.mul_((w.abs() >= TAU).to(w.dtype))


def naive_loop(X, y, seed):
    torch.manual_seed(seed)
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    _mask_prune(_dense(model))
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), BATCH):
            idx = order[start : start + BATCH]
            opt.zero_grad()
            ce = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            l1 = sum(w.abs().sum() for w in _dense(model))
            ((1 - LAM) * ce + LAM * l1).backward()
            opt.step()
            _mask_prune(_dense(model))
    return model


class _NaiveSkorch(NeuralNetClassifier):
    def get_loss(self, y_pred, y_true, X=None, training=False):
        ce = super().get_loss(y_pred, y_true, X=X, training=training)
        if not training:
            return ce
        return (1 - LAM) * ce + LAM * sum(w.abs().sum() for w in _dense(self.module_))

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            _mask_prune(_dense(self.module_))


def plain_skorch(X, y, seed):
    torch.manual_seed(seed)
    net = _NaiveSkorch(
        LeNet5,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=LR,
        batch_size=BATCH,
        max_epochs=EPOCHS,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
    )
    return net.fit(X, y)


def skprune_fit(X, y, seed):
    clf = SparseNetClassifier(
        module="lenet5",
        lam=LAM,
        threshold=TAU,
        pruning="batch",
        lr=LR,
        batch_size=BATCH,
        max_epochs=EPOCHS,
        random_state=seed,
        device="cpu",
    )
    return clf.fit(X, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mnist", default=None, help="folder of the MNIST-10k files")
    parser.add_argument("--no-skorch", action="store_true", help="skip plain skorch")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X_train, _, y_train, _ = mnist_10k_split(args.mnist)
    runs = {"naive loop": naive_loop, "skprune": skprune_fit}
    if not args.no_skorch:
        runs["skorch"] = plain_skorch
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            run(X_train, y_train, seed=r)
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    print(
        f"LeNet-5, MNIST-10k train (8000), batch {BATCH}, Adam, l1 lam={LAM}, "
        f"batchwise tau={TAU}, {EPOCHS} epochs, 1 thread, {args.rounds} rounds"
    )
    print(
        f"{'fit':<12} {'clock':<5} {'best s':>8} {'median s':>9} {'best ratio':>11} "
        f"{'median ratio':>13}"
    )
    for clock, times in (("cpu", cpu), ("wall", wall)):
        base_best = min(times["naive loop"])
        base_median = statistics.median(times["naive loop"])
        for name, ts in times.items():
            best, median = min(ts), statistics.median(ts)
            print(
                f"{name:<12} {clock:<5} {best:8.2f} {median:9.2f} {best / base_best:11.3f} "
                f"{median / base_median:13.3f}"
            )
    times = cpu
    return times


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
