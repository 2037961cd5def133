"""``history_`` as columns: one tensor per numeric key, JSON for the rest.

skorch's history is a list of per-epoch dicts, each with a list of per-batch
dicts. As JSON it dominated a pruned network's file (510 of 570 kB for
LeNet-300-100 at 1 % after 33 epochs). Here every numeric key (and every
numeric entry of a dict-valued key such as ``layer_density``) becomes one
float64, int64 or uint8 (bool) tensor over the rows that hold it; anything else
(strings, lists, None) stays JSON. The rows come back as they were, the key
order aside. ``"epochs"`` keeps the epoch rows and leaves each ``batches``
list empty; ``"full"`` keeps the batch rows too.
"""

import numpy as np
import torch

__all__ = ["pack_history", "unpack_history", "HISTORY_MODES"]

HISTORY_MODES = ("epochs", "full")

_KINDS = {"float": torch.float64, "int": torch.int64, "bool": torch.uint8}


def _kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return "int"
    return "float" if isinstance(value, float) else None


def _flat(row):
    """{(key,) or (key, sub): (kind, value)} of a row's numbers, and the rest of it."""
    cells, rest = {}, {}
    for key, value in row.items():
        if key == "batches":
            continue
        if _kind(value):
            cells[(key,)] = (_kind(value), value)
        elif isinstance(value, dict) and value and all(_kind(v) for v in value.values()):
            cells.update({(key, sub): (_kind(v), v) for sub, v in value.items()})
        else:
            rest[key] = value
    return cells, rest


def _pack_rows(rows, prefix):
    """(JSON description, tensors) of a list of flat dicts."""
    columns, rest = {}, {}
    for i, row in enumerate(rows):
        cells, other = _flat(row)
        for path, (kind, value) in cells.items():
            columns.setdefault((path, kind), ([], []))
            columns[(path, kind)][0].append(i)
            columns[(path, kind)][1].append(value)
        if other:
            rest[str(i)] = other
    spec, tensors = [], {}
    for j, ((path, kind), (index, values)) in enumerate(columns.items()):
        spec.append([list(path), kind])
        tensors[f"{prefix}.{j}"] = torch.tensor(values, dtype=_KINDS[kind])
        if len(index) != len(rows):
            tensors[f"{prefix}.{j}.rows"] = torch.tensor(index, dtype=torch.int32)
    return {"n_rows": len(rows), "columns": spec, "rest": rest}, tensors


def pack_history(history, mode):
    """(JSON document, tensors) storing the plain list of dicts ``history``."""
    doc, tensors = _pack_rows(history, "history.epochs")
    doc = {"mode": mode, "epochs": doc}
    if mode == "full":
        batches = [batch for row in history for batch in row.get("batches", [])]
        doc["batches"], more = _pack_rows(batches, "history.batches")
        doc["batch_counts"] = [len(row.get("batches", [])) for row in history]
        tensors.update(more)
    doc["has_batches"] = [int("batches" in row) for row in history]
    return doc, tensors


def _checked_column(tensors, name, item, field):
    """(key path, values) of the column ``name`` described by ``item``."""
    ok = isinstance(item, list) and len(item) == 2 and item[1] in _KINDS
    path, kind = item if ok else (None, None)
    if not (ok and isinstance(path, list) and len(path) in (1, 2)
            and all(isinstance(p, str) for p in path)):  # fmt: skip
        raise ValueError(f"{field}: the column {name!r} is described by {item!r}")
    values = tensors.get(name)
    if values is None or values.dtype != _KINDS[kind] or values.dim() != 1:
        raise ValueError(f"{field}: the column {name!r} is missing or not a 1-D {kind} tensor")
    cast = {"float": float, "int": int, "bool": bool}[kind]
    return path, [cast(v) for v in values.tolist()]


def _rows_of(tensors, name, n_values, n_rows, field):
    """The row of each value of column ``name``: all rows, or its sorted ``.rows`` tensor."""
    rows = tensors.get(f"{name}.rows")
    if rows is None and n_values == n_rows:
        return range(n_rows)
    ok = (
        rows is not None and rows.dtype == torch.int32 and tuple(rows.shape) == (n_values,)
        and (n_values == 0 or (int(rows[0]) >= 0 and int(rows[-1]) < n_rows
                               and bool((rows[1:] > rows[:-1]).all())))
    )  # fmt: skip
    if not ok:
        raise ValueError(f"{field}: the rows of the column {name!r} do not match its values")
    return rows.tolist()


def _unpack_rows(doc, tensors, prefix, field):
    n_rows, spec, rest = doc.get("n_rows"), doc.get("columns"), doc.get("rest")
    if not (isinstance(n_rows, int) and isinstance(spec, list) and isinstance(rest, dict)):
        raise ValueError(f"{field} is malformed")
    names = [f"{prefix}.{j}" for j in range(len(spec))]
    columns = [_checked_column(tensors, n, item, field) for n, item in zip(names, spec)]
    # Every stored row holds a number or some JSON: a file cannot claim 10^9 empty rows.
    covered = len(rest) + sum(len(values) for _, values in columns)
    if not 0 <= n_rows <= covered:
        raise ValueError(f"{field} claims {n_rows} rows but holds values for {covered}")
    rows = [{} for _ in range(n_rows)]
    for name, (path, values) in zip(names, columns):
        for i, value in zip(_rows_of(tensors, name, len(values), n_rows, field), values):
            if len(path) == 1:
                rows[i][path[0]] = value
            else:
                rows[i].setdefault(path[0], {})[path[1]] = value
    for i, other in rest.items():
        if not (i.isdigit() and int(i) < n_rows and isinstance(other, dict)):
            raise ValueError(f"{field}: the row {i!r} is outside the history")
        rows[int(i)].update(other)
    return rows


def unpack_history(doc, tensors, field):
    """The list of dicts stored by :func:`pack_history`, checked against ``tensors``."""
    if isinstance(doc, list):  # format version 1: plain JSON rows
        if not all(isinstance(row, dict) for row in doc):
            raise ValueError(f"{field} holds a row that is not a dict")
        return doc
    if not isinstance(doc, dict) or doc.get("mode") not in HISTORY_MODES:
        raise ValueError(f"{field} is malformed")
    epochs = _unpack_rows(doc.get("epochs") or {}, tensors, "history.epochs", field)
    has_batches = doc.get("has_batches")
    if not isinstance(has_batches, list) or len(has_batches) != len(epochs):
        raise ValueError(f"{field}: 'has_batches' does not match the epochs")
    batches = [[] for _ in epochs]
    if doc["mode"] == "full":
        flat = _unpack_rows(doc.get("batches") or {}, tensors, "history.batches", field)
        counts = doc.get("batch_counts")
        if not (isinstance(counts, list) and len(counts) == len(epochs)
                and all(isinstance(c, int) and c >= 0 for c in counts)
                and sum(counts) == len(flat)):  # fmt: skip
            raise ValueError(f"{field}: 'batch_counts' does not match the batch rows")
        bounds = np.cumsum([0, *counts])
        batches = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return [
        {"batches": b, **row} if has else row for row, b, has in zip(epochs, batches, has_batches)
    ]
