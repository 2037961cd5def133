import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skprune import SparseNetClassifier

pytest.importorskip("onnx")
skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
import skprune.onnx  # noqa: E402,F401  (registers the converter)

FAST = dict(pruning="global", target_density=0.05, max_epochs=2, finetune_epochs=1, random_state=0)


def _run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


@pytest.mark.parametrize("labels", ["int", "str"])
def test_pipeline_converts_and_onnxruntime_agrees(digits, labels):
    X_train, X_test, y_train, _ = digits
    y = y_train if labels == "int" else np.array(list("abcdefghij"))[y_train]
    clf = SparseNetClassifier(module__hidden_layer_sizes=(32, 16), **FAST)
    pipe = make_pipeline(StandardScaler(), clf).fit(X_train, y)
    onx = skl2onnx.to_onnx(pipe, X_train[:1], options={SparseNetClassifier: {"zipmap": False}})
    label, proba = _run(onx, X_test)
    np.testing.assert_array_equal(label, pipe.predict(X_test))
    np.testing.assert_allclose(proba, pipe.predict_proba(X_test), atol=1e-4)
    gemm = [n for n in onx.graph.node if n.op_type == "Gemm"]
    assert len(gemm) == 3 and any(n.op_type == "Gather" for n in onx.graph.node)


def test_lenet5_converts_with_conv_and_zipmap(digits):
    X_train, X_test, y_train, _ = digits
    images = np.zeros((len(X_train), 1, 12, 12), np.float32)
    images[:, :, 2:10, 2:10] = X_train.reshape(-1, 1, 8, 8)
    clf = SparseNetClassifier("lenet5", **FAST).fit(images, y_train)
    flat = images.reshape(len(images), -1)
    onx = skl2onnx.to_onnx(clf, flat[:1])
    assert any(n.op_type == "Conv" for n in onx.graph.node)
    label, proba = _run(onx, flat[:50])
    np.testing.assert_array_equal(label, clf.predict(images[:50]))
    expected = clf.predict_proba(images[:50])
    got = np.array([[row[c] for c in clf.classes_] for row in proba])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_unsupported_module_raises(blobs):
    from torch import nn

    X, y = blobs
    module = nn.Sequential(nn.Linear(8, 3))
    clf = SparseNetClassifier(module, max_epochs=1, regularized_layers="all").fit(X, y)
    with pytest.raises(NotImplementedError, match="lenet5"):
        skl2onnx.to_onnx(clf, X[:1])


def test_vgg_converts_its_compacted_channels():
    import torch

    rng = np.random.default_rng(0)
    X = rng.random((12, 3, 16, 16), dtype=np.float32)
    clf = SparseNetClassifier("vgg", max_epochs=1, batch_size=12, random_state=0)
    clf.fit(X, np.arange(12) % 3)
    convs = [m for m in clf.net_.module_.features if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            conv.weight[::3] = 0  # whole output channels: removed, their constants folded
    flat = X.reshape(len(X), -1)
    onx = skl2onnx.to_onnx(clf, flat[:1], options={SparseNetClassifier: {"zipmap": False}})
    shapes = {i.name: list(i.dims) for i in onx.graph.initializer}
    conv_out = [shapes[n.input[1]][0] for n in onx.graph.node if n.op_type == "Conv"]
    assert conv_out == [sum(1 for c in range(len(v.weight)) if c % 3) for v in convs]
    assert {"Elu", "MaxPool"} <= {n.op_type for n in onx.graph.node}
    label, proba = _run(onx, flat)
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(label, clf.predict(X))
