import gzip

import numpy as np
import pytest

from skprune.datasets import find_mnist_10k, load_mnist, mnist_10k_split, read_idx, write_idx


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.arange(12, dtype=np.uint8) % 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    return tmp_path, images, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_idx_gzip_is_detected_by_content(tmp_path):
    write_idx(tmp_path / "plain", np.arange(5, dtype=np.uint8), compress=True)
    with open(tmp_path / "plain", "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), np.arange(5))


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((4, 4), np.uint8))
    data = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short.gz")


def test_load_mnist_scales_to_unit_float32_images(tiny_mnist):
    path, images, labels = tiny_mnist
    X, y = load_mnist(path)
    assert X.shape == (12, 1, 28, 28) and X.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1
    np.testing.assert_allclose(X[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


def test_load_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        load_mnist(tmp_path)


def test_find_mnist_10k_honours_the_given_path(tiny_mnist):
    path, _, _ = tiny_mnist
    assert find_mnist_10k(path) == path


def test_mnist_10k_split_without_data_is_a_clear_error(tmp_path):
    assert find_mnist_10k(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="MNIST-10k not found"):
        mnist_10k_split(tmp_path)


@pytest.mark.slow
def test_mnist_10k_protocol_split():
    if find_mnist_10k() is None:
        pytest.skip("MNIST-10k not available")
    X_train, X_test, y_train, y_test = mnist_10k_split()
    assert X_train.shape == (8000, 1, 28, 28) and X_test.shape == (2000, 1, 28, 28)
    assert set(np.unique(y_test)) == set(range(10))
