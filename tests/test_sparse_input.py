"""scipy.sparse input: trained on one batch of rows at a time, as dense input trains."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.sparse import _base, _compressed, _coo
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import get_tags

from skprune import (
    ParetoSearchCV,
    SparseNetClassifier,
    SparseNetRegressor,
    lambda_path,
)
from skprune.engine import train_stackable
from skprune.training import _sparse_input
from skprune.training._folds import stack_folds
from skprune.training._sparse_input import SparseRows, dense_rows

FORMATS = {
    "csr": sparse.csr_matrix,
    "csc": sparse.csc_matrix,
    "coo": sparse.coo_matrix,
    "lil": sparse.lil_matrix,
    "csr_array": sparse.csr_array,
}


@pytest.fixture
def data():
    """A 3-class problem on mostly-zero features: (dense X, y)."""
    rng = np.random.RandomState(0)
    X = rng.rand(150, 20).astype(np.float32)
    X[X < 0.7] = 0
    y = (X[:, 0] > 0.3).astype(int) + (X[:, 1] + X[:, 2] > 0.5)
    return X, y


def mixed_frame(n=2000, n_cities=300, seed=0):
    """A customer table: a 300-category ``city`` whose category carries the signal,
    a 3-category ``plan`` and two numeric columns; binary target."""
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


def one_hot_columns(sparse_threshold=0.3):
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
            ("num", StandardScaler(), ["age", "income"]),
        ],
        sparse_threshold=sparse_threshold,
    )


@pytest.fixture
def densified(monkeypatch):
    """The number of rows of every densification of a sparse matrix, as it happens."""
    rows = []

    def spy(original):
        def wrapped(matrix, *args, **kwargs):
            rows.append(matrix.shape[0])
            return original(matrix, *args, **kwargs)

        return wrapped

    for cls in (_compressed._cs_matrix, _coo._coo_base, _base._spbase):
        monkeypatch.setattr(cls, "toarray", spy(cls.toarray))

    def spy_rows(csr, taken):
        rows.append(len(taken))
        return dense_rows(csr, taken)

    monkeypatch.setattr(_sparse_input, "dense_rows", spy_rows)
    return rows


def max_weight_difference(a, b):
    sa, sb = a.net_.module_.state_dict(), b.net_.module_.state_dict()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def test_sparse_rows_take_only_the_rows_asked():
    matrix = sparse.random(50, 7, density=0.3, format="csr", dtype=np.float32, random_state=0)
    rows = SparseRows(matrix, (7,))
    taken = np.array([3, 3, 0, 49])
    assert np.array_equal(rows.index_select(0, taken).numpy(), matrix[taken].toarray())
    assert np.array_equal(rows[10:20].numpy(), matrix[10:20].toarray())
    assert tuple(rows.shape) == (50, 7) and len(rows) == 50


def test_sparse_rows_refuse_to_densify_whole():
    rows = SparseRows(sparse.eye(3, format="csr"), (3,))
    with pytest.raises(TypeError, match="not densified as a whole"):
        np.asarray(rows)
    with pytest.raises(ValueError, match="along the rows"):
        rows.index_select(1, [0])


def test_sparse_rows_sum_duplicates_in_a_copy():
    matrix = sparse.csr_matrix((np.ones(2, np.float32), [1, 1], [0, 2, 2]), shape=(2, 3))
    rows = SparseRows(matrix, (3,))
    assert rows[:].tolist() == [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    assert matrix.nnz == 2  # the caller's matrix is not changed


def test_stack_folds_is_sparse_if_any_fold_is_and_splits_by_width():
    dense, one_hot = np.ones((2, 3)), sparse.eye(3, format="csc")
    (X, y, rows), (narrow, _, _) = stack_folds(
        {"a": (dense, [0, 1]), "b": (one_hot, [2, 2, 2]), "c": (np.ones((1, 2)), [0])}
    )
    assert X.format == "csr" and X.shape == (5, 3) and y.tolist() == [0, 1, 2, 2, 2]
    assert rows["b"].tolist() == [2, 3, 4] and isinstance(narrow, np.ndarray)


def test_estimators_declare_sparse_input():
    assert get_tags(SparseNetClassifier()).input_tags.sparse
    assert get_tags(SparseNetRegressor()).input_tags.sparse


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "settings",
    [
        {},  # the stacked engine (K = 1)
        {"validation_fraction": 0.2, "early_stopping": True, "n_iter_no_change": 2},
        {"lr_schedule": "sigmoid", "batch_size": 16},  # skorch's loop
    ],
)
def test_fit_sparse_equals_dense(data, fmt, settings):
    X, y = data
    dense = SparseNetClassifier(max_epochs=3, random_state=0, **settings).fit(X, y)
    sparse_fit = SparseNetClassifier(max_epochs=3, random_state=0, **settings)
    sparse_fit.fit(FORMATS[fmt](X), y)
    assert max_weight_difference(dense, sparse_fit) <= 1e-6
    assert np.array_equal(sparse_fit.predict(FORMATS[fmt](X)), dense.predict(X))
    proba = sparse_fit.predict_proba(sparse.csr_matrix(X))
    np.testing.assert_allclose(proba, dense.predict_proba(X))
    assert sparse_fit.score(sparse.csr_matrix(X), y) == dense.score(X, y)


def test_fit_sparse_equals_dense_on_device(data, device):
    X, y = data
    settings = {"max_epochs": 2, "random_state": 0, "device": device}
    dense = SparseNetClassifier(**settings).fit(X, y)
    on_sparse = SparseNetClassifier(**settings).fit(sparse.csr_matrix(X), y)
    assert max_weight_difference(dense, on_sparse) <= 1e-6
    assert np.array_equal(on_sparse.predict(sparse.csr_matrix(X)), dense.predict(X))


def test_fit_sparse_with_sample_weight_equals_dense(data):
    X, y = data
    weight = np.random.RandomState(1).rand(len(y))
    dense = SparseNetClassifier(max_epochs=3, random_state=0).fit(X, y, sample_weight=weight)
    sparse_fit = SparseNetClassifier(max_epochs=3, random_state=0)
    sparse_fit.fit(sparse.csr_matrix(X), y, sample_weight=weight)
    assert max_weight_difference(dense, sparse_fit) <= 1e-6


def test_partial_fit_sparse_equals_dense(data):
    X, y = data
    dense = SparseNetClassifier(random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    dense.partial_fit(X, y)
    sparse_fit = SparseNetClassifier(random_state=0)
    sparse_fit.partial_fit(sparse.csr_matrix(X), y, classes=[0, 1, 2])
    sparse_fit.partial_fit(sparse.csc_matrix(X), y)
    assert max_weight_difference(dense, sparse_fit) <= 1e-6


def test_regressor_early_stopping_on_sparse_equals_dense(data):
    X, _ = data
    y = X[:, :3].sum(1)
    settings = {"max_epochs": 4, "random_state": 0, "validation_fraction": 0.2}
    dense = SparseNetRegressor(early_stopping=True, **settings).fit(X, y)
    sparse_fit = SparseNetRegressor(early_stopping=True, **settings).fit(sparse.csr_matrix(X), y)
    assert max_weight_difference(dense, sparse_fit) <= 1e-6
    assert sparse_fit.validation_scores_ == dense.validation_scores_
    np.testing.assert_allclose(sparse_fit.predict(sparse.csr_matrix(X)), dense.predict(X))


def test_lambda_path_sparse_equals_dense(data):
    X, y = data
    template = SparseNetClassifier(max_epochs=3, random_state=0)
    dense = lambda_path(template, X, y, [1e-4, 1e-2])
    path = lambda_path(template, sparse.csr_matrix(X), y, [1e-4, 1e-2])
    assert [max_weight_difference(a, b) <= 1e-6 for a, b in zip(dense, path)] == [True, True]
    assert path[0].density_ > path[1].density_
    assert np.array_equal(path[1].predict(sparse.csr_matrix(X)), dense[1].predict(X))


def test_lenet5_reads_sparse_rows_as_images():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 784).astype(np.float32)
    X[X < 0.8] = 0
    y = rng.randint(0, 3, 40)
    settings = {"max_epochs": 1, "random_state": 0, "batch_size": 16}
    dense = SparseNetClassifier("lenet5", **settings).fit(X, y)
    sparse_fit = SparseNetClassifier("lenet5", **settings).fit(sparse.csr_matrix(X), y)
    assert max_weight_difference(dense, sparse_fit) <= 1e-6
    assert np.array_equal(sparse_fit.predict(sparse.csr_matrix(X)), dense.predict(X))


def test_column_transformer_one_hot_trains_sparse_as_dense(densified):
    X, y = mixed_frame()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    columns = one_hot_columns().fit(X_train)
    A_train, A_test = columns.transform(X_train), columns.transform(X_test)
    assert sparse.issparse(A_train) and A_train.shape[1] > 300
    settings = {"max_epochs": 20, "random_state": 0}
    densified.clear()
    on_sparse = SparseNetClassifier(**settings).fit(A_train, y_train)
    sparse_accuracy = on_sparse.score(A_test, y_test)
    on_sparse.predict_proba(columns.transform(X))  # 2,000 rows: predicted in chunks
    assert 0 < max(densified) <= 1024  # batches of 32 and chunks of 1,024, never all rows
    densified.clear()
    on_dense = SparseNetClassifier(**settings).fit(A_train.toarray(), y_train)
    dense_accuracy = on_dense.score(A_test.toarray(), y_test)
    assert abs(sparse_accuracy - dense_accuracy) <= 0.01
    assert sparse_accuracy > 0.8  # the categories carry the signal


def test_sparse_fit_allocates_less_than_the_dense_matrix():
    rng = np.random.RandomState(0)
    n, d = 2000, 10_000
    X = sparse.csr_matrix(
        (np.ones(n, np.float32), rng.randint(d, size=n), np.arange(n + 1)), shape=(n, d)
    )
    y = rng.randint(0, 2, n)
    SparseNetClassifier(max_epochs=1).fit(X[:40], y[:40])  # first-call imports, untraced
    tracemalloc.start()
    try:
        # Prediction in chunks, and validation batches of skorch's loop, both bounded.
        SparseNetClassifier(max_epochs=1, random_state=0, validation_fraction=0.5).fit(X, y)
        SparseNetClassifier(max_epochs=1, random_state=0).fit(X, y).predict(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * d * 4 / 4  # a quarter of the dense float32 matrix


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_pipelines_on_sparse_folds_train_stacked(fmt):
    X, y = mixed_frame(n=300, n_cities=40)
    make = lambda lam: make_pipeline(  # noqa: E731
        one_hot_columns(), SparseNetClassifier(lam=lam, max_epochs=2, random_state=0)
    )
    pipelines = [make(1e-4), make(1e-2)]
    assert train_stackable(pipelines, X, y, [None, np.arange(200)]) == [True, True]
    dense = make(1e-2).set_params(columntransformer__sparse_threshold=0)
    dense.fit(X.iloc[:200], y[:200])
    assert max_weight_difference(pipelines[1][-1], dense[-1]) <= 1e-6


@pytest.mark.parametrize("vectorize", [True, False])
def test_pareto_search_on_one_hot_pipeline_equals_dense(vectorize):
    X, y = mixed_frame(n=300, n_cities=40)
    searches = {}
    for threshold in (0.3, 0):  # sparse, then dense output of the ColumnTransformer
        pipe = make_pipeline(
            one_hot_columns(threshold), SparseNetClassifier(max_epochs=2, random_state=0)
        )
        search = ParetoSearchCV(
            pipe,
            param_name="sparsenetclassifier__lam",
            strategy="grid",
            lambdas=[1e-4, 1e-2],
            cv=2,
            vectorize=vectorize,
        )
        searches[threshold] = search.fit(X, y)
    on_sparse, on_dense = searches[0.3], searches[0]
    for key in ("mean_test_score", "mean_test_density"):
        np.testing.assert_allclose(on_sparse.cv_results_[key], on_dense.cv_results_[key])
    assert on_sparse.score(X, y) == on_dense.score(X, y)


def test_pareto_search_warm_start_on_sparse_equals_dense(data, tmp_path):
    X, y = data
    results = []
    for name, X_in in (("sparse", sparse.csr_matrix(X)), ("dense", X)):
        search = ParetoSearchCV(
            SparseNetClassifier(max_epochs=2, random_state=0),
            strategy="bisection",
            lambdas=(1e-4, 1e-1),
            budget=6,
            cv=2,
            warm_start=True,
            memory=tmp_path / name,
        )
        results.append(search.fit(X_in, y).cv_results_)
    assert not np.isnan(results[0]["warm_start_from"]).all()  # later rounds start warm
    np.testing.assert_allclose(results[0]["mean_test_score"], results[1]["mean_test_score"])
