"""ONNX export: ``import skprune.onnx`` registers a skl2onnx converter.

Afterwards ``skl2onnx.to_onnx(model, X[:1].astype(np.float32))`` converts a
fitted :class:`~skprune.SparseNetClassifier`, alone or as the last step of a
``Pipeline``. The graph is the compacted network of
:meth:`~skprune.SparseNetClassifier.sparsify` (dead inputs, units and
channels removed; biases folded) with dense ``Gemm`` layers in float32, and
``Conv`` (with ``Relu`` or ``Elu``, the batch norm's ``Mul``/``Add`` and
``AveragePool`` or ``MaxPool``) for ``"lenet5"`` and ``"vgg"``: removed
channels are absent from the graph. Only the built-in ``"mlp"``,
``"lenet300"``, ``"lenet5"`` and ``"vgg"`` modules are converted.

Outputs follow skl2onnx's classifier convention: ``label`` and
``probabilities``; the ``zipmap`` option (default True: a list of dicts;
``False``: a matrix; ``"columns"``) is supported, e.g.
``to_onnx(model, X, options={SparseNetClassifier: {"zipmap": False}})``.
"""

import numpy as np

try:
    from onnx import TensorProto
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skprune.onnx needs onnx and skl2onnx (and onnxruntime to run the models): "
        "pip install 'skprune[onnx]'."
    ) from exc

from ..estimators._classes import SparseNetClassifier
from ..estimators._inference import InferenceNet
from ..estimators._sparsify import compact
from ..models import MLP, LeNet5, VGGLike

__all__ = ["convert_sparse_net_classifier"]

_ALIAS = "SkpruneSparseNetClassifier"


class _Graph:
    """Adds nodes and float32 initializers with unique names to a container."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def const(self, array, onnx_type=TensorProto.FLOAT, hint="w"):
        name = self.scope.get_unique_variable_name(hint)
        array = np.asarray(array)
        if onnx_type == TensorProto.FLOAT:
            array = array.astype(np.float32)
        values = array.ravel().tolist()
        self.container.add_initializer(name, onnx_type, list(array.shape), values)
        return name

    def node(self, op_type, inputs, output=None, domain="", **attrs):
        output = output or self.scope.get_unique_variable_name(op_type.lower())
        name = self.scope.get_unique_operator_name(op_type)
        version = 1 if domain else self.container.target_opset
        self.container.add_node(
            op_type, inputs, output, op_domain=domain, op_version=version, name=name, **attrs
        )
        return output


def _emit(graph, op, x):
    tensors = {k: v.detach().cpu().numpy() for k, v in op.tensors.items() if k != "weight"}
    if op.kind == "select":
        return graph.node("Gather", [x, graph.const(tensors["index"], TensorProto.INT64)], axis=1)
    if op.kind == "flatten":
        return graph.node("Flatten", [x], axis=1)
    weight = graph.const(op.dense_weight().cpu().numpy())
    bias = graph.const(tensors["bias"], hint="b")
    if op.kind == "conv":
        return _emit_conv(
            graph, op, tensors, graph.node("Conv", [x, weight, bias], pads=[op.padding] * 4)
        )
    x = graph.node("Gemm", [x, weight, bias], transB=1)
    return graph.node("Relu", [x]) if op.relu else x


def _emit_conv(graph, op, tensors, x):
    """What follows a convolution: bias map, activation, batch-norm affine step, pooling."""
    if "bias_map" in tensors:
        x = graph.node("Add", [x, graph.const(tensors["bias_map"][None], hint="bias_map")])
    if op.act:
        x = graph.node({"relu": "Relu", "elu": "Elu"}[op.act], [x])
    if "scale" in tensors:
        x = graph.node("Mul", [x, graph.const(tensors["scale"][:, None, None], hint="scale")])
        x = graph.node("Add", [x, graph.const(tensors["shift"][:, None, None], hint="shift")])
    if not op.pool:
        return x
    pool = [op.pool, op.pool]
    kind = "AveragePool" if op.pool_kind == "avg" else "MaxPool"
    return graph.node(kind, [x], kernel_shape=pool, strides=pool)


def _labels(graph, classes, proba, output):
    index = graph.node("ArgMax", [proba], axis=1, keepdims=0)
    if classes.dtype.kind in "biu":
        table = graph.const(classes.astype(np.int64), TensorProto.INT64, "classes")
    else:
        table = graph.const(classes.astype(str), TensorProto.STRING, "classes")
    label = graph.node("ArrayFeatureExtractor", [table, index], domain="ai.onnx.ml")
    graph.node("Reshape", [label, graph.const([-1], TensorProto.INT64, "shape")], output)


def convert_sparse_net_classifier(scope, operator, container):
    """skl2onnx converter: the compacted network, softmax and labels."""
    clf = operator.raw_operator
    module = clf.net_.module_
    form = compact(module) if type(module) in (MLP, LeNet5, VGGLike) else None
    if not isinstance(form, InferenceNet):
        raise NotImplementedError(
            "skprune.onnx converts the built-in modules 'mlp', 'lenet300', 'lenet5' and 'vgg'; "
            f"got {type(clf.net_.module_).__name__}."
        )
    graph = _Graph(scope, container)
    x = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, FloatTensorType):
        x = graph.node("Cast", [x], to=TensorProto.FLOAT)
    shape = graph.const([-1, *form.input_shape], TensorProto.INT64, "shape")
    x = graph.node("Reshape", [x, shape])
    for op in form.ops:
        x = _emit(graph, op, x)
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name
    graph.node("Softmax", [x], proba, axis=1)
    _labels(graph, np.asarray(clf.classes_), proba, label)


update_registered_converter(
    SparseNetClassifier,
    _ALIAS,
    calculate_linear_classifier_output_shapes,
    convert_sparse_net_classifier,
    options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
)
