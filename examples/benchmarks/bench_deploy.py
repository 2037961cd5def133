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

Run: ``python examples/benchmarks/bench_deploy.py [--quick] [--plot PATH]
[--mnist DIR] [--epochs N] [--rounds R]``.
"""

import argparse
import os
import pickle
import statistics
import tempfile
import time

import torch
from threadpoolctl import threadpool_limits

import skprune
from skprune import SparseNetClassifier
from skprune.datasets import mnist_10k_split

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
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS too (MLPClassifier), else its threads spin
    epochs, rounds = (1, 2) if args.quick else (args.epochs, args.rounds)
    X_train, X_test, y_train, y_test = mnist_10k_split(args.mnist)
    if args.quick:
        X_train, y_train = X_train[:2000], y_train[:2000]
    data = (X_train, X_test, y_train, y_test)
    results = {}
    for module in MODELS:
        for density in DENSITIES:
            results[module, density] = bench_model(module, density, data, epochs, rounds, BATCHES)
    print_table(results, BATCHES)
    if args.plot:
        plot(results, BATCHES, args.plot)
    return results


if __name__ == "__main__":
    main()
