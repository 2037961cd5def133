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
