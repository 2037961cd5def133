"""Crafted files against ``skprune.load``: each raises ValueError and runs nothing.

The attacker edits a good file and recomputes its SHA-256 (:func:`craft`), so
every case reaches the checks behind the checksum. Each load runs with
``subprocess.Popen``, ``os.system`` and ``os.popen`` replaced by recorders,
with a snapshot of ``sys.modules`` (nothing new may be imported) and under
``tracemalloc`` (no more than a few times the file's size).
"""

import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

import skprune
from skprune import SparseNetClassifier

POPEN = "torch.utils.collect_env.subprocess.Popen"  # the gadget of issue 20


def unpack(path):
    """(JSON document, tensors) of a skprune file, read as an attacker would."""
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    doc = json.loads(header["__metadata__"]["skprune"])
    return doc, {k: v.clone() for k, v in load_tensors(data).items()}


def craft(path, doc, tensors, version="2"):
    """Write ``doc`` and ``tensors`` as a skprune file with a valid checksum."""
    payload = json.dumps(doc)
    digest = hashlib.sha256(payload.encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    meta = {"format": "skprune", "format_version": version, "skprune": payload}
    path.write_bytes(save_tensors(tensors, metadata={**meta, "sha256": digest.hexdigest()}))
    return path


def raw_file(path, header, body=b""):
    """A safetensors file with a hand-written header."""
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + body)
    return path


class TinyNet(nn.Module):
    def __init__(self, width=6):
        super().__init__()
        self.layer1, self.layer2 = nn.Linear(8, width), nn.Linear(width, 3)

    def forward(self, x):
        return self.layer2(torch.relu(self.layer1(x)))


class Evil(TinyNet):
    """A module whose construction leaves a trace: the positive control."""

    made = []

    def __init__(self, width=6):
        Evil.made.append(width)
        super().__init__(width)


@pytest.fixture(scope="module")
def good(tmp_path_factory, blobs_module):
    X, y = blobs_module
    clf = SparseNetClassifier(
        module__hidden_layer_sizes=(16,),
        pruning="global",
        target_density=0.2,
        max_epochs=2,
        finetune_epochs=1,
        random_state=0,
    ).fit(X, y)
    path = tmp_path_factory.mktemp("good") / "good.skp"
    skprune.save(clf, path)
    skprune.load(path)  # warm: whatever loading imports is imported now
    return path


@pytest.fixture(scope="module")
def blobs_module():
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return X.astype(np.float32), y


@pytest.fixture
def guarded(monkeypatch):
    """Recorders in place of the calls a gadget would reach; the list of calls made."""
    calls = []

    def record(name):
        def call(*args, **kwargs):
            calls.append((name, args, kwargs))
            raise AssertionError(f"{name} called by load")

        return call

    # A class, as the real Popen: a file's class path can still resolve to it.
    popen = type("Popen", (), {"__init__": lambda self, *a, **k: record("Popen")(*a, **k)})
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(os, "popen", record("os.popen"))
    return calls


def refused(path, match, calls, **kwargs):
    """Load ``path``: a ValueError naming it and matching ``match``; nothing ran or was imported."""
    before = set(sys.modules)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as info:
            skprune.load(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.name in str(info.value)
    assert calls == []
    assert set(sys.modules) - before == set()
    # ~3x: the file read once, its header parsed, the JSON document parsed.
    assert peak < 4 * path.stat().st_size + 200_000, peak
    return info.value


def _set(doc, tensors, **params):
    doc["params"].update(params)


NAME_GADGETS = {
    "module Popen via torch": lambda d, t: _set(
        d, t, module={"__class__": POPEN}, module__args=["touch", "pwned"]
    ),
    "module os.system via skprune": lambda d, t: _set(
        d, t, module={"__class__": "skprune.persistence.os.system"}
    ),
    "module builtins.eval": lambda d, t: _set(d, t, module={"__class__": "builtins.eval"}),
    "module as a string": lambda d, t: _set(d, t, module="os.system"),
    "estimator Popen": lambda d, t: d.update(estimator=POPEN),
    "estimator a listed part": lambda d, t: d.update(estimator="skprune.models.MLP"),
    "optimizer Popen": lambda d, t: _set(
        d, t, optimizer={"__class__": "torch.cuda._memory_viz.subprocess.Popen"}
    ),
    "optimizer a listed module": lambda d, t: _set(
        d, t, optimizer={"__class__": "skprune.models.MLP"}
    ),
    "module a listed optimizer": lambda d, t: _set(
        d, t, module={"__class__": "torch.optim.sgd.SGD"}
    ),
    "regularizer class": lambda d, t: _set(d, t, regularizer={"__class__": "subprocess.Popen"}),
    "pruning string": lambda d, t: _set(d, t, pruning="subprocess.Popen"),
    "callbacks": lambda d, t: _set(d, t, callbacks=[{"__class__": "subprocess.Popen"}]),
    "module__ nested in a tuple": lambda d, t: _set(
        d, t, module__hidden_layer_sizes={"__tuple__": [{"__class__": POPEN}]}
    ),
    "nested in a dict": lambda d, t: _set(
        d, t, target_density={"__dict__": {"layer1": {"__class__": "os.system"}}}
    ),
    "dict key": lambda d, t: _set(d, t, class_weight={"__items__": [[{"__class__": POPEN}, 1.0]]}),
    "attribute": lambda d, t: d["attributes"].update(n_iter_={"__class__": POPEN}),
    "module path walking a class": lambda d, t: _set(
        d, t, module={"__class__": "skprune.models.MLP.__init__.__globals__.torch.nn.Linear"}
    ),
}


@pytest.mark.parametrize("case", NAME_GADGETS)
def test_load_refuses_name_gadgets(good, tmp_path, guarded, case, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc, tensors = unpack(good)
    NAME_GADGETS[case](doc, tensors)
    path = craft(tmp_path / "gadget.skp", doc, tensors)
    refused(path, "(class|module|estimator|parameter|pruning)", guarded)
    assert not (tmp_path / "pwned").exists()


def test_load_imports_no_module_a_file_names(good, tmp_path, guarded):
    (tmp_path / "skprune_gadget_dummy.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\nclass Evil: pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        for path in ["skprune_gadget_dummy.Evil", "torch.skprune_gadget_dummy.Evil"]:
            doc, tensors = unpack(good)
            doc["params"]["module"] = {"__class__": path}
            refused(craft(tmp_path / "dummy.skp", doc, tensors), "not build", guarded)
    finally:
        sys.path.remove(str(tmp_path))
    assert "skprune_gadget_dummy" not in sys.modules
    assert not (tmp_path / "imported").exists()


def test_load_builds_a_crafted_class_only_when_trusted(good, tmp_path, guarded, blobs_module):
    """Positive control: the crafted file does reach the module's construction."""
    X, y = blobs_module
    clf = SparseNetClassifier(TinyNet, max_epochs=1, random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "tiny.skp")
    doc, tensors = unpack(tmp_path / "tiny.skp")
    path = f"{Evil.__module__}.{Evil.__qualname__}"
    doc["params"]["module"] = {"__class__": path}
    craft(tmp_path / "evil.skp", doc, tensors)
    Evil.made.clear()
    refused(tmp_path / "evil.skp", "trusted=", guarded)
    assert Evil.made == []
    skprune.load(tmp_path / "evil.skp", trusted=[Evil])
    assert Evil.made  # the same file builds the class once the caller trusts it
    skprune.load(tmp_path / "evil.skp", trusted=[path])  # an exact path works too
    with pytest.raises(ValueError, match="trusted="):
        skprune.load(tmp_path / "evil.skp", trusted=[f"{Evil.__module__}.TinyNet"])


def _huge_module(doc, tensors):
    doc["params"]["module__hidden_layer_sizes"] = {"__tuple__": [100_000, 100_000]}
    sizes = [8, 100_000, 100_000, 3]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        for key, shape in ((f"layer{i}.weight", [n_out, n_in]), (f"layer{i}.bias", [n_out])):
            doc["state"][key] = {"shape": shape, "sparse": True}
            tensors[f"module.{key}.values"] = torch.zeros(0)
            tensors[f"module.{key}.index"] = torch.zeros(0, dtype=torch.int32)
            tensors.pop(f"module.{key}", None)


def _index(change):
    def mutate(doc, tensors):
        index = tensors["module.layer1.weight.index"]
        if change == "negative":
            index[0] = -1
        elif change == "past the end":
            index[-1] = 8 * 16
        elif change == "unsorted":
            index[[0, 1]] = index[[1, 0]]
        elif change == "duplicate":
            index[1] = index[0]
        elif change == "short":
            tensors["module.layer1.weight.index"] = index[:-1].clone()
        elif change == "int64":
            tensors["module.layer1.weight.index"] = index.long()
        elif change == "float64 values":
            tensors["module.layer1.weight.values"] = tensors["module.layer1.weight.values"].double()

    return mutate


SHAPES_AND_DTYPES = {
    "a 1e9-element sparse tensor": (
        lambda d, t: d["state"]["layer1.weight"].update(shape=[1_000_000_000]),
        "state 'layer1.weight'",
    ),
    "a module 10^10 weights": (_huge_module, "MAX_MODULE_EXPANSION"),
    "a string array <U250000000": (
        lambda d, t: d["attributes"].update(
            objectives_={"__array__": "<U250000000", "values": ["x"]}
        ),
        "<U250000000",
    ),
    "an object array of lists": (
        lambda d, t: d["attributes"].update(objectives_={"__array__": "|O", "values": [[1]]}),
        "nested",
    ),
    "a datetime array": (
        lambda d, t: d["attributes"].update(objectives_={"__array__": "<M8[s]", "values": [1]}),
        "M8",
    ),
    "a float64 weight": (
        lambda d, t: t.update({"module.layer2.bias": t["module.layer2.bias"].double()}),
        "layer2.bias",
    ),
    "a history of 10^9 rows": (
        lambda d, t: d["history"]["epochs"].update(n_rows=10**9),
        "history",
    ),
    "a history column of the wrong dtype": (
        lambda d, t: t.update({"history.epochs.0": t["history.epochs.0"].float()}),
        "history",
    ),
    "deeply nested JSON": (
        lambda d, t: d["params"].update(lr=json.loads("[" * 50 + "]" * 50)),
        "lr",
    ),
    **{
        f"sparse index: {c}": (_index(c), "layer1.weight")
        for c in [
            "negative",
            "past the end",
            "unsorted",
            "duplicate",
            "short",
            "int64",
            "float64 values",
        ]  # fmt: skip
    },
}


@pytest.mark.parametrize("case", SHAPES_AND_DTYPES)
def test_load_refuses_bad_shapes_dtypes_and_indices(good, tmp_path, guarded, case):
    doc, tensors = unpack(good)
    mutate, match = SHAPES_AND_DTYPES[case]
    mutate(doc, tensors)
    refused(craft(tmp_path / "shape.skp", doc, tensors), match, guarded)


def _drop_class(doc, tensors):
    tensors["attr.classes_"] = tensors["attr.classes_"][:-1].clone()


METADATA = {
    "short classes_": (_drop_class, "state"),
    "missing tensor": (lambda d, t: t.pop("module.layer2.bias"), "layer2.bias"),
    "missing state entry": (lambda d, t: d["state"].pop("layer2.bias"), "missing"),
    "extra state entry": (
        lambda d, t: d["state"].update(extra={"shape": [1], "sparse": False}),
        "extra",
    ),
    "no params": (lambda d, t: d.pop("params"), "'params'"),
    "sparsified is a string": (lambda d, t: d.update(sparsified="yes"), "'sparsified'"),
    "n_features_in_ a string": (
        lambda d, t: d["attributes"].update(n_features_in_="8"),
        "n_features_in_",
    ),
    "input shape of other size": (
        lambda d, t: d["attributes"].update(_input_shape={"__tuple__": [3, 3]}),
        "_input_shape",
    ),
    "an attribute named __class__": (
        lambda d, t: d["attributes"].update(__class__="x"),
        "__class__",
    ),
    "an attribute tensor named net_": (
        lambda d, t: t.update({"attr.net_": torch.zeros(1)}),
        "net_",
    ),
    "a parameter that is no identifier": (
        lambda d, t: d["params"].update({"a b": 1}),
        "identifier",
    ),
    "unknown tag": (lambda d, t: d["params"].update(lr={"__pickle__": "x"}), "unknown tag"),
    "history rows past the end": (
        lambda d, t: d["history"]["epochs"]["rest"].update({"99": {}}),
        "history",
    ),
    "history without its column": (lambda d, t: t.pop("history.epochs.0"), "history"),
    "document not an object": (lambda d, t: d.clear() or d.update(x=1), "'estimator'"),
}


@pytest.mark.parametrize("case", METADATA)
def test_load_refuses_inconsistent_metadata(good, tmp_path, guarded, case):
    doc, tensors = unpack(good)
    mutate, match = METADATA[case]
    mutate(doc, tensors)
    refused(craft(tmp_path / "meta.skp", doc, tensors), match, guarded)


def test_load_refuses_a_short_classes_for_a_user_module(tmp_path, guarded, blobs_module):
    X, y = blobs_module
    clf = SparseNetClassifier(TinyNet, max_epochs=1, random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "tiny.skp")
    doc, tensors = unpack(tmp_path / "tiny.skp")
    _drop_class(doc, tensors)
    craft(tmp_path / "short.skp", doc, tensors)
    with pytest.raises(ValueError, match="short.skp.*shape"):
        skprune.load(tmp_path / "short.skp", trusted=[TinyNet])


HEADERS = {
    "no metadata": ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "__metadata__"),
    "a claimed 1e9 tensor": (
        {"__metadata__": {}, "t": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4]}},
        "4000000000 bytes",
    ),
    "an unknown dtype": (
        {"__metadata__": {}, "t": {"dtype": "STR", "shape": [1], "data_offsets": [0, 4]}},
        "malformed",
    ),
    "a negative shape": (
        {"__metadata__": {}, "t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
        "malformed",
    ),
    "offsets past the end": (
        {"__metadata__": {}, "t": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}},
        "malformed",
    ),
    "overlapping tensors": (
        {
            "__metadata__": {},
            "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        },
        "overlap",
    ),
    "not a skprune file": (
        {
            "__metadata__": {"format": "pt"},
            "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        },
        "not a skprune file",
    ),
}


@pytest.mark.parametrize("case", HEADERS)
def test_load_refuses_bad_safetensors_headers(tmp_path, guarded, case):
    header, match = HEADERS[case]
    refused(raw_file(tmp_path / "head.skp", header, b"\0" * 16), match, guarded)


def test_load_refuses_a_header_claiming_more_than_the_file(tmp_path, guarded):
    path = tmp_path / "long.skp"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    refused(path, "truncated", guarded)


def test_load_refuses_a_plain_safetensors_file_clearly(tmp_path, guarded):
    path = tmp_path / "plain.skp"
    path.write_bytes(save_tensors({"w": torch.zeros(3)}))
    refused(path, r"no safetensors metadata \('__metadata__'\)", guarded)


@pytest.mark.slow
def test_load_of_oversized_claims_stays_small_in_torch_memory(good, tmp_path):
    """tracemalloc does not see torch's allocator: measure the process's peak instead."""
    paths = []
    for i, case in enumerate(["a 1e9-element sparse tensor", "a module 10^10 weights"]):
        doc, tensors = unpack(good)
        SHAPES_AND_DTYPES[case][0](doc, tensors)
        paths.append(str(craft(tmp_path / f"big{i}.skp", doc, tensors)))
    script = textwrap.dedent(
        f"""
        import resource, sys, skprune
        skprune.load({str(good)!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for path in {paths!r}:
            try:
                skprune.load(path)
            except ValueError:
                pass
            else:
                sys.exit("loaded")
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ
    )
    grown_kib = int(out.stdout.split()[-1])
    assert grown_kib < 20_000, grown_kib  # the attack of issue 20 took 4.2 GB


def test_craft_gives_a_loadable_file_when_nothing_changes(good, tmp_path):
    """The helper itself: an unchanged document and tensors load as the original."""
    doc, tensors = unpack(good)
    path = craft(tmp_path / "same.skp", copy.deepcopy(doc), tensors)
    assert skprune.load(path).get_params() == skprune.load(good).get_params()


def test_load_reads_a_format_1_file_with_its_history_as_json(good, tmp_path):
    doc, tensors = unpack(good)
    history = list(skprune.load(good).history_)
    doc["history"] = history
    tensors = {k: v for k, v in tensors.items() if not k.startswith("history.")}
    path = craft(tmp_path / "v1.skp", doc, tensors, version="1")
    assert list(skprune.load(path).history_) == history


def test_every_registered_part_and_builtin_module_can_be_loaded():
    from skprune.deploy._trusted import Names, class_path
    from skprune.models import BUILTIN_MODULES
    from skprune.registry import OPTIMIZERS, PRUNERS, REGULARIZERS

    listed = set(Names().classes.values())
    parts = [*REGULARIZERS.values(), *(c for c, _ in PRUNERS.values()), *OPTIMIZERS.values()]
    modules = [BUILTIN_MODULES[name](8, 3, None)[0] for name in ("mlp", "lenet300")]
    assert {class_path(c) for c in parts + modules if c not in listed} == set()
