"""`bkpose-export`: checkpoint (or a seeded untrained model) to verified ONNX files and a manifest.

Steps: build the network, load weights strictly, export FP32 ONNX (opset 17, BN folded, metadata),
check TensorRT 8.5 compatibility, check parity against PyTorch in ONNX Runtime, derive the FP16
file (overflowing nodes kept in FP32), check it, and write `<name>.manifest.json`. Any failure
prints one clear line and exits non-zero; nothing half-written is left under the final names.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge import __version__
from edge.errors import BKPoseError
from edge.modelinfo import ModelInfo, variant_path

CALIBRATION_SEED_OFFSET = 7919  # synthetic BN-calibration frames differ from the parity frames


class Progress:
    """Numbered step lines on stderr with the time each step took (exports take tens of seconds)."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total, self.quiet, self.index = total, quiet, 0
        self.started = time.perf_counter()
        self.timings: Dict[str, float] = {}

    def step(self, label: str) -> Progress:
        self.index += 1
        self.label = label
        if not self.quiet:
            print(f"[{self.index}/{self.total}] {label} ...", file=sys.stderr, flush=True)
        self.started = time.perf_counter()
        return self

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        seconds = time.perf_counter() - self.started
        self.timings[self.label] = round(seconds, 3)
        if kind is None and not self.quiet:
            print(f"      done in {seconds:.1f} s", file=sys.stderr, flush=True)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bkpose-export",
        description="Export BK-Pose to ONNX (FP32 and FP16), verified for TensorRT 8.5-11 and ONNX Runtime.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="FILE", help="trained PyTorch checkpoint (.pth/.pt)")
    source.add_argument(
        "--random-init", action="store_true", help="deterministic untrained model (benchmarks, tests)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    p.add_argument("--out", default="engines", help="output folder (default engines/)")
    p.add_argument("--name", help="file name stem (default: checkpoint stem, or bkpose-random-s<seed>)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="fixed batch size of the input (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis")
    p.add_argument(
        "--fp16", dest="fp16", action="store_true", default=True, help="also write the FP16 file (default)"
    )
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the FP16 file")
    p.add_argument("--images", metavar="DIR", help="photos for the parity check and the INT8 report")
    add_int8_options(p)
    add_input_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.int8 and not args.calib_images:
        p.error("--int8 needs --calib-images DIR")
    if args.batch < 1:
        p.error(f"--batch must be at least 1, found {args.batch}")
    if args.input_size is not None and (args.input_size < 64 or args.input_size % 64):
        p.error(f"--input-size must be a positive multiple of 64, found {args.input_size}")
    return args


def add_int8_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--int8", action="store_true", help="also write a Q/DQ INT8 file (needs --calib-images)")
    p.add_argument("--calib-images", metavar="DIR", help="calibration photos for --int8 (500+ recommended)")
    p.add_argument(
        "--calib-method", choices=("minmax", "entropy", "percentile"), default="minmax",
        help="INT8 range calibration (entropy and percentile are much slower)",
    )  # fmt: skip
    p.add_argument("--calib-limit", type=int, default=None, help="use at most N calibration images")
    p.add_argument(
        "--force-calibration", action="store_true", help="calibrate even with fewer than 32 images"
    )
    p.add_argument(
        "--int8-keep-float", metavar="NODES", type=lambda v: [n for n in v.split(",") if n], default=[],
        help="comma-separated ONNX node names left unquantized in the INT8 file (the layers that "
        "`python -m export.int8_sensitivity` finds hurt most)",
    )  # fmt: skip


def add_input_options(p: argparse.ArgumentParser) -> None:
    """What the model expects of its input (written into its metadata)."""
    p.add_argument(
        "--channel-order", choices=("BGR", "RGB"), default="BGR",
        help="input channel order the model was trained with",
    )  # fmt: skip
    p.add_argument(
        "--pad-value", type=float, default=128.0, help="letterbox padding pixel value (default 128)"
    )
    p.add_argument("--align", choices=("top-left", "center"), default="top-left", help="letterbox placement")
    p.add_argument(
        "--input-size", type=int,
        help="square input size (multiple of 64; default: the size the checkpoint was trained at, else 512)",
    )  # fmt: skip


def default_name(args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    stem = (
        f"bkpose-random-s{args.seed}"
        if args.random_init
        else os.path.splitext(os.path.basename(args.checkpoint))[0]
    )
    if args.dynamic_batch:
        stem += "-dynbatch"
    elif args.batch != 1:
        stem += f"-b{args.batch}"
    return stem


def versions() -> Dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {
        "bkpose": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
    }  # fmt: skip


def file_entry(path: str, precision: str) -> Dict[str, Any]:
    from edge.files import sha256_of

    return {
        "file": os.path.basename(path),
        "precision": precision,
        "bytes": os.path.getsize(path),
        "sha256": sha256_of(path),
    }


def build_model(args: argparse.Namespace) -> Tuple[Any, ModelInfo]:
    """The eval-mode network with the checkpoint's weights, or seeded untrained weights."""
    import torch

    from edge.preprocess import CpuPreprocessor
    from edge.sources import synthetic_frame
    from export.checkpoint import checkpoint_decoder, checkpoint_input_size, load_checkpoint, read_checkpoint
    from export.model import BKPose, init_random

    torch.manual_seed(args.seed)
    model = BKPose()
    size = args.input_size
    decoder: Dict[str, float] = {}
    if args.checkpoint:
        stored = read_checkpoint(args.checkpoint)
        size = size or checkpoint_input_size(stored)  # the trained (or shipped) size
        decoder = checkpoint_decoder(stored)
    size = size or ModelInfo().input_width
    base = ModelInfo(
        input_width=size,
        input_height=size,
        channel_order=args.channel_order,
        pad_value=args.pad_value,
        letterbox_align=args.align,
    )
    if args.checkpoint:
        sha, _ = load_checkpoint(model, args.checkpoint)
        info = dataclasses.replace(base, trained=True, checkpoint_sha256=sha, decoder=decoder)
    else:
        rng = np.random.default_rng(args.seed + CALIBRATION_SEED_OFFSET)
        pre = CpuPreprocessor(base)
        frames = [pre(synthetic_frame(rng))[0] for _ in range(4)]
        frames.append(rng.random(frames[0].shape, dtype=np.float32))  # noise widens the calibrated range
        init_random(model, args.seed, torch.from_numpy(np.concatenate(frames)))
        info = dataclasses.replace(base, extra={"random_init_seed": str(args.seed)})
    return model.eval(), info


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """The export; on failure an `--out` folder it created is removed again (if still empty)."""
    created = not os.path.isdir(args.out)
    try:
        return export(args)
    except BaseException:
        if created and os.path.isdir(args.out) and not os.listdir(args.out):
            os.rmdir(args.out)
        raise


def export(args: argparse.Namespace) -> Dict[str, Any]:
    """The export, step by step; returns the manifest (also written next to the ONNX files)."""
    name = default_name(args)
    os.makedirs(args.out, exist_ok=True)
    progress = Progress(4 + (2 if args.fp16 else 0) + (2 if args.int8 else 0), args.quiet)
    label = (
        f"loading {args.checkpoint}" if args.checkpoint else f"building untrained BK-Pose (seed {args.seed})"
    )
    with progress.step(label):
        model, info = build_model(args)
    sizes = print_profile(model, info)
    batch = 1 if args.dynamic_batch else args.batch
    fp32_path = variant_path(args.out, name, "fp32")
    sizes["parameters_in_onnx"] = export_fp32(model, info, fp32_path, batch, args.dynamic_batch, progress)
    fp32, groups, outputs = check_fp32_parity(model, info, fp32_path, args, progress)
    files: List[Dict[str, Any]] = [file_entry(fp32_path, "fp32")]
    report: Dict[str, Any] = {"fp32_vs_torch": fp32}
    if args.fp16:
        fp16_path = variant_path(args.out, name, "fp16")
        report["fp16_vs_fp32"] = derive_fp16(fp32_path, fp16_path, info, groups, outputs, progress)
        files.append(file_entry(fp16_path, "fp16"))
    if args.int8:
        int8_path = variant_path(args.out, name, "int8")
        report["int8_vs_fp32"] = derive_int8(fp32_path, int8_path, info, batch, args, progress)
        files.append(file_entry(int8_path, "int8"))
    return write_manifest(args, name, info, batch, files, report, sizes, progress)


def print_profile(model: Any, info: ModelInfo) -> Dict[str, Any]:
    """Parameters and GMACs of the deployed and the training graph, printed and returned."""
    from export.model import profile

    stats = profile(model, info.input_height, info.input_width)
    training = profile(model, info.input_height, info.input_width, training_graph=True)
    print(
        f"BK-Pose: {stats['parameters'] / 1e6:.3f} M parameters, {stats['macs'] / 1e9:.3f} GMACs at "
        f"{info.input_width}x{info.input_height} (deployed graph; training graph "
        f"{training['parameters'] / 1e6:.3f} M, {training['macs'] / 1e9:.3f} GMACs)",
        flush=True,
    )
    return {
        "parameters": stats["parameters"],
        "parameters_training_graph": training["parameters"],
        "gmacs": round(stats["macs"] / 1e9, 4),
        "gmacs_training_graph": round(training["macs"] / 1e9, 4),
    }


def export_fp32(
    model: Any, info: ModelInfo, path: str, batch: int, dynamic_batch: bool, progress: Progress
) -> int:
    """Step: the FP32 ONNX (opset 17, BN folded, metadata), checked for TensorRT 8.5; returns the
    number of stored parameters."""
    from export.onnx_export import export_onnx
    from export.trt_compat import require_tensorrt85

    with progress.step(f"exporting {path} (opset 17, {'dynamic' if dynamic_batch else batch} batch)"):
        proto = export_onnx(model, path, info, batch=batch, dynamic_batch=dynamic_batch)
    with progress.step("checking TensorRT 8.5 compatibility"):
        require_tensorrt85(path, os.path.basename(path))
    return int(sum(int(np.prod(t.dims)) for t in proto.graph.initializer))


def check_fp32_parity(
    model: Any, info: ModelInfo, path: str, args: argparse.Namespace, progress: Progress
) -> Tuple[Dict[str, Any], List[np.ndarray], List[np.ndarray]]:
    """Step: ONNX Runtime against PyTorch on the parity inputs; the file is removed if they differ.
    Returns the errors, the input groups and ONNX Runtime's outputs (the FP16 step reuses both)."""
    import torch

    from export.parity import FP32_TOLERANCE, batched, errors, parity_inputs, run_onnx, worst

    with progress.step("parity: ONNX Runtime FP32 vs PyTorch"):
        named = parity_inputs(info, args.images, seed=args.seed)
        groups = batched(
            [x for _, x in named], 2 if args.dynamic_batch else (1 if args.dynamic_batch else args.batch)
        )
        if args.dynamic_batch:
            groups.append(named[0][1])  # a batch of one as well
        with torch.no_grad():
            expected = [model(torch.from_numpy(x)).numpy() for x in groups]
        actual = run_onnx(path, groups)
        fp32 = worst(errors(e, a) for e, a in zip(expected, actual))
        fp32.update(inputs=[n for n, _ in named], tolerance=FP32_TOLERANCE)
        print(f"FP32 parity over {len(named)} inputs: max abs {fp32['max_abs']:.2e}, "
              f"max rel {fp32['max_rel']:.2e} (tolerance {FP32_TOLERANCE:g} abs)", flush=True)  # fmt: skip
        if not fp32["max_abs"] <= FP32_TOLERANCE:
            os.remove(path)
            raise BKPoseError(
                f"FP32 ONNX differs from PyTorch by {fp32['max_abs']:.3g} > {FP32_TOLERANCE:g}; file removed"
            )
    return fp32, groups, actual


def derive_fp16(
    fp32_path: str, path: str, info: ModelInfo, groups: List[np.ndarray], reference: List[np.ndarray],
    progress: Progress,
) -> Dict[str, Any]:  # fmt: skip
    """Step: the FP16 file (overflowing nodes kept FP32) and its error against FP32."""
    from export.onnx_export import FP16_HEADROOM, convert_fp16
    from export.parity import FP16_TOLERANCE, errors, run_onnx, worst
    from export.trt_compat import require_tensorrt85

    with progress.step(f"writing {path} (FP16 compute, overflowing nodes kept FP32)"):
        kept = convert_fp16(fp32_path, path, info, groups)
        require_tensorrt85(path, os.path.basename(path))
    with progress.step("FP16 error vs FP32 (ONNX Runtime)"):
        fp16 = worst(errors(e, a) for e, a in zip(reference, run_onnx(path, groups)))
        fp16.update(kept_fp32_nodes=kept, headroom=FP16_HEADROOM, tolerance_rel=FP16_TOLERANCE)
        print(f"FP16 vs FP32: max abs {fp16['max_abs']:.2e}, max rel {fp16['max_rel']:.2e}; "
              f"{len(kept)} node(s) kept in FP32", flush=True)  # fmt: skip
        if not fp16["max_rel"] <= FP16_TOLERANCE:
            os.remove(path)
            raise BKPoseError(f"FP16 ONNX differs from FP32 by {fp16['max_rel']:.3g} of the output range "
                              f"> {FP16_TOLERANCE:g}; file removed")  # fmt: skip
    return fp16


def derive_int8(
    fp32_path: str, path: str, info: ModelInfo, batch: int, args: argparse.Namespace, progress: Progress
) -> Dict[str, Any]:
    """Step: the Q/DQ INT8 file calibrated on `--calib-images`, and its quality against FP32."""
    from export.int8_report import int8_report
    from export.parity import image_files
    from export.quantize import calibration_files, quantize_qdq
    from export.trt_compat import require_tensorrt85

    with progress.step(f"writing {path} (Q/DQ INT8, {args.calib_method} calibration)"):
        calib_files = calibration_files(args.calib_images, args.calib_limit, args.force_calibration)
        calibration = quantize_qdq(
            fp32_path, path, info, calib_files, args.calib_method, batch, keep_float=args.int8_keep_float
        )
        require_tensorrt85(path, os.path.basename(path))
    with progress.step("INT8 quality report vs FP32 (ONNX Runtime)"):
        report_files = image_files(args.images) if args.images else calib_files[:50]
        quality = int8_report(fp32_path, path, report_files, info) if batch == 1 else None
        if quality:
            poses, heat = quality["poses"], quality["heatmaps"]
            oks = "n/a (no people)" if poses["mean_oks"] is None else f"{poses['mean_oks']:.3f}"
            people = f"people FP32 {poses['reference_people']}, INT8 {poses['candidate_people']}"
            print(f"INT8 vs FP32 over {quality['images']} photos: heatmap max abs {heat['max_abs']:.3g} "
                  f"(mean per-image max {heat['mean_abs_over_images']:.3g}); mean OKS {oks}; {people}",
                  flush=True)  # fmt: skip
    return {"calibration": calibration, "quality": quality}


def write_manifest(
    args: argparse.Namespace, name: str, info: ModelInfo, batch: int, files: List[Dict[str, Any]],
    report: Dict[str, Any], sizes: Dict[str, Any], progress: Progress,
) -> Dict[str, Any]:  # fmt: skip
    """Step: `<name>.manifest.json` beside the files: hashes, parity, sizes, provenance."""
    from edge.files import save_json

    manifest = {
        "format": "bkpose-export-manifest", "version": 1, "name": name, "files": files, "parity": report,
        **sizes,
        "input": {"name": "image", "shape": [
            "batch" if args.dynamic_batch else batch, 3, info.input_height, info.input_width]},
        "opset": 17, "trained": info.trained,
        "checkpoint": os.path.abspath(args.checkpoint) if args.checkpoint else None,
        "checkpoint_sha256": info.checkpoint_sha256 or None, "seed": None if args.checkpoint else args.seed,
        "metadata": info.to_metadata(), "versions": versions(), "step_seconds": progress.timings,
    }  # fmt: skip
    manifest_path = os.path.join(args.out, f"{name}.manifest.json")
    save_json(manifest, manifest_path)
    print(
        f"wrote {', '.join(os.path.join(args.out, f['file']) for f in files)} and {manifest_path}", flush=True
    )
    return manifest


def export_random(out: str, seed: int = 0, fp16: bool = False, *extra: str) -> str:
    """The untrained seed-`seed` BK-Pose as ONNX in `out` (benchmarks and tests); returns the FP32
    file. `extra`: more bkpose-export options (e.g. "--dynamic-batch")."""
    options = ["--random-init", "--seed", str(seed), "--out", out, "--quiet", *extra]
    manifest = run(parse_args(options + ([] if fp16 else ["--no-fp16"])))
    return os.path.join(out, manifest["files"][0]["file"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    warnings.formatwarning = lambda message, *_args, **_kw: f"bkpose-export: warning: {message}\n"
    try:
        run(args)
    except ImportError as err:
        print(f"bkpose-export: {err.name or err} is not installed; "
              "install the export extra: pip install 'bkpose[export]'",
              file=sys.stderr)  # fmt: skip
        return 3
    except (BKPoseError, OSError, ValueError) as err:
        print(f"bkpose-export: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bkpose-export: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
