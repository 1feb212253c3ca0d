"""Will TensorRT 8.5 (JetPack 5.1, the last release for Xavier) parse this ONNX file?

Checked without TensorRT, against onnx-tensorrt `release/8.5-GA` `docs/operators.md`:
opset <= 17; every node's op type in the supported list, with the listed restrictions (Resize
modes, zero Q/DQ zero points of type INT8, no MaxPool indices output, constant axes and K
inputs); static shapes except an optional leading batch axis; no INT64 graph inputs or outputs.
Newer TensorRT versions accept everything 8.5 does, so passing here is the portable bar.
"""

from __future__ import annotations

from typing import List, Set, Union

import numpy as np
import onnx
from onnx import numpy_helper

from edge.errors import ModelError

MAX_OPSET = 17

# Operators marked "Y" in onnx-tensorrt release/8.5-GA docs/operators.md.
SUPPORTED_OPS = frozenset((
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh",
    "AveragePool", "BatchNormalization", "Cast", "Ceil", "Celu", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace",
    "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand",
    "EyeLike", "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gemm",
    "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample",
    "GRU", "HardSwish", "HardSigmoid", "Identity", "If", "ImageScaler", "InstanceNormalization",
    "IsNaN", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM",
    "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "MeanVarianceNormalization",
    "Min", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "Pad",
    "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal", "RandomNormalLike",
    "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
    "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RNN",
    "RoiAlign", "Round", "ScaledTanh", "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu",
    "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus",
    "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh",
    "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
))  # fmt: skip
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_TRANSFORMS = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
RESIZE_NEAREST = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
# Inputs that must be initializers or constants: (op type, input index, what it is).
CONSTANT_INPUTS = (
    ("Slice", 3, "axes"), ("Squeeze", 1, "axes"), ("Unsqueeze", 1, "axes"), ("TopK", 1, "K"),
    ("CumSum", 1, "axis"),
)  # fmt: skip


class CompatibilityError(ModelError):
    """The ONNX file uses something TensorRT 8.5 cannot parse."""


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def tensorrt85_problems(model: Union[str, onnx.ModelProto]) -> List[str]:
    """Every reason TensorRT 8.5's ONNX parser would reject `model` (empty list: it parses)."""
    proto = onnx.load(model, load_external_data=False) if isinstance(model, str) else model
    problems: List[str] = []
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > MAX_OPSET:
            problems.append(
                f"opset {opset.version} > {MAX_OPSET} (TensorRT 8.5's maximum); export with opset {MAX_OPSET}"
            )
    graph = proto.graph
    constants: Set[str] = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    initializers = {i.name: i for i in graph.initializer}

    for value in list(graph.input) + list(graph.output):
        if value.name in initializers:
            continue
        kind = "input" if value in graph.input else "output"
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type == onnx.TensorProto.INT64:
            problems.append(f"graph {kind} {value.name!r} is INT64 (TensorRT 8.5 has no INT64 I/O)")
        for axis, dim in enumerate(tensor_type.shape.dim):
            if axis > 0 and not dim.HasField("dim_value"):
                problems.append(f"graph {kind} {value.name!r} has a dynamic axis {axis} ({dim.dim_param!r}); "
                                "only the batch axis may be dynamic")  # fmt: skip

    for node in graph.node:
        where = f"node {node.name or '?'} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r} has no TensorRT 8.5 importer")
            continue
        if node.op_type not in SUPPORTED_OPS:
            problems.append(f"{where}: operator not supported by TensorRT 8.5")
            continue
        for op, index, what in CONSTANT_INPUTS:
            if (
                node.op_type == op
                and len(node.input) > index
                and node.input[index]
                and node.input[index] not in constants
            ):
                problems.append(f"{where}: {what} input must be an initializer or constant")
        if node.op_type == "Resize":
            mode = _attr(node, "mode", "nearest")
            transform = _attr(node, "coordinate_transformation_mode", "half_pixel")
            nearest = _attr(node, "nearest_mode", "round_prefer_floor")
            if mode not in RESIZE_MODES:
                problems.append(f"{where}: Resize mode {mode!r} unsupported (nearest or linear only)")
            if transform not in RESIZE_TRANSFORMS:
                problems.append(f"{where}: Resize coordinate transformation {transform!r} unsupported")
            if mode == "nearest" and nearest not in RESIZE_NEAREST:
                problems.append(f"{where}: Resize nearest mode {nearest!r} unsupported")
        elif node.op_type == "MaxPool" and len([o for o in node.output if o]) > 1:
            problems.append(f"{where}: MaxPool Indices output unsupported")
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems.extend(f"{where}: {p}" for p in _qdq_problems(node, initializers))
    return problems


def _qdq_problems(node: onnx.NodeProto, initializers: dict) -> List[str]:
    if len(node.input) < 3 or not node.input[2]:
        # Without a zero point, QuantizeLinear produces UINT8, which TensorRT 8.5 rejects.
        return (
            ["no zero point: the output type defaults to UINT8 (INT8 only)"]
            if node.op_type == "QuantizeLinear"
            else []
        )
    zero_point = initializers.get(node.input[2])
    if zero_point is None:
        return ["zero point must be an initializer"]
    problems = []
    if zero_point.data_type != onnx.TensorProto.INT8:
        problems.append(f"zero point type {onnx.TensorProto.DataType.Name(zero_point.data_type)} (INT8 only)")
    if np.any(numpy_helper.to_array(zero_point) != 0):
        problems.append("zero point must be 0 (symmetric quantization)")
    return problems


def require_tensorrt85(model: Union[str, onnx.ModelProto], label: str = "model") -> None:
    problems = tensorrt85_problems(model)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise CompatibilityError(
            f"{label} will not parse in TensorRT 8.5: " + "; ".join(problems[:10]) + more
        )
