import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_classification

# The test networks are tiny: one intra-op thread is fastest and keeps the
# suite's time steady when other processes share the cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    """Scikit-learn's bundled 8x8 digits, scaled to [0, 1]: (X_train, X_test, y_train, y_test)."""
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(
        (X / 16.0).astype(np.float32), y, test_size=0.25, stratify=y, random_state=0
    )


@pytest.fixture
def blobs():
    """A tiny, easy 3-class problem."""
    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return X.astype(np.float32), y


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return request.param


class _Training:
    """What trained inside ``with``: the size K of every stack the engine ran
    (``stacks``) and the number of runs of skorch's own loop (``loops``)."""

    def __init__(self):
        self.stacks, self.loops, self._on = [], 0, False

    def __enter__(self):
        self.stacks, self.loops, self._on = [], 0, True
        return self

    def __exit__(self, *exc):
        self._on = False


@pytest.fixture
def training(monkeypatch):
    """Watch which path trains: ``with training as seen: lambda_path(...)``, then
    ``seen.stacks == [4]`` (one stack of the 4 λ) and ``seen.loops == 0``.

    An "equals separate fits" test asserts this too: a path that silently fell
    back to separate fits (or to stacks of one) would equal them trivially.
    """
    import skorch

    from skprune import engine

    seen = _Training()
    stack, loop = engine.train_stack, skorch.NeuralNet.fit_loop

    def train_stack(copies, *args, **kwargs):
        if seen._on:
            seen.stacks.append(len(copies))
        return stack(copies, *args, **kwargs)

    def fit_loop(self, *args, **kwargs):
        if seen._on:
            seen.loops += 1
        return loop(self, *args, **kwargs)

    monkeypatch.setattr(engine, "train_stack", train_stack)
    monkeypatch.setattr(skorch.NeuralNet, "fit_loop", fit_loop)
    return seen


@pytest.fixture
def skorch_fit(monkeypatch):
    """Separate fits through skorch's own loop, not the engine: the reference it must equal."""
    monkeypatch.setattr("skprune.engine.fit_net", lambda *args: False)


@pytest.fixture
def max_weight_gap():
    """The largest |Δw| between two lists of fitted estimators, pair by pair."""

    def gap(fitted, separate):
        with torch.no_grad():
            return max(
                float((a - b).abs().max())
                for f, s in zip(fitted, separate)
                for a, b in zip(f.net_.module_.parameters(), s.net_.module_.parameters())
            )

    return gap
