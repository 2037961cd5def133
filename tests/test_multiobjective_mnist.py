"""Reiners §6.3.1 on MNIST-10k: MAdam's λ* stays below the knee, its network denser."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from skprune.datasets import find_mnist_10k, mnist_10k_split

BENCH = Path(__file__).resolve().parents[1] / "examples/benchmarks/bench_multiobjective.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mnist_10k() is None, reason="needs the MNIST-10k files"),
]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_multiobjective", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_madam_lambda_below_knee_and_denser_on_mnist():
    import torch

    torch.set_num_threads(1)
    bench = _bench()
    rows, knee, madam = bench.knee_comparison(*mnist_10k_split(), epochs=10)
    knee_lam, knee_clf = rows[knee]
    assert 0 < knee < len(rows) - 1  # an interior knee, not an end of the grid
    assert np.median(madam.lambda_history_) < knee_lam
    assert madam.density_ > knee_clf.density_
    assert madam.history_[-1, "test_acc"] >= knee_clf.history_[-1, "test_acc"] - 0.01
