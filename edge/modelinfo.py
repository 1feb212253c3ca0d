"""What a model file says about itself: the metadata export writes and every backend reads back.

The export stage stores these fields as ONNX `metadata_props` (and the engine build copies them
into each engine's `.json` sidecar), so the runtime never guesses the input size, the channel
order, the normalisation, the letterbox padding or the output layout.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

from edge.errors import LayoutError, ModelError
from edge.geometry import ALIGNMENTS, Letterbox, letterbox
from edge.layout import BKPOSE_LAYOUT, METADATA_KEY, Layout

INPUT_NAME = "image"
OUTPUT_NAME = "heatmaps"
CHANNEL_ORDERS = ("BGR", "RGB")
PRECISIONS = ("fp32", "fp16", "int8")
PREFIX = "bkpose."


@dataclass(frozen=True)
class ModelInfo:
    """Input contract, output layout and provenance of one exported model variant.

    `normalization` is `(scale, mean, std)` per channel in input channel order:
    `x = (pixel * scale - mean) / std`. BK-Pose uses pixel/255 with no mean or std.
    `decoder`: decoder constants measured for this model's own maps (`edge.decode.DecoderParams`
    names), which replace the reference's defaults; a caller's own values win over both.
    """

    input_width: int = 512
    input_height: int = 512
    channel_order: str = "BGR"
    scale: float = 1.0 / 255.0
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: float = 128.0
    letterbox_align: str = "top-left"
    layout: Layout = BKPOSE_LAYOUT
    model_name: str = "bk-pose"
    precision: str = "fp32"
    trained: bool = False
    checkpoint_sha256: str = ""
    decoder: Dict[str, float] = field(default_factory=dict)
    extra: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_width < 1 or self.input_height < 1:
            raise ModelError(f"input size must be positive, found {self.input_width}x{self.input_height}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ModelError(f"channel order must be one of {CHANNEL_ORDERS}, found {self.channel_order!r}")
        if self.letterbox_align not in ALIGNMENTS:
            raise ModelError(
                f"letterbox alignment must be one of {ALIGNMENTS}, found {self.letterbox_align!r}"
            )
        if self.precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {PRECISIONS}, found {self.precision!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise ModelError(
                f"mean and std need 3 values each and std must be non-zero: {self.mean}, {self.std}"
            )
        if not 0.0 <= self.pad_value <= 255.0:
            raise ModelError(f"pad value is a pixel value in [0, 255], found {self.pad_value}")
        bad = {
            k: v for k, v in self.decoder.items() if isinstance(v, bool) or not isinstance(v, (int, float))
        }
        if bad:
            raise ModelError(f"decoder constants must be numbers, found {bad}")

    def letterbox(self, width: int, height: int) -> Letterbox:
        """Placement of a width x height frame in this model's input (size and alignment)."""
        return letterbox(width, height, self.input_width, self.input_height, self.letterbox_align)

    def to_metadata(self) -> Dict[str, str]:
        """String key/value pairs for ONNX `metadata_props` and engine sidecars."""
        meta = {
            METADATA_KEY: self.layout.to_json(),
            PREFIX + "input_size": f"{self.input_width}x{self.input_height}",
            PREFIX + "channel_order": self.channel_order,
            PREFIX + "normalization": json.dumps(
                {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}
            ),
            PREFIX + "pad_value": repr(float(self.pad_value)),
            PREFIX + "letterbox_align": self.letterbox_align,
            PREFIX + "model_name": self.model_name,
            PREFIX + "precision": self.precision,
            PREFIX + "trained": "true" if self.trained else "false",
            PREFIX + "checkpoint_sha256": self.checkpoint_sha256,
        }
        if self.decoder:
            meta[PREFIX + "decoder"] = json.dumps(self.decoder, sort_keys=True)
        for key, value in self.extra.items():
            meta[PREFIX + key] = str(value)
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str = "model") -> ModelInfo:
        """Read back what `to_metadata` wrote; a missing or malformed field names `source`."""

        def get(key: str) -> str:
            value = meta.get(PREFIX + key if key != METADATA_KEY else key)
            if value is None:
                raise ModelError(
                    f"{source}: metadata field {key!r} is missing; export the model with `bkpose-export`"
                )
            return value

        try:
            width, height = (int(v) for v in get("input_size").lower().split("x"))
            norm = json.loads(get("normalization"))
            info = cls(
                input_width=width,
                input_height=height,
                channel_order=get("channel_order"),
                scale=float(norm["scale"]),
                mean=tuple(float(v) for v in norm["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in norm["std"]),  # type: ignore[arg-type]
                pad_value=float(get("pad_value")),
                letterbox_align=get("letterbox_align"),
                layout=Layout.from_json(get(METADATA_KEY)),
                model_name=get("model_name"),
                precision=get("precision"),
                trained=get("trained") == "true",
                checkpoint_sha256=meta.get(PREFIX + "checkpoint_sha256", ""),
                decoder=dict(json.loads(meta.get(PREFIX + "decoder", "{}"))),  # older files have none
                extra={
                    k[len(PREFIX) :]: v
                    for k, v in meta.items()
                    if k.startswith(PREFIX) and k[len(PREFIX) :] not in _KNOWN
                },
            )
        except LayoutError as err:
            raise ModelError(f"{source}: {err}") from err
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, ModelError):
                raise
            raise ModelError(f"{source}: malformed bkpose metadata ({err}); re-export the model") from err
        return info

    def with_precision(self, precision: str) -> ModelInfo:
        return dataclasses.replace(self, precision=precision)


_KNOWN = frozenset(
    (
        "layout", "input_size", "channel_order", "normalization", "pad_value", "letterbox_align",
        "model_name", "precision", "trained", "checkpoint_sha256", "decoder",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """What a model file's name says: `<folder>/<stem>.<precision>[.<tag>]<suffix>`, for example
    `engines/bkpose.fp16.dla0.engine` (stem "bkpose", precision "fp16", tag "dla0")."""

    folder: str
    stem: str
    precision: str  # "" when the name carries none
    tag: str
    suffix: str

    def with_precision(self, precision: str, suffix: str = "") -> str:
        """The sibling file of another precision (and suffix)."""
        return variant_path(self.folder, self.stem, precision, suffix or self.suffix, self.tag)


def variant_path(folder: str, stem: str, precision: str, suffix: str = ".onnx", tag: str = "") -> str:
    """The one naming rule of exported and built model files (export, build and bench use it)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, found {precision!r}")
    return os.path.join(folder, f"{stem}.{precision}" + (f".{tag}" if tag else "") + suffix)


def parse_variant(path: str) -> Variant:
    """The inverse of `variant_path`; a name without a precision part keeps its whole stem."""
    folder, name = os.path.split(path)
    body, suffix = os.path.splitext(name)
    parts = body.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in PRECISIONS:
            return Variant(folder, ".".join(parts[:i]), parts[i], ".".join(parts[i + 1 :]), suffix)
    return Variant(folder, body, "", "", suffix)
