"""The bytes of a skprune file: safetensors headers read with checks, atomic writes.

Reading never trusts the header: every tensor's dtype comes from a short list,
its shape must match its byte range, byte ranges must lie inside the file and
not overlap, and the tensors are views of the bytes read (nothing is allocated
per tensor). Writing goes through a side file renamed over the target.
"""

import contextlib
import errno
import hashlib
import json
import math
import os
import secrets

import torch

__all__ = ["checksum", "raw_bytes", "write_atomic", "read_bytes", "parse_header", "views"]

TENSOR_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
    "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
    "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def checksum(payload, chunks):
    """SHA-256 over the JSON, then each tensor's name and raw bytes in name order."""
    digest = hashlib.sha256(payload.encode())
    for name in sorted(chunks):
        digest.update(name.encode())
        digest.update(chunks[name])
    return digest.hexdigest()


def raw_bytes(tensor):
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy()


def write_atomic(path, data):
    """Write ``data`` to ``path`` through a side file: the old file or the new, never half.

    The side file is made in ``path``'s folder (so the rename stays on one file
    system), flushed and fsynced, then ``os.replace``-d over ``path``, and the
    folder is fsynced so that the rename itself survives a power cut. Its name
    is drawn before it is created, so that a Ctrl-C landing anywhere, even
    just as the file is created, still finds it to remove.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    side = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.part")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(side, flags, 0o666), "wb") as file:
            file.write(data)
            file.flush()
            _keep_mode(path, file.fileno())
            os.fsync(file.fileno())
        os.replace(side, path)
    except BaseException:  # KeyboardInterrupt too: never leave the side file behind
        with contextlib.suppress(OSError):
            os.unlink(side)
        raise
    _fsync_folder(folder)


def _keep_mode(path, fd):
    """An existing file keeps its permissions (a new one gets the umask's)."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode & 0o7777
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder cannot be opened on every platform (Windows)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def read_bytes(path):
    with open(path, "rb") as file:
        data = bytearray(os.fstat(file.fileno()).st_size)
        if file.readinto(data) != len(data):
            raise ValueError("the file changed while it was read")
    return data


def parse_header(data):
    """(metadata, {name: (dtype, shape, start, end)}) of a safetensors file, all checked."""
    if len(data) < 8:
        raise ValueError("the file is truncated: it has no safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"the file is truncated: its header claims {size} bytes")
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"its safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("its safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict):
        raise ValueError(
            "it has no safetensors metadata ('__metadata__'): it is not a skprune file "
            "(skprune.save writes the estimator's description there)"
        )
    body, entries = len(data) - 8 - size, {}
    for name, entry in header.items():
        entries[name] = _tensor_entry(name, entry, body, 8 + size)
    spans = sorted((start, end) for _, _, start, end in entries.values())
    if any(a[1] > b[0] for a, b in zip(spans[:-1], spans[1:])):
        raise ValueError("two tensors of its header overlap")
    return meta, entries


def _tensor_entry(name, entry, body, base):
    """A header entry's (dtype, shape, start, end), its size checked against the file."""
    entry = entry if isinstance(entry, dict) else {}
    dtype = TENSOR_DTYPES.get(entry.get("dtype"))
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    ok = (
        dtype is not None
        and isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
        and isinstance(offsets, list) and len(offsets) == 2
        and all(type(n) is int for n in offsets) and 0 <= offsets[0] <= offsets[1] <= body
    )  # fmt: skip
    if not ok:
        raise ValueError(f"the tensor {name!r} has a malformed header entry {str(entry)[:200]}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != offsets[1] - offsets[0]:
        raise ValueError(
            f"the tensor {name!r} claims shape {shape} ({nbytes} bytes) but the file holds "
            f"{offsets[1] - offsets[0]} bytes for it"
        )
    return dtype, tuple(shape), base + offsets[0], base + offsets[1]


def views(data, entries):
    """The tensors as views of ``data``: nothing is copied or allocated per tensor."""
    tensors = {}
    for name, (dtype, shape, start, end) in entries.items():
        if start == end:
            tensors[name] = torch.empty(shape, dtype=dtype)
        elif start % dtype.itemsize:
            raise ValueError(f"the tensor {name!r} is not aligned in the file")
        else:
            flat = torch.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=start)
            tensors[name] = flat.reshape(shape)
    return tensors
