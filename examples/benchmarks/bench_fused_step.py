"""
Fusing the stack's elementwise work: eager kernels against ``torch.compile``
============================================================================

After the backward pass, a 16-copy step of the digits MLP (64-100-10, ℓ1,
batchwise pruning, Adam) runs several passes over its 16 × 7,510 parameters:
Ω's absolute values and sums, the λ·sign(w) update of the gradient, fused
Adam, hardshrink. This script times that work as the engine runs it (eager
torch kernels, :mod:`skprune.training._stack_loop`) against the same arithmetic fused
by ``torch.compile`` (inductor), and prints the compile time. Rounds
interleaved, one thread; the table gives the median over rounds of the time
per step.

Run: ``python examples/benchmarks/bench_fused_step.py [--rounds 5] [--copies 16]``.
"""

import argparse
import statistics
import time

import torch

from skprune.regularizers import L1
from skprune.training._stack_loop import _add_penalty_grad, per_copy_penalty

TAU, LR, BETAS, EPS = 1e-3, 1e-3, (0.9, 0.999), 1e-8


def state(k, seed=0):
    """Stacked parameters, gradients and Adam moments of k MLPs 64-100-10."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(k, 100, 64), (k, 100), (k, 10, 100), (k, 10)]
    params = [torch.randn(s, generator=g) * 0.05 for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 0.01
    moments = [[torch.zeros(s) for s in shapes] for _ in range(2)]
    return params, moments, torch.rand(k, generator=g) * 1e-2


def eager_step(params, moments, lam, t):
    """What train_stack runs after the backward pass (fused Adam's kernel called directly)."""
    weights = [params[0], params[2]]
    omega = per_copy_penalty(L1(), weights)
    _add_penalty_grad(L1(), weights, lam)
    steps = [t] * len(params)
    torch._fused_adam_(
        params, [p.grad for p in params], *moments, [], steps, amsgrad=False, lr=LR,
        beta1=BETAS[0], beta2=BETAS[1], weight_decay=0.0, eps=EPS, maximize=False,
        grad_scale=None, found_inf=None,
    )  # fmt: skip
    for w in weights:
        torch.hardshrink(w, TAU, out=w)
    return omega


def fused_body(params, grads, exp_avgs, exp_avg_sqs, lam, t):
    """The same arithmetic written out, for inductor to fuse."""
    b1, b2 = BETAS
    omega = 0
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        if i in (0, 2):
            omega = omega + p.abs().flatten(1).sum(1)
            g = g + torch.sign(p) * lam.view(-1, 1, 1)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        new = p - LR / (1 - b1**t) * m / ((v / (1 - b2**t)).sqrt() + EPS)
        p.copy_(torch.where(new.abs() > TAU, new, 0.0) if i in (0, 2) else new)
    return omega


def per_step(step, k, n=300):
    params, moments, lam = state(k)
    for i in range(20):  # warm-up
        step(params, moments, lam, torch.tensor(float(i + 1)))
    start = time.perf_counter()
    for i in range(n):
        step(params, moments, lam, torch.tensor(float(i + 21)))
    return (time.perf_counter() - start) / n


def main(rounds=5, copies=16):
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    compiled = torch.compile(fused_body, dynamic=False)

    def compiled_step(params, moments, lam, t):
        return compiled(params, [p.grad for p in params], *moments, lam, t)

    start = time.perf_counter()
    per_step(compiled_step, copies, n=1)
    print(f"torch.compile: first call (compiling) {time.perf_counter() - start:.1f} s")
    times = {"eager": [], "compiled": []}
    for _ in range(rounds):
        times["eager"].append(per_step(eager_step, copies))
        times["compiled"].append(per_step(compiled_step, copies))
    for name, values in times.items():
        rounds_us = ", ".join(f"{v * 1e6:.0f}" for v in values)
        print(f"{name:9s} {statistics.median(values) * 1e6:6.0f} µs per step ({rounds_us})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=16)
    args = parser.parse_args()
    main(args.rounds, args.copies)
