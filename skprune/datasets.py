"""Reading MNIST-style IDX files; nothing is ever downloaded."""

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "write_idx", "load_mnist", "find_mnist_10k", "mnist_10k_split"]

# IDX type codes (LeCun's format description) -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path):
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path):
    """Read one IDX file (gzip-compressed or not) into a numpy array.

    Raises
    ------
    ValueError
        If the file is not a well-formed IDX file.
    """
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{os.fspath(path)!r} is not an IDX file (bad magic number).")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    if len(data) - header != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{os.fspath(path)!r} is truncated: the header announces shape {shape}.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file (gzip when ``compress`` or a ``.gz`` name)."""
    array = np.asarray(array)
    code = {dt.newbyteorder("="): c for c, dt in _IDX_DTYPES.items()}[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(_IDX_DTYPES[code], copy=False).tobytes()
    compress = str(path).endswith(".gz") if compress is None else compress
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"No {stem}[.gz] in {os.fspath(directory)!r}.")


def load_mnist(path, kind="t10k"):
    """Load MNIST images and labels from a folder of IDX files.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``{kind}-images-idx3-ubyte[.gz]`` and
        ``{kind}-labels-idx1-ubyte[.gz]``.
    kind : {"t10k", "train"}, default="t10k"

    Returns
    -------
    X : ndarray of shape (n, 1, 28, 28), float32 in [0, 1]
    y : ndarray of shape (n,), int64
    """
    directory = Path(path)
    images = read_idx(_find(directory, f"{kind}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{kind}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"Expected images (n, h, w) and labels (n,); got {images.shape} and {labels.shape}."
        )
    X = images.astype(np.float32)[:, None] / np.float32(255)
    return X, labels.astype(np.int64)


def find_mnist_10k(path=None):
    """The MNIST-10k folder: ``path`` if given, else ``$SKPRUNE_MNIST`` or
    ``../shared/data/mnist-10k`` relative to the project root.

    Returns None when no such folder holds the files.
    """
    here = Path(__file__).resolve().parents[1]
    if path is not None:
        candidates = [path]
    else:
        candidates = [os.environ.get("SKPRUNE_MNIST"), here.parent / "shared/data/mnist-10k"]
    for candidate in filter(None, candidates):
        candidate = Path(candidate)
        if any(candidate.glob("t10k-images-idx3-ubyte*")):
            return candidate
    return None


def mnist_10k_split(path=None, flat=False):
    """The MNIST-10k protocol: 8,000 training and 2,000 test images.

    Pixels in [0, 1] as float32; split by ``train_test_split(test_size=2000,
    stratify=y, random_state=0)`` as in ``shared/data/mnist-10k/README.md``.

    Returns
    -------
    X_train, X_test, y_train, y_test
    """
    from sklearn.model_selection import train_test_split

    folder = find_mnist_10k(path)
    if folder is None:
        raise FileNotFoundError(
            "MNIST-10k not found: pass its folder, set SKPRUNE_MNIST, or place it at "
            "../shared/data/mnist-10k relative to the project root."
        )
    X, y = load_mnist(folder)
    if flat:
        X = X.reshape(len(X), -1)
    return train_test_split(X, y, test_size=2000, stratify=y, random_state=0)
