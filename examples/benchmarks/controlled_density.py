"""
Controlled sparsity: achieved against target density (Gallego-Posada Fig. 1 and 2)
==================================================================================

LeNet-300-100 on the 8,000 MNIST-10k training images, scored on the 2,000 test
images; hard-concrete gates per weight with the default options, Adam (lr 1e-3,
batch 32: the estimator's defaults), 20 epochs, one CPU thread. Four experiments:

* model-wise constraint ``target_density=ε`` for ε from 0.9 to 0.02;
* layer-wise constraints, the same ε in each of the three layers;
* the penalised form ``λ·E‖z‖₀`` over a range of λ (Fig. 1's red curve);
* ε = 0.3 with and without dual restarts, density per epoch (Fig. 2).

Densities are counted on the fitted ``net_.module_`` (median gates folded in).

Run: ``python examples/benchmarks/controlled_density.py [--quick] [--plots DIR]``
(17 fits of about 50 s each on an idle core: about 15 minutes; ``--quick``, 8 fits,
about 7; Fig. 2 is then drawn at ε = 0.2 instead of 0.3).
"""

import argparse
import sys
import time

import numpy as np
import torch

from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split

TARGETS = (0.9, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)
LAYER_TARGETS = (0.5, 0.3, 0.1)
LAMS = (3e-7, 1e-6, 3e-6, 1e-5, 3e-5)
QUICK_TARGETS, QUICK_LAMS = (0.5, 0.2, 0.05), (1e-6, 1e-5)
LAYERS = ("layer1", "layer2", "layer3")
COMMON = dict(module="lenet300", batch_size=32, lr=1e-3, device="cpu", random_state=0)


def fit(data, epochs, **params):
    X_train, X_test, y_train, y_test = data
    params = {"regularizer": "hard_concrete", "pruning": None, **COMMON, **params}
    start = time.perf_counter()
    clf = SparseNetClassifier(max_epochs=epochs, **params).fit(X_train, y_train)
    run = {
        "clf": clf,
        "density": clf.density_,
        "layers": clf.layer_density_,
        "accuracy": clf.score(X_test, y_test),
        "seconds": time.perf_counter() - start,
    }
    setting = {k: v for k, v in params.items() if k not in COMMON}
    print(
        f"  fitted {setting}: density {run['density']:.3f}, acc {run['accuracy']:.4f}, "
        f"{run['seconds']:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return run


def model_wise(data, epochs, targets):
    rows = []
    for eps in targets:
        run = fit(data, epochs, target_density=eps)
        expected = run["clf"].history_[-1, "expected_density"]["model"]
        rows.append(("model-wise", f"eps={eps}", eps, run, expected))
    return rows


def layer_wise(data, epochs, targets):
    rows = []
    for eps in targets:
        run = fit(data, epochs, target_density=dict.fromkeys(LAYERS, eps))
        worst = max(abs(d - eps) for d in run["layers"].values())
        rows.append(("layer-wise", f"eps={eps}", eps, run, worst))
    return rows


def paper_form(data, epochs):
    """eq. (5)-(6) verbatim: multipliers ascend on the expected density."""
    options = {"regularizer__proxy_constraint": False}
    model = fit(data, epochs, target_density=0.2, **options)
    expected = model["clf"].history_[-1, "expected_density"]["model"]
    layer = fit(data, epochs, target_density=dict.fromkeys(LAYERS, 0.3), **options)
    worst = max(abs(d - 0.3) for d in layer["layers"].values())
    return [
        ("model-wise", "eps=0.2 E", 0.2, model, expected),
        ("layer-wise", "eps=0.3 E", 0.3, layer, worst),
    ]


def penalised(data, epochs, lams):
    return [("penalised", f"lam={lam:g}", lam, fit(data, epochs, lam=lam), None) for lam in lams]


def print_table(dense, rows):
    print(
        f"{'method':<11} {'setting':<12} {'density':>8} {'layer1':>7} {'layer2':>7} "
        f"{'layer3':>7} {'acc':>6} {'note':>14} {'s':>5}"
    )
    print(
        f"{'dense':<11} {'':<12} {1.0:8.3f} {'':>7} {'':>7} {'':>7} "
        f"{dense['accuracy']:6.4f} {'':>14} {dense['seconds']:5.0f}"
    )
    for method, setting, _, run, extra in rows:
        layers = [run["layers"][name] for name in LAYERS]
        note = ""
        if method == "model-wise":
            note = f"E-dens {extra:.3f}"
        elif method == "layer-wise":
            note = f"max|err| {extra:.3f}"
        print(
            f"{method:<11} {setting:<12} {run['density']:8.3f} {layers[0]:7.3f} "
            f"{layers[1]:7.3f} {layers[2]:7.3f} {run['accuracy']:6.4f} {note:>14} "
            f"{run['seconds']:5.0f}"
        )


def _trace(run):
    history = run["clf"].history_
    return {
        "run": run,
        "density": list(history[:, "density"]),
        "expected": [d["model"] for d in history[:, "expected_density"]],
        "multiplier": [m["model"] for m in history[:, "multiplier"]],
    }


def restarts(data, epochs, rows, eps):
    """Fig. 2: the model-wise run at ε (with restarts) against one without."""
    with_restarts = next(
        r for m, s, t, r, _ in rows if m == "model-wise" and t == eps and not s.endswith(" E")
    )
    without = fit(data, epochs, target_density=eps, regularizer__dual_restarts=False)
    out = {True: _trace(with_restarts), False: _trace(without)}
    print(f"\nDual restarts, model-wise eps={eps}: density per epoch (fitted network)")
    for on in (True, False):
        r = out[on]
        print(
            f"  restarts={str(on):<5} final density {r['run']['density']:.3f} "
            f"(|err| {abs(r['run']['density'] - eps):.3f}), acc {r['run']['accuracy']:.4f}, "
            f"final multiplier {r['multiplier'][-1]:.2e}: "
            + " ".join(f"{d:.3f}" for d in r["density"])
        )
    return out


def plot(rows, traces, folder, eps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    rows = [row for row in rows if not row[1].endswith(" E")]
    pts = np.array([(t, r["density"]) for m, _, t, r, _ in rows if m == "model-wise"])
    left.plot(pts[:, 0], pts[:, 1], "o", label="model-wise")
    for i, name in enumerate(LAYERS):
        pts = np.array([(t, r["layers"][name]) for m, _, t, r, _ in rows if m == "layer-wise"])
        left.plot(pts[:, 0], pts[:, 1], "s^v"[i], ms=5, label=f"layer-wise: {name}")
    left.plot([0, 1], [0, 1], "k--", lw=0.8, label="achieved = target")
    left.set(xlabel="target density ε", ylabel="achieved density", title="Constrained")
    left.legend(fontsize=8)
    pts = np.array([(t, r["density"]) for m, _, t, r, _ in rows if m == "penalised"])
    right.semilogx(pts[:, 0], pts[:, 1], "o-", color="C3")
    right.set(xlabel="penalty λ", ylabel="achieved density", title="Penalised λ·E‖z‖₀")
    fig.tight_layout()
    fig.savefig(f"{folder}/controlled_density_fig1.png", dpi=80)

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for on, color in ((True, "C0"), (False, "C1")):
        epochs = np.arange(1, len(traces[on]["density"]) + 1)
        label = "with" if on else "without"
        ax.plot(epochs, traces[on]["density"], "-", color=color, label=f"{label} restarts")
        ax.plot(epochs, traces[on]["expected"], ":", color=color)
    ax.axhline(eps, color="k", ls="--", lw=0.8)
    ax.set(xlabel="epoch", ylabel="density", title=f"ε = {eps}: fitted (—), expected (···)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{folder}/controlled_density_fig2.png", dpi=80)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer targets and λ")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--mnist", default=None, help="folder of the MNIST-10k files")
    parser.add_argument("--plots", default=None, help="folder for the two PNG figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = mnist_10k_split(args.mnist, flat=True)
    targets, lams = (QUICK_TARGETS, QUICK_LAMS) if args.quick else (TARGETS, LAMS)
    print(
        f"LeNet-300-100, MNIST-10k (8000 train / 2000 test), batch 32, Adam 1e-3, "
        f"{args.epochs} epochs, 1 thread; hard-concrete gates per weight\n"
    )
    dense = fit(data, args.epochs, regularizer=None)
    rows = model_wise(data, args.epochs, targets)
    rows += layer_wise(data, args.epochs, (0.3,) if args.quick else LAYER_TARGETS)
    rows += paper_form(data, args.epochs)
    rows += penalised(data, args.epochs, lams)
    print_table(dense, rows)
    eps = 0.2 if args.quick else 0.3
    traces = restarts(data, args.epochs, rows, eps)
    if args.plots:
        plot(rows, traces, args.plots, eps)
    return dense, rows, traces


if __name__ == "__main__":
    main()
