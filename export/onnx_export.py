"""PyTorch to ONNX: opset 17, BatchNorm folded, a clean graph, and the model's metadata inside.

The TorchScript exporter traces the eval-mode model (only the deployed head), folding each
BatchNorm into its convolution. ONNX Runtime's *basic* graph optimisations (constant folding,
identity removal; standard ONNX ops only, portable to any runtime) then fold the shape arithmetic
the tracer leaves around the channel padding, so TensorRT parses a graph of plain Conv, Add, Relu,
MaxPool, Pad, Resize, pooling and attention ops.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from typing import Dict, Iterable, List, Sequence

import numpy as np
import onnx
import torch

from edge.errors import ModelError
from edge.files import atomic_write
from edge.modelinfo import INPUT_NAME, OUTPUT_NAME, ModelInfo

OPSET = 17  # TensorRT 8.5's highest (onnx-tensorrt release/8.5-GA docs/operators.md)
FP16_MAX = 65504.0
FP16_HEADROOM = 8.0  # keep a node in FP32 if its FP32 output reaches FP16_MAX / FP16_HEADROOM


class ExportError(ModelError):
    """The ONNX file could not be produced or failed a check."""


def export_onnx(
    model: torch.nn.Module,
    path: str,
    info: ModelInfo,
    batch: int = 1,
    dynamic_batch: bool = False,
) -> onnx.ModelProto:
    """Export the eval-mode model to `path` with static [batch, 3, H, W] input (or dynamic batch)."""
    if batch < 1:
        raise ExportError(f"batch must be at least 1, found {batch}")
    model = model.eval()
    dummy = torch.zeros(batch, 3, info.input_height, info.input_width)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (dummy,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            do_constant_folding=True,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
        )
    proto = simplify(onnx.load_from_string(buffer.getvalue()))
    leftover = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
    if leftover:
        raise ExportError(f"BatchNorm was not folded into convolutions: {leftover[:5]}")
    set_metadata(proto, info)
    proto.producer_name = "bkpose-export"
    proto.doc_string = "BK-Pose multi-person pose network; see metadata_props (bkpose.*) for the contract"
    onnx.checker.check_model(proto)
    save(proto, path)
    return proto


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Constant-fold and drop identities with ONNX Runtime's basic (portable) optimisation level."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        onnx.save(proto, src)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = dst
        ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
        out = onnx.load(dst)
    drop_unused_opsets(out)
    return out


def drop_unused_opsets(proto: onnx.ModelProto) -> None:
    """Keep only the opset imports that nodes use (ORT adds its private domains when saving)."""
    used = {n.domain for n in proto.graph.node}
    keep = [o for o in proto.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)


def sort_nodes(graph: onnx.GraphProto) -> None:
    """Order nodes so each comes after the producers of its inputs (the FP16 converter appends
    its input casts at the end, which the ONNX checker and TensorRT's parser refuse)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: List[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError(f"graph has a cycle or a dangling input near node {pending[0].name!r}")
        for n in ready:
            available.update(n.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def set_metadata(proto: onnx.ModelProto, info: ModelInfo) -> None:
    del proto.metadata_props[:]
    for key, value in sorted(info.to_metadata().items()):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value


def save(proto: onnx.ModelProto, path: str) -> None:
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))


def metadata_of(path: str) -> Dict[str, str]:
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def intermediate_maxima(path: str, inputs: Iterable[np.ndarray]) -> Dict[str, float]:
    """Largest |value| of every node output of an FP32 model over `inputs` (ONNX Runtime, CPU)."""
    import onnxruntime as ort

    proto = onnx.load(path)
    produced = {o: n.name for n in proto.graph.node for o in n.output if o}
    graph_outputs = {o.name for o in proto.graph.output}
    for name in produced:
        if name not in graph_outputs:
            proto.graph.output.add().name = name
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    maxima: Dict[str, float] = {}
    for x in inputs:
        for name, value in zip(names, session.run(names, {INPUT_NAME: x})):
            if name in produced and np.issubdtype(value.dtype, np.floating) and value.size:
                node = produced[name]
                maxima[node] = max(maxima.get(node, 0.0), float(np.abs(value).max()))
    return maxima


def convert_fp16(fp32_path: str, path: str, info: ModelInfo, inputs: Sequence[np.ndarray]) -> List[str]:
    """Write an FP16-compute copy of an FP32 ONNX; nodes that would overflow FP16 stay FP32.

    Overflow is measured: every node's FP32 output range over `inputs`; a node whose values reach
    FP16_MAX / FP16_HEADROOM is kept in FP32. Input and output stay float32 (the runtime contract);
    casts at the edges convert. Returns the names of the nodes kept in FP32.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    limit = FP16_MAX / FP16_HEADROOM
    keep = sorted(node for node, peak in intermediate_maxima(fp32_path, inputs).items() if peak >= limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = convert_float_to_float16(
            onnx.load(fp32_path), keep_io_types=True, node_block_list=keep or None
        )
    sort_nodes(proto.graph)
    set_metadata(proto, info.with_precision("fp16"))
    onnx.checker.check_model(proto)
    save(proto, path)
    return keep
