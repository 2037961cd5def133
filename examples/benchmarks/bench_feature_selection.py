"""
Feature selection with a sparse input layer, against LassoNet and scikit-learn's selectors
==========================================================================================

Two tables:

1. MNIST-10k under LassoNet's protocol (Lemhadri et al. 2021, Table 2): the
   80/20 split of ``skprune.datasets.mnist_10k_split``, pixels in [0, 1],
   k = 50 pixels selected on the training images, then ExtraTrees (50 trees)
   trained on those pixels and scored on the test images; next to the score on
   all pixels. LassoNet itself runs on the same split when ``lassonet`` is
   importable (a scratch install, never a dependency of skprune), else its row
   is skipped. Wall times are single runs with one torch thread.
2. Bundled tabular data (breast_cancer, wine, digits): 5-fold cross-validated
   accuracy of ExtraTrees (50 trees) on k selected features, the selection made
   inside each fold, for ``SparseNetSelector``, ``SelectKBest(f_classif)`` and
   ``SelectFromModel(LogisticRegression)`` with an ℓ1 penalty (solver saga).

Run: ``python examples/benchmarks/bench_feature_selection.py`` (about 3 minutes
on one core without LassoNet; LassoNet's path adds several minutes).
"""

import argparse
import time

import numpy as np
import sklearn
import torch
from packaging.version import Version
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skprune import SparseNetClassifier, SparseNetSelector
from skprune.datasets import find_mnist_10k, mnist_10k_split

K_MNIST = 50


def top_k(scores, k):
    """Mask of the ``k`` largest ``scores``, ties to the lower index."""
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(-np.asarray(scores), kind="stable")[:k]] = True
    return mask


def extra_trees():
    return ExtraTreesClassifier(n_estimators=50, random_state=0, n_jobs=1)


def downstream_score(split, mask):
    X_train, X_test, y_train, y_test = split
    model = extra_trees().fit(X_train[:, mask], y_train)
    return model.score(X_test[:, mask], y_test)


def skprune_default_mask(X_train, y_train):
    """The selector as shipped: its default network along its default path of λ."""
    return SparseNetSelector(K_MNIST, random_state=0).fit(X_train, y_train).get_support()


def skprune_single_lambda_mask(X_train, y_train):
    """One network at λ = 0.01 (100 hidden units, 20 epochs): the measured best single fit."""
    network = SparseNetClassifier(
        regularizer="input_group_l1",
        regularized_layers=["layer1"],
        lam=1e-2,
        max_epochs=20,
        batch_size=64,
        random_state=0,
    )
    selector = SparseNetSelector(K_MNIST, estimator=network)
    return selector.fit(X_train, y_train).get_support()


def lassonet_mnist_mask(X_train, y_train, multiplier):
    try:
        from lassonet import LassoNetClassifier
    except ImportError:
        return None
    model = LassoNetClassifier(
        hidden_dims=(100,), path_multiplier=multiplier, verbose=0, random_state=0, torch_seed=0
    )
    model.path(X_train, y_train)
    # LassoNet's importance: the λ at which each feature leaves the path.
    return top_k(np.asarray(model.feature_importances_), K_MNIST)


def mnist_table(path, multiplier):
    split = mnist_10k_split(path, flat=True)
    X_train, _, y_train, _ = split
    rows = [("all 784 pixels", downstream_score(split, np.ones(784, bool)), None)]
    for name, select in [
        ("SparseNetSelector() (8 λ path)", lambda: skprune_default_mask(X_train, y_train)),
        (
            "SparseNetSelector(estimator at λ=0.01)",
            lambda: skprune_single_lambda_mask(X_train, y_train),
        ),
        (
            f"LassoNet (path_multiplier={multiplier}, M=10)",
            lambda: lassonet_mnist_mask(X_train, y_train, multiplier),
        ),
    ]:
        start = time.perf_counter()
        mask = select()
        seconds = time.perf_counter() - start
        if mask is None:
            print(f"{name}: skipped (lassonet is not importable)")
            continue
        assert mask.sum() == K_MNIST
        rows.append((name, downstream_score(split, mask), seconds))
        print(f"{name}: {rows[-1][1]:.4f} ({seconds:.1f} s)", flush=True)
    print(
        f"\nMNIST-10k, k = {K_MNIST} pixels, ExtraTrees(50) test accuracy (LassoNet Table 2: 0.892)"
    )
    print(f"{'method':42s} {'accuracy':>9s} {'selection s':>12s}")
    for name, score, seconds in rows:
        print(f"{name:42s} {score:9.4f} {'' if seconds is None else f'{seconds:12.1f}'}")
    timed = {name: s for name, _, s in rows if s is not None}
    lassonet = [s for name, s in timed.items() if name.startswith("LassoNet")]
    for name, seconds in timed.items():
        if lassonet and not name.startswith("LassoNet"):
            print(f"LassoNet's selection time / {name}'s: {lassonet[0] / seconds:.1f}x")


def l1_logistic():
    """ℓ1-penalised logistic regression (saga: liblinear no longer takes 3+ classes)."""
    if Version(sklearn.__version__) >= Version("1.8"):  # `penalty` is deprecated there
        return LogisticRegression(l1_ratio=1.0, solver="saga", max_iter=5000)
    return LogisticRegression(penalty="l1", solver="saga", max_iter=5000)


def selectors(k):
    return {
        "SparseNetSelector": SparseNetSelector(k, random_state=0),
        "SelectKBest(f_classif)": SelectKBest(f_classif, k=k),
        "SelectFromModel(ℓ1 logistic)": SelectFromModel(
            l1_logistic(),
            max_features=k,
            threshold=-np.inf,
        ),
    }


def baseline_table():
    data = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    print("\nExtraTrees(50) 5-fold accuracy on k features selected inside each fold (mean ± std)")
    names = list(selectors(1))
    print(f"{'dataset':14s} {'k':>3s} " + " ".join(f"{n:>29s}" for n in names))
    for name, load in data.items():
        X, y = load(return_X_y=True)
        for k in (5, 10):
            scores = []
            for selector in selectors(k).values():
                pipe = make_pipeline(StandardScaler(), selector, extra_trees())
                s = cross_val_score(pipe, X, y, cv=cv)
                scores.append(f"{s.mean():.3f} ± {s.std():.3f}")
            print(f"{name:14s} {k:3d} " + " ".join(f"{s:>29s}" for s in scores))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=None, help="the mnist-10k folder")
    parser.add_argument("--lassonet-multiplier", type=float, default=1.02)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.skip_mnist:
        path = find_mnist_10k(args.mnist)
        if path is None:
            print("MNIST-10k not found: its table is skipped")
        else:
            mnist_table(path, args.lassonet_multiplier)
    if not args.skip_baselines:
        baseline_table()


if __name__ == "__main__":
    main()
