"""
Choosing by cost: the fastest LeNet-5 within one point of accuracy
==================================================================

Issue 22's must-show. On MNIST-10k (8,000 training / 2,000 test images), the
search::

    ParetoSearchCV(SparseNetClassifier(module="lenet5", regularizer="group_l1",
                                       regularized_layers="all", max_epochs=10),
                   complexity="flops", knee="tolerance", tolerance=0.01,
                   cv=2, search_epochs=5, budget=7)

with its default λ range, against a dense LeNet-5 trained the same 10 epochs
(``regularizer=None``, ``pruning=None``). Reported: the test accuracy of both,
the chosen model's counted multiply-adds (``flops_``) against the dense count,
per layer, and the time of ``predict_proba`` on 256 test images after
``sparsify()`` against the plain float32 torch forward (and softmax) of the
dense LeNet-5: one torch thread, interleaved rounds, the median of the rounds
(each round the mean of ``--calls`` calls), in wall-clock time.

Run: ``python examples/benchmarks/bench_choose_by_cost.py [--mnist DIR]
[--rounds R] [--calls C] [--budget B] [--recipe channel]``.
"""

import argparse
import time

import numpy as np
import torch
from bench_cost import interleaved  # the same timing protocol
from threadpoolctl import threadpool_limits

from skprune import ParetoSearchCV, SparseNetClassifier, set_torch_threads
from skprune.datasets import mnist_10k_split


def plain_forward(module):
    """The dense module's float32 forward and softmax, no checks: the baseline."""
    module = module.float().eval()

    def run(x):
        with torch.no_grad():
            return torch.softmax(module(x), dim=1)

    return run


def make_search(args):
    """The search of issue 22, or with ``--recipe channel`` magnitude channel pruning.

    The channel recipe searches the share of multiply-adds kept
    (``pruning__target_flops``) instead of λ: filters of smallest ℓ1 norm
    removed after ``epochs - 3`` epochs, then 3 epochs of fine-tuning (the
    same 10 epochs in all).
    """
    common = {"complexity": "flops", "knee": "tolerance", "tolerance": args.tolerance, "cv": 2}
    if args.recipe == "channel":
        est = SparseNetClassifier(
            module="lenet5",
            regularizer=None,
            pruning="channel",
            pruning__target_flops=0.5,
            max_epochs=args.epochs - 3,
            finetune_epochs=3,
            random_state=0,
        )
        grid = [0.2, 0.3, 0.45]
        return ParetoSearchCV(
            est, param_name="pruning__target_flops", strategy="grid", lambdas=grid, **common
        )
    est = SparseNetClassifier(
        module="lenet5",
        regularizer="group_l1",
        regularized_layers="all",
        max_epochs=args.epochs,
        random_state=0,
    )
    return ParetoSearchCV(est, search_epochs=5, budget=args.budget, **common)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--budget", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--recipe", choices=("group_l1", "channel"), default="group_l1")
    args = parser.parse_args(argv)
    X_train, X_test, y_train, y_test = mnist_10k_split(args.mnist)

    start = time.perf_counter()
    dense = SparseNetClassifier(
        "lenet5", regularizer=None, pruning=None, max_epochs=args.epochs, random_state=0
    ).fit(X_train, y_train)
    dense_acc = dense.score(X_test, y_test)
    search = make_search(args).fit(X_train, y_train)
    best = search.best_estimator_
    acc = best.score(X_test, y_test)
    print(f"trained in {time.perf_counter() - start:.0f} s")

    results = search.cv_results_
    param = f"param_{search.param_name_}"
    print(f"\n{search.param_name_:10} cv accuracy  cv flops   front")
    for i in np.argsort(results[param].astype(float)):
        lam, score = float(results[param][i]), results["mean_test_score"][i]
        flops, front = results["mean_test_flops"][i], results["pareto_optimal"][i]
        knee = " <- knee" if i == search.knee_["cv_index"] else ""
        print(f"{lam:<10.3g} {score:11.4f}  {flops:9.0f}  {str(bool(front)):5}{knee}")

    print(f"\nknee {search.param_name_} = {search.knee_['lam']:.3g}, loop {best.training_loop_}")
    print(f"test accuracy: chosen {acc:.4f}, dense {dense_acc:.4f}, gap {dense_acc - acc:+.4f}")
    fewer = dense.flops_ / best.flops_
    print(f"flops: chosen {best.flops_} vs dense {dense.flops_} ({fewer:.2f}x fewer)")
    print("per layer:", best.layer_flops_)
    print(f"density {best.density_:.3f}, parameter bytes {best.param_bytes_}")

    X = X_test[:256]
    x = torch.from_numpy(np.ascontiguousarray(X))
    best.sparsify()
    torch32 = plain_forward(dense.net_.module_)
    set_torch_threads(1)
    with threadpool_limits(1), torch.no_grad():
        torch.set_num_threads(1)
        sparse_s, dense_s = interleaved(
            [lambda: best.predict_proba(X), lambda: torch32(x)], args.rounds, args.calls
        )
    ms = {"sparsified": 1e3 * sparse_s, "torch32_dense": 1e3 * dense_s}
    ratio = dense_s / sparse_s
    print(
        f"predict_proba on 256 images, one thread, median of {args.rounds} interleaved rounds: "
        f"sparsified {ms['sparsified']:.2f} ms, plain float32 dense forward "
        f"{ms['torch32_dense']:.2f} ms: {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
