"""
Prediction speed and file size of pruned networks, dense and sparsified
=======================================================================

LeNet-300-100 and LeNet-5 on MNIST-10k, pruned by global magnitude to the
densities 1, 0.1, 0.05 and 0.01 (``pruning="global", target_density=d``) after
a few epochs of training: accuracy is not the point here, it is reported only
to show the networks are trained. One torch thread, one onnxruntime thread,
one BLAS thread.

Compared, per batch size (1, 64, 256, 1024), in interleaved rounds (the
median of the rounds is reported, in process CPU time per call):

* ``dense``: ``predict_proba`` of the trained estimator (float64 form, cached);
* ``sparse``: ``predict_proba`` after ``clf.sparsify()``;
* ``torch32``: a plain float32 torch forward of the trained (dense) module and
  a softmax, no input checks;
* ``onnx``: onnxruntime on the ``skprune.onnx`` export (compacted, float32);
* ``sk_mlp``: scikit-learn's ``MLPClassifier`` of the same layer sizes, its
  coefficients set from ours (LeNet-300-100 only).

File sizes: ``pickle.dumps`` of the dense estimator against ``skprune.save``
of the sparsified one.

Structured fronts (``--part structured``, issue 22), 256 images, one thread,
interleaved rounds, median of process CPU time per call:

* LeNet-5 on MNIST-10k at the channel/unit widths a channel prune leaves
  (6-16-120-84 down to 2-4-30-20): trained with those channels held at zero
  by a callback (after every batch; the shapes of Li et al. 2017's filter
  pruning, chosen as the first channels of a random initialisation), then
  ``sparsify()``: accuracy, counted multiply-adds (``flops`` of the deployed
  form), the sparsified ``predict_proba`` against the plain float32 forward
  of the dense LeNet-5 and onnxruntime on the export; and the time of each
  layer of the deployed form for one of them;
* ``"vgg"`` on CIFAR-shaped random data and a user module with batch norm
  and a residual sum: whole output channels zeroed at channel densities 1 to
  0.25, the largest probability difference between the compacted and the
  uncompacted form, counted multiply-adds and the time of the compacted
  form against the uncompacted one (latency only: the weights are random).

Run: ``python examples/benchmarks/bench_deploy.py [--quick] [--plot PATH]
[--mnist DIR] [--epochs N] [--rounds R] [--part {unstructured,structured,all}]
[--crossover]``.
"""

import argparse
import copy
import os
import pickle
import statistics
import tempfile
import time

import numpy as np
import torch
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits

import skprune
from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split
from skprune.estimators._inference import inference_form
from skprune.models import VGGLike

DENSITIES = (1.0, 0.1, 0.05, 0.01)
BATCHES = (1, 64, 256, 1024)
MODELS = ("lenet300", "lenet5")


def train(module, density, X, y, epochs):
    clf = SparseNetClassifier(
        module,
        regularizer=None,
        pruning="global",
        target_density=density,
        max_epochs=epochs,
        finetune_epochs=1,
        batch_size=64,
        random_state=0,
    )
    return clf.fit(X, y)


def torch_forward(clf):
    module = clf.net_.module_.eval()

    @torch.no_grad()
    def run(X):
        return torch.softmax(module(torch.from_numpy(X)), dim=1).numpy()

    return run


def onnx_session(clf, X):
    try:
        import onnxruntime as ort
        import skl2onnx

        import skprune.onnx  # noqa: F401
    except ImportError:
        return None
    onx = skl2onnx.to_onnx(clf, X[:1], options={SparseNetClassifier: {"zipmap": False}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onx.SerializeToString(), options, ["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda X: session.run(None, {name: X})[1]


def sklearn_mlp(clf, X, y):
    from sklearn.neural_network import MLPClassifier

    module = clf.net_.module_
    layers = [getattr(module, f"layer{i}") for i in range(1, module.n_layers + 1)]
    mlp = MLPClassifier(hidden_layer_sizes=[lay.out_features for lay in layers[:-1]])
    mlp.set_params(max_iter=1).fit(X[:100], y[:100])  # the attributes; weights set below
    mlp.coefs_ = [lay.weight.detach().numpy().T.copy() for lay in layers]
    mlp.intercepts_ = [lay.bias.detach().numpy().copy() for lay in layers]
    return mlp.predict_proba


def time_calls(fn, X, budget=0.02):
    """CPU seconds per call of ``fn(X)``, over calls filling about ``budget`` s.

    Process CPU time, not wall time: with one thread everywhere it is the work
    done, and the other processes sharing the machine barely change it.
    """
    fn(X)
    start, n = time.process_time(), 0
    while time.process_time() - start < budget or n < 3:
        fn(X)
        n += 1
    return (time.process_time() - start) / n


def file_sizes(clf):
    dense_pickle = len(pickle.dumps(clf.densify()))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.skp")
        skprune.save(clf.sparsify(), path)
        saved = os.path.getsize(path)
    clf.densify()
    return dense_pickle, saved


def bench_model(module, density, data, epochs, rounds, batches):
    X_train, X_test, y_train, y_test = data
    shape = (-1, 784) if module == "lenet300" else (-1, 1, 28, 28)
    Xf = X_test.reshape(shape)
    clf = train(module, density, X_train.reshape(shape), y_train, epochs)
    accuracy = clf.score(Xf, y_test)
    sparse = pickle.loads(pickle.dumps(clf)).sparsify()
    flat = Xf.reshape(len(Xf), -1)
    sparse_proba, dense_proba = sparse.predict_proba(Xf), clf.predict_proba(Xf)
    assert (sparse_proba.argmax(1) == dense_proba.argmax(1)).all()
    variants = {
        "dense": clf.predict_proba,
        "sparse": sparse.predict_proba,
        "torch32": torch_forward(clf),
        "onnx": onnx_session(clf, flat),
    }
    if module == "lenet300":
        variants["sk_mlp"] = sklearn_mlp(clf, flat, y_train)
    variants = {k: v for k, v in variants.items() if v is not None}
    times = {(k, b): [] for k in variants for b in batches}
    for _ in range(rounds):
        for b in batches:
            inputs = {"onnx": flat[:b], "sk_mlp": flat[:b]}
            for name, fn in variants.items():
                times[name, b].append(time_calls(fn, inputs.get(name, Xf[:b])))
    sizes = file_sizes(clf)
    return {
        "accuracy": accuracy,
        "density": clf.density_,
        "times": {k: statistics.median(v) for k, v in times.items()},
        "sizes": sizes,
    }


def print_table(results, batches):
    names = ["dense", "sparse", "torch32", "onnx", "sk_mlp"]
    print(
        f"{'model':9} {'dens.':>6} {'acc.':>5} {'batch':>5} "
        + " ".join(f"{n + ' µs':>11}" for n in names)
        + "  sparse vs torch32"
    )
    for (module, _), r in results.items():
        for b in batches:
            cells = [r["times"].get((n, b)) for n in names]
            row = " ".join(f"{c * 1e6:11.1f}" if c else f"{'-':>11}" for c in cells)
            ratio = r["times"]["torch32", b] / r["times"]["sparse", b]
            print(
                f"{module:9} {r['density']:6.3f} {r['accuracy']:5.3f} {b:5d} {row}  {ratio:5.2f}x"
            )
    print("\nfile sizes: dense pickle vs skprune.save of the sparsified estimator")
    for (module, density), r in results.items():
        pickled, saved = r["sizes"]
        print(
            f"{module:9} {density:5.2f}  {pickled / 1e3:9.1f} kB  {saved / 1e3:8.1f} kB"
            f"  ({saved / pickled:6.2%})"
        )


def plot(results, batches, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(MODELS), 2, figsize=(10, 7), squeeze=False)
    for row, module in enumerate(MODELS):
        runs = {d: r for (m, d), r in results.items() if m == module}
        for col, b in enumerate((batches[0], batches[-1])):
            ax = axes[row, col]
            for name in ("dense", "sparse", "torch32", "onnx", "sk_mlp"):
                ys = [runs[d]["times"].get((name, b)) for d in runs]
                if all(ys):
                    ax.plot(list(runs), [t * 1e6 for t in ys], "o-", label=name)
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="density",
                ylabel="µs per call",
                title=f"{module}, batch {b}",
            )
            ax.invert_xaxis()
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="1 epoch, 2 rounds, 2,000 images")
    parser.add_argument("--plot", metavar="PATH")
    parser.add_argument("--mnist", metavar="DIR")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--part", choices=["unstructured", "structured", "all"], default="all")
    parser.add_argument("--crossover", action="store_true", help="CSR against dense, per density")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS too (MLPClassifier), else its threads spin
    if args.crossover:
        return crossover()
    epochs, rounds = (1, 2) if args.quick else (args.epochs, args.rounds)
    X_train, X_test, y_train, y_test = mnist_10k_split(args.mnist)
    if args.quick:
        X_train, y_train = X_train[:2000], y_train[:2000]
    data = (X_train, X_test, y_train, y_test)
    results = {}
    if args.part in ("unstructured", "all"):
        for module in MODELS:
            for density in DENSITIES:
                results[module, density] = bench_model(
                    module, density, data, epochs, rounds, BATCHES
                )
        print_table(results, BATCHES)
    if args.part in ("structured", "all"):
        lenet = bench_lenet5_front(data, max(epochs, 2), rounds)
        convs = bench_conv_fronts(rounds)
        results["structured"] = (lenet, convs)
        if args.plot:
            plot_structured(lenet, convs, args.plot)
    elif args.plot:
        plot(results, BATCHES, args.plot)
    return results


# -- structured fronts (issue 22) ---------------------------------------------

LENET5_WIDTHS = ((6, 16, 120, 84), (5, 12, 100, 70), (4, 10, 80, 60), (4, 8, 60, 40),
                 (3, 6, 40, 30), (2, 4, 30, 20))  # fmt: skip
CHANNEL_DENSITIES = (1.0, 0.75, 0.5, 0.25)


class HoldChannelsAtZero(Callback):
    """After every batch, zero the output channels and units beyond the widths kept."""

    def __init__(self, widths):
        self.widths = widths

    def on_batch_end(self, net, **kwargs):
        zero_beyond(net.module_, self.widths)


@torch.no_grad()
def zero_beyond(module, widths):
    layers = (module.conv1, module.conv2, module.layer1, module.layer2)
    for layer, width in zip(layers, widths):
        layer.weight[width:] = 0
        layer.bias[width:] = 0


def _per_call(fns, X, rounds):
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(time_calls(fn, X, budget=0.1))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_lenet5_front(data, epochs, rounds):
    """Structured LeNet-5s against the plain float32 forward of the dense one."""
    X_train, X_test, y_train, y_test = (a.reshape(len(a), -1) if a.ndim > 1 else a for a in data)
    X = X_test[:256].reshape(-1, 1, 28, 28)
    rows, dense_forward, layer_times = [], None, None
    for widths in LENET5_WIDTHS:
        clf = SparseNetClassifier(
            "lenet5", regularizer=None, pruning=None, max_epochs=epochs, batch_size=64,
            random_state=0, callbacks=[HoldChannelsAtZero(widths)],
        ).fit(X_train.reshape(-1, 1, 28, 28), y_train)  # fmt: skip
        zero_beyond(clf.net_.module_, widths)
        dense_forward = dense_forward or torch_forward(clf)  # the full-width net: the baseline
        accuracy = clf.score(X_test.reshape(-1, 1, 28, 28), y_test)
        clf.sparsify()
        form = inference_form(clf.net_)
        fns = {"torch32": dense_forward, "sparse": clf.predict_proba}
        session = onnx_session(clf, X_test[:1])
        if session is not None:
            fns["onnx"] = lambda Z, s=session: s(Z.reshape(len(Z), -1))
        times = _per_call(fns, X, rounds)
        rows.append((widths, accuracy, form.flops, times))
        if widths == (3, 6, 40, 30):
            layer_times = form.layer_times(torch.from_numpy(X), repeats=50)
    print_lenet5_front(rows, layer_times)
    return rows


def print_lenet5_front(rows, layer_times):
    print("\nLeNet-5, 256 images, one thread; speed-up against the dense float32 torch forward")
    print(f"{'widths':16} {'acc.':>6} {'MACs':>8} {'torch32 µs':>11} {'sparse µs':>10} "
          f"{'onnx µs':>9} {'sparse x':>9} {'onnx x':>7}")  # fmt: skip
    nan = float("nan")
    for widths, accuracy, flops, t in rows:
        onnx, base = t.get("onnx", nan), t["torch32"]
        name = "-".join(map(str, widths))
        print(
            f"{name:16} {accuracy:6.3f} {flops:8d} {base * 1e6:11.0f} {t['sparse'] * 1e6:10.0f} "
            f"{onnx * 1e6:9.0f} {base / t['sparse']:8.2f}x {base / onnx:6.2f}x"
        )
    flops = [r[2] for r in rows]
    spearman = _spearman(flops, [r[3]["sparse"] for r in rows])
    print(f"Spearman(counted MACs, sparse time) over {len(rows)} models: {spearman:.2f}")
    if layer_times:
        print("\nDeployed form of the 3-6-40-30 LeNet-5, per layer (median of 50), 256 images:")
        for op, seconds in layer_times:
            print(f"  {op!r:38} {seconds * 1e6:8.0f} µs  {op.flops:7d} MACs/sample")


def _spearman(a, b):
    ranks = [np.argsort(np.argsort(v)) for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


class ResidualNet(torch.nn.Module):
    """A user module with batch norm and a residual sum (CIFAR-shaped input)."""

    def __init__(self, width=64, n_classes=10):
        super().__init__()
        nn = torch.nn
        self.conv1, self.bn1 = nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 8 * 8, n_classes)

    def forward(self, x):
        x = x.reshape(len(x), 3, 32, 32)
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(h + self.bn2(self.conv2(h)))
        h = torch.nn.functional.max_pool2d(h, 2)
        h = torch.nn.functional.max_pool2d(torch.relu(self.conv3(h)), 2)
        return self.fc(h.flatten(1))


@torch.no_grad()
def _zero_channels(module, density, seed):
    g = torch.Generator().manual_seed(seed)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics of a trained net, not 0 and 1
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
    for conv in convs:
        dead = torch.randperm(len(conv.weight), generator=g)[
            : round(len(conv.weight) * (1 - density))
        ]
        conv.weight[dead] = 0
    if isinstance(module, ResidualNet):  # the residual sum couples the two convolutions
        module.conv2.weight[~module.conv1.weight.flatten(1).any(1)] = 0
        module.conv1.weight[~module.conv2.weight.flatten(1).any(1)] = 0
    return module


def bench_conv_fronts(rounds):
    """VGG and a residual user module: compacted against uncompacted, per channel density."""
    from skprune.sparsify import compact

    X = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = []
    for name, make in (("vgg", lambda: VGGLike(10)), ("residual", ResidualNet)):
        for density in CHANNEL_DENSITIES:
            torch.manual_seed(0)
            module = _zero_channels(make().eval(), density, seed=1)
            exact = copy.deepcopy(module).double()
            form = compact(module, input_shape=(3, 32, 32))
            with torch.no_grad():
                want = torch.softmax(exact(X.double()), 1)
                diff = float((torch.softmax(form(X.to(_dtype(form))), 1) - want).abs().max())
            plain = copy.deepcopy(module)
            fns = {
                "uncompacted32": lambda Z, m=plain: _no_grad(m, Z),
                "compacted": lambda Z, f=form: _no_grad(f, Z.to(_dtype(f))),
            }
            if name != "vgg":  # its compacted form is a float64 copy: compared with one
                fns["uncompacted64"] = lambda Z, m=exact: _no_grad(m, Z.double())
            times = _per_call(fns, X, rounds)
            rows.append((name, density, _macs(form, X), diff, times))
    print_conv_fronts(rows)
    return rows


def _dtype(form):
    return torch.float32 if hasattr(form, "ops") else torch.float64


def _no_grad(fn, X):
    with torch.no_grad():
        return fn(X)


def _macs(form, X):
    if hasattr(form, "flops"):
        return form.flops
    from skprune.training._threads import step_work

    return step_work(form, X.double(), 1)


def print_conv_fronts(rows):
    print("\nConvolutional fronts, 16 CIFAR-shaped images, one thread (random weights)")
    print(f"{'module':9} {'chan.':>5} {'MACs':>10} {'max |dp|':>9} {'dense32 µs':>11} "
          f"{'dense64 µs':>11} {'compact µs':>11} {'MACs x':>7} {'time x':>7}")  # fmt: skip
    for name, density, macs, diff, t in rows:
        full = next(r[2] for r in rows if r[0] == name and r[1] == 1.0)
        base = t["uncompacted32"] if name == "vgg" else t["uncompacted64"]
        print(
            f"{name:9} {density:5.2f} {macs:10d} {diff:9.1e} {t['uncompacted32'] * 1e6:11.0f} "
            f"{t.get('uncompacted64', float('nan')) * 1e6:11.0f} {t['compacted'] * 1e6:11.0f} "
            f"{full / macs:6.2f}x {base / t['compacted']:6.2f}x"
        )
    print("time x: against the float32 module for vgg (its form is float32), the float64 one")
    print("for the user module (its compacted form is a float64 copy).")


def plot_structured(lenet, convs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    base = lenet[0][3]["torch32"]
    for key, label in (("sparse", "skprune sparsify()"), ("onnx", "onnxruntime")):
        pts = [(r[3][key] * 1e3, r[1]) for r in lenet if key in r[3]]
        if pts:
            left.plot(*zip(*pts), "o-", label=label)
    left.axvline(base * 1e3, color="grey", ls="--", label="dense LeNet-5, torch float32")
    left.set(xlabel="ms per 256 images (one thread)", ylabel="test accuracy",
             title="Structured LeNet-5s, MNIST-10k")  # fmt: skip
    left.legend()
    for name in ("vgg", "residual"):
        pts = [(r[2] / 1e6, r[4]["compacted"] * 1e3) for r in convs if r[0] == name]
        right.plot(*zip(*pts), "o-", label=f"{name}, compacted")
    right.set(xlabel="counted multiply-adds per image (millions)", ylabel="ms per 16 images",
              title="Time follows the counted multiply-adds")  # fmt: skip
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _layer_variants(out_f, in_f, n, density):
    from skprune.estimators._deployed import _chunked_addmm

    weight = torch.randn(out_f, in_f) * (torch.rand(out_f, in_f) < density)
    bias, h, csr = torch.randn(out_f), torch.randn(in_f, n), weight.to_sparse_csr()
    return {
        "csr": lambda _: torch.addmm(bias[:, None], csr, h),
        "dense": lambda _: _chunked_addmm(bias, weight, h),
    }


def crossover():
    """CSR against the dense layer's batch-invariant product, float32, per density."""
    import warnings

    warnings.simplefilter("ignore")  # CSR is "beta"
    print("dense time / CSR time (above 1: CSR is faster), one thread, float32")
    for out_f, in_f in ((300, 784), (100, 300), (120, 400)):
        for n in (1, 256):
            cells = []
            for density in (0.05, 0.1, 0.2, 0.3, 0.5):
                t = _per_call(_layer_variants(out_f, in_f, n, density), None, 5)
                cells.append(f"{density}: {t['dense'] / t['csr']:.2f}")
            print(f"{out_f}x{in_f} n={n:4d}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
