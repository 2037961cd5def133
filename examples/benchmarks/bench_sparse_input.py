"""
Sparse input: a one-hot ColumnTransformer's output, sparse against dense
========================================================================

A customer table of 2,000 rows: a ``city`` column of 300 categories whose
category carries the signal, a 3-category ``plan`` and two numeric columns.
``ColumnTransformer(OneHotEncoder, StandardScaler)`` turns it into a CSR
matrix (1.3 % non-zero). ``SparseNetClassifier`` (20 epochs, seed 0) trains
on that matrix and on its dense copy; the script prints the test accuracy of
both, their fit times, the peak of numpy allocations during each fit
(``tracemalloc``; the dense copy of the training matrix alone is 1.8 MB) and
``MLPClassifier``'s accuracy on the same sparse matrix.

Run: ``python examples/benchmarks/bench_sparse_input.py``.
"""

import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skprune import SparseNetClassifier


def customer_table(n=2000, n_cities=300, seed=0):
    """The table and its binary target (the generator of tests/test_sparse_input.py)."""
    rng = np.random.RandomState(seed)
    effect = rng.choice([-2.0, 2.0], size=n_cities)
    city = rng.randint(n_cities, size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n)
    age, income = rng.normal(40, 12, n), rng.lognormal(10, 0.5, n)
    score = effect[city] + 0.06 * (age - 40) + (plan == "pro") - 0.5 * (plan == "basic")
    y = (score + 0.5 * rng.logistic(size=n) > 0).astype(int)
    frame = pd.DataFrame(
        {"city": [f"city_{c:03d}" for c in city], "plan": plan, "age": age, "income": income}
    )
    return frame, y


def traced_fit(estimator, X, y):
    """``(fitted estimator, seconds, peak bytes of numpy allocations)``."""
    tracemalloc.start()
    start = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return estimator, seconds, peak


def main():
    X, y = customer_table()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    columns = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
            ("num", StandardScaler(), ["age", "income"]),
        ]
    ).fit(X_train)
    A_train, A_test = columns.transform(X_train), columns.transform(X_test)
    print(
        f"transformer output: {type(A_train).__name__} {A_train.shape}, "
        f"{A_train.nnz / np.prod(A_train.shape):.1%} non-zero"
    )
    SparseNetClassifier(max_epochs=1).fit(A_train[:50], y_train[:50])  # first-call imports
    inputs = {"sparse": (A_train, A_test), "dense": (A_train.toarray(), A_test.toarray())}
    for name, (train, test) in inputs.items():
        est = SparseNetClassifier(max_epochs=20, random_state=0)
        est, seconds, peak = traced_fit(est, train, y_train)
        print(
            f"{name:6s}  accuracy {est.score(test, y_test):.4f}  fit {seconds:.2f} s  "
            f"numpy peak {peak / 1e6:.2f} MB  density {est.density_:.3f}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(random_state=0).fit(A_train, y_train)
    print(f"MLPClassifier on the sparse matrix: accuracy {mlp.score(A_test, y_test):.4f}")


if __name__ == "__main__":
    main()
