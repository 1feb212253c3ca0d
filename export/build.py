"""`bkpose-build`: ONNX to a TensorRT engine on the device that will run it (imports no torch).

Precision comes from the ONNX variant, with the flags each TensorRT version has (platform.md 3):
  FP32 file + --fp16   FP16 builder flag (TensorRT < 11; 11 removed it: build the FP16 file)
  FP16 file            strongly typed where the network flag exists (TensorRT >= 10), else the
                       FP16 flag (8.x)
  Q/DQ (INT8) file     INT8 flag (+ FP16 for the unquantized rest) where the flags exist; strongly
                       typed on TensorRT 11
Workspace limit, a timing cache file reused and updated across builds, builder optimisation level
where it exists (8.6+), `--dla-core N` with GPU fallback on Xavier (the layers that fall back are
listed), every parser error printed, and progress while the builder runs. Writes `<name>.engine`
and the `.json` sidecar the runtime checks.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edge.backends.sidecar import make_sidecar, sidecar_path
from edge.errors import BKPoseError, ModelError
from edge.modelinfo import ModelInfo, parse_variant, variant_path


class BuildError(ModelError):
    """The engine could not be built."""


@dataclass
class BuildPlan:
    """Which network and builder flags to set for one precision on one TensorRT version."""

    precision: str  # precision of the resulting engine: fp32, fp16 or int8
    network_flags: List[str] = field(default_factory=list)
    builder_flags: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def plan_build(trt: Any, file_precision: str, fp16: bool, dla_core: Optional[int]) -> BuildPlan:
    """Decide the flags from what this TensorRT module offers (feature detection, no versions)."""
    creation = trt.NetworkDefinitionCreationFlag
    flags = trt.BuilderFlag
    has_fp16, has_int8 = hasattr(flags, "FP16"), hasattr(flags, "INT8")
    strongly_typed = hasattr(creation, "STRONGLY_TYPED")
    plan = BuildPlan(precision=file_precision)
    if hasattr(creation, "EXPLICIT_BATCH") and not strongly_typed:
        plan.network_flags.append("EXPLICIT_BATCH")  # required for ONNX before TensorRT 10
    if file_precision == "fp32":
        if fp16:
            if not has_fp16:
                raise BuildError(
                    "this TensorRT has no FP16 builder flag (TensorRT 11 takes precision from the file): "
                    "build the .fp16.onnx file that bkpose-export wrote instead"
                )
            plan.builder_flags.append("FP16")
            plan.precision = "fp16"
    elif file_precision == "fp16":
        if strongly_typed:
            plan.network_flags.append("STRONGLY_TYPED")
        elif has_fp16:
            plan.builder_flags.append("FP16")
    elif file_precision == "int8":
        if has_int8:
            plan.builder_flags.append("INT8")
            if has_fp16:
                plan.builder_flags.append("FP16")  # layers left unquantized run in FP16
        elif strongly_typed:
            plan.network_flags.append("STRONGLY_TYPED")
        if fp16 and not has_fp16:
            plan.notes.append("--fp16 ignored: the Q/DQ file sets the precision on this TensorRT")
    else:
        raise BuildError(f"unknown model precision {file_precision!r}")
    if dla_core is not None:
        if plan.precision == "fp32":
            raise BuildError("DLA runs FP16 or INT8 only: add --fp16 or build the INT8 file")
        plan.builder_flags.append("GPU_FALLBACK")
    if "EXPLICIT_BATCH" in plan.network_flags and "STRONGLY_TYPED" in plan.network_flags:
        plan.network_flags.remove("EXPLICIT_BATCH")
    return plan


def read_onnx(path: str) -> Dict[str, Any]:
    """Metadata, Q/DQ presence and input shape of an ONNX file (the onnx package, else ONNX Runtime)."""
    try:
        import onnx

        proto = onnx.load(path, load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        has_qdq = any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        shape: List[Any] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    except ImportError:
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        meta = dict(session.get_modelmeta().custom_metadata_map)
        has_qdq = meta.get("bkpose.precision") == "int8"
        shape = [d if isinstance(d, int) else -1 for d in session.get_inputs()[0].shape]
    return {"metadata": meta, "has_qdq": has_qdq, "input_shape": shape}


class Ticker:
    """Prints elapsed time every `every` seconds while the builder works (minutes on a Jetson)."""

    def __init__(self, label: str, every: float = 15.0, quiet: bool = False) -> None:
        self.label, self.every, self.quiet = label, every, quiet
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            print(f"  {self.label}: {time.perf_counter() - self.started:.0f} s", file=sys.stderr, flush=True)

    def __enter__(self) -> Ticker:
        if not self.quiet:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


def build(args: argparse.Namespace) -> Dict[str, Any]:
    """Build the engine and write it with its sidecar; returns the sidecar."""
    from edge.backends.trt import require_tensorrt
    from edge.cuda.device import CudaDevice
    from edge.files import save_json, sha256_of

    require_tensorrt()
    import tensorrt as trt

    onnx_info = read_onnx(args.onnx)
    info = ModelInfo.from_metadata(onnx_info["metadata"], args.onnx)
    plan = plan_build(trt, "int8" if onnx_info["has_qdq"] else info.precision, args.fp16, args.dla_core)
    for note in plan.notes:
        print(f"bkpose-build: note: {note}", file=sys.stderr)
    stem = args.name or parse_variant(args.onnx).stem
    tag = f"dla{args.dla_core}" if args.dla_core is not None else ""
    engine_path = variant_path(args.out, stem, plan.precision, ".engine", tag)
    logger = trt.Logger(trt.Logger.VERBOSE if args.verbose else trt.Logger.WARNING)
    with CudaDevice(0) as device, device.active():  # the device is released however the build ends
        cc = "{}.{}".format(*device.compute_capability)
        builder = trt.Builder(logger)
        network, _parser = parse_network(trt, builder, logger, args.onnx, plan)  # the parser owns weights
        config, input_shape = configure(trt, builder, network, plan, args, list(onnx_info["input_shape"]))
        seconds = serialize(builder, network, config, engine_path, plan, args)
        sidecar = make_sidecar(
            info.with_precision(plan.precision), trt.__version__, device.name, cc, input_shape,
            os.path.abspath(args.onnx), sha256_of(args.onnx), seconds,
            "FP16" in plan.builder_flags, "INT8" in plan.builder_flags, args.dla_core,
        )  # fmt: skip
    save_json(sidecar, sidecar_path(engine_path))
    print(f"wrote {engine_path} and {sidecar_path(engine_path)} in {seconds:.1f} s", flush=True)
    return sidecar


def parse_network(trt: Any, builder: Any, logger: Any, onnx_path: str, plan: BuildPlan) -> Tuple[Any, Any]:
    """The network TensorRT's ONNX parser reads from `onnx_path`, and the parser (keep it alive)."""
    network_flags = 0
    for flag in plan.network_flags:
        network_flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, flag))
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        parsed = parser.parse(f.read())
    if not parsed:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"{onnx_path}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(errors))
    return network, parser


def configure(
    trt: Any, builder: Any, network: Any, plan: BuildPlan, args: argparse.Namespace, input_shape: List[Any]
) -> Tuple[Any, List[Any]]:
    """The builder config (workspace, flags, DLA, batch profile, timing cache) and the input shape
    the sidecar records ("1..N" for a dynamic batch)."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(args.workspace) << 20)
    if hasattr(config, "builder_optimization_level") and args.opt_level is not None:
        config.builder_optimization_level = int(args.opt_level)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if args.dla_core is not None:
        use_dla(trt, builder, network, config, args.dla_core)
    if input_shape[0] == -1:
        profile = builder.create_optimization_profile()
        tail = tuple(input_shape[1:])
        low, best, high = (trt.Dims([b, *tail]) for b in (1, args.batch, args.max_batch))
        profile.set_shape(network.get_input(0).name, low, best, high)
        config.add_optimization_profile(profile)
        input_shape = [f"1..{args.max_batch}", *input_shape[1:]]
    cache_blob = b""
    if args.timing_cache and os.path.exists(args.timing_cache):
        with open(args.timing_cache, "rb") as f:
            cache_blob = f.read()
    config.set_timing_cache(config.create_timing_cache(cache_blob), False)
    return config, input_shape


def use_dla(trt: Any, builder: Any, network: Any, config: Any, core: int) -> None:
    """Build for DLA core `core` with GPU fallback, and say which layers fall back."""
    if builder.num_DLA_cores <= core:
        raise BuildError(f"DLA core {core} requested; this device has {builder.num_DLA_cores}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(core)
    fallback = [network.get_layer(i).name for i in range(network.num_layers)
                if not config.can_run_on_DLA(network.get_layer(i))]  # fmt: skip
    shown = ", ".join(fallback[:20]) + (" ..." if len(fallback) > 20 else "")
    count = f"{len(fallback)} of {network.num_layers} layers fall back to the GPU"
    print(f"DLA core {core}: {count}" + (f": {shown}" if fallback else ""))


def serialize(
    builder: Any, network: Any, config: Any, engine_path: str, plan: BuildPlan, args: argparse.Namespace
) -> float:
    """Build, write the engine (and the updated timing cache); returns the build's seconds."""
    from edge.files import save_bytes

    all_flags = plan.network_flags + plan.builder_flags
    print(f"building {engine_path} ({plan.precision}; flags {all_flags}) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with Ticker("building", quiet=args.quiet):
        serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise BuildError(f"{args.onnx}: TensorRT could not build the engine (see the TensorRT log above)")
    save_bytes(bytes(serialized), engine_path)
    if args.timing_cache:
        save_bytes(bytes(config.get_timing_cache().serialize()), args.timing_cache)
    return seconds


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bkpose-build", description="Build a TensorRT engine from a bkpose ONNX file."
    )
    p.add_argument("onnx", help="ONNX file written by bkpose-export (.fp32, .fp16 or .int8)")
    p.add_argument("--out", default="engines", help="output folder (default engines/)")
    p.add_argument("--name", help="engine file stem (default: the ONNX stem)")
    p.add_argument("--fp16", action="store_true", help="FP16 engine from an FP32 file (TensorRT < 11)")
    p.add_argument("--workspace", type=int, default=1024, help="workspace limit in MiB (default 1024)")
    p.add_argument(
        "--timing-cache", default=os.path.join("engines", "timing.cache"),
        help="timing cache, reused and updated (default engines/timing.cache; '' for none)",
    )  # fmt: skip
    p.add_argument(
        "--opt-level", type=int, default=None, help="builder optimisation level 0-5 (TensorRT >= 8.6)"
    )
    p.add_argument(
        "--dla-core", type=int, default=None, help="build for DLA core N with GPU fallback (Xavier)"
    )
    p.add_argument("--batch", type=int, default=1, help="optimal batch for a dynamic-batch file")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch for a dynamic-batch file")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if not os.path.isfile(args.onnx):
            raise ModelError(f"{args.onnx}: file not found")
        os.makedirs(args.out, exist_ok=True)
        build(args)
    except (BKPoseError, OSError) as err:
        print(f"bkpose-build: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bkpose-build: interrupted; no engine written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
