"""The BK-Pose output layout: the one source of truth for what each of the 50 channels means.

The export stage writes `Layout.to_json()` into the ONNX metadata (key `METADATA_KEY`) and each
engine's sidecar; the runtime reads it back with `Layout.from_json()`, which validates it, and
`require_compatible()` refuses a model whose layout the decoder cannot use.

Channel contract (Simple Pose `config.py: CanonicalConfig`, model_spec section 2.1):
  0..29   limb ("body part") maps, in grouping order `limbs`
  30..47  keypoint maps, 18 keypoints in OpenPose order (with neck)
  48      person mask (auxiliary, training only)
  49      max over the keypoint maps (auxiliary, training only)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edge.errors import LayoutError

METADATA_KEY = "bkpose.layout"
FORMAT_NAME = "bkpose-layout"
FORMAT_VERSION = 1

COCO_KEYPOINTS: Tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# COCO OKS sigmas in COCO-17 order (pycocotools `Params.setKpParams`).
COCO_OKS_SIGMAS: Tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip

# COCO-17 skeleton edges (pairs of COCO indices), for drawing.
COCO_SKELETON: Tuple[Tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

_OPENPOSE18: Tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

# Grouping order matters: the decoder assembles people limb by limb in this order.
_SIMPLEPOSE_LIMBS: Tuple[Tuple[int, int], ...] = (
    (1, 0), (1, 14), (1, 15), (1, 16), (1, 17), (0, 14), (0, 15), (14, 16), (15, 17), (1, 2),
    (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (0, 2), (0, 5), (2, 8), (8, 12), (5, 11), (11, 9), (16, 2), (17, 5), (8, 11),
)  # fmt: skip

_FLIP_LIMBS: Tuple[int, ...] = (
    0, 2, 1, 4, 3, 6, 5, 8, 7, 12, 13, 14, 9, 10, 11, 18, 19, 20, 15, 16, 17, 22, 21, 25, 26,
    23, 24, 28, 27, 29,
)  # fmt: skip
_FLIP_KEYPOINTS_AND_AUX: Tuple[int, ...] = (
    0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16, 18, 19,
)  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """Meaning of every output channel, plus the tables needed to decode, score and flip.

    keypoints:     names, in channel order (OpenPose-18 for BK-Pose)
    limbs:         (from, to) keypoint indices, in the decoder's grouping order
    limb_start:    channel of limb 0; limb k is channel limb_start + k
    keypoint_start: channel of keypoint 0
    aux_channels:  names of the trailing auxiliary channels (not decoded)
    to_coco:       per keypoint, its COCO-17 index, or -1 (neck) for keypoints COCO lacks
    flip_limbs:    limb permutation for a horizontally flipped image
    flip_heat:     permutation over keypoint + auxiliary channels for a flipped image
    stride:        input pixels per heatmap cell
    """

    name: str
    keypoints: Tuple[str, ...]
    limbs: Tuple[Tuple[int, int], ...]
    limb_start: int
    keypoint_start: int
    aux_channels: Tuple[str, ...]
    to_coco: Tuple[int, ...]
    oks_sigmas: Tuple[float, ...]
    flip_limbs: Tuple[int, ...]
    flip_heat: Tuple[int, ...]
    stride: int

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ derived views
    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def num_limbs(self) -> int:
        return len(self.limbs)

    @property
    def num_channels(self) -> int:
        return self.num_limbs + self.num_keypoints + len(self.aux_channels)

    @property
    def num_decoded_channels(self) -> int:
        """Limb and keypoint channels, which lead the tensor; the auxiliary channels follow them."""
        return self.num_limbs + self.num_keypoints

    @property
    def limb_channels(self) -> range:
        return range(self.limb_start, self.limb_start + self.num_limbs)

    @property
    def keypoint_channels(self) -> range:
        return range(self.keypoint_start, self.keypoint_start + self.num_keypoints)

    @property
    def coco_to_layout(self) -> Tuple[int, ...]:
        """For each COCO-17 slot, the layout keypoint that fills it."""
        inverse = [-1] * len(COCO_KEYPOINTS)
        for k, c in enumerate(self.to_coco):
            if c >= 0:
                inverse[c] = k
        return tuple(inverse)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["limbs"] = [list(limb) for limb in self.limbs]
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Layout:
        if not isinstance(d, dict):
            raise LayoutError(f"layout must be a JSON object, found {type(d).__name__}")
        if d.get("format") != FORMAT_NAME or d.get("version") != FORMAT_VERSION:
            raise LayoutError(
                f"layout format {d.get('format')!r} version {d.get('version')!r} is not supported: "
                f"expected {FORMAT_NAME!r} version {FORMAT_VERSION}; re-export the model with this bkpose"
            )
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise LayoutError(f"layout is missing fields {missing}; re-export the model")
        try:
            values = {n: _as_tuple(d[n]) for n in names}
            values["limbs"] = tuple((int(a), int(b)) for a, b in d["limbs"])
        except (TypeError, ValueError) as err:
            raise LayoutError(f"layout has a malformed field: {err}") from err
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as err:
            raise LayoutError(f"layout metadata is not valid JSON: {err}") from err
        return cls.from_dict(d)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _is_permutation(values: Sequence[int], n: int) -> bool:
    return sorted(values) == list(range(n))


def _validate(layout: Layout) -> None:
    """Raise LayoutError listing every inconsistency: a broken layout must never reach decoding."""
    problems: List[str] = []
    nk, nl, na = len(layout.keypoints), len(layout.limbs), len(layout.aux_channels)
    if len(set(layout.keypoints)) != nk:
        problems.append("keypoint names are not unique")
    for k, (a, b) in enumerate(layout.limbs):
        if not (0 <= a < nk and 0 <= b < nk) or a == b:
            problems.append(f"limb {k} ({a}->{b}) does not join two different keypoints of {nk}")
    blocks = sorted([(layout.limb_start, nl, "limbs"), (layout.keypoint_start, nk, "keypoints")])
    if blocks[0][0] != 0 or blocks[0][0] + blocks[0][1] != blocks[1][0]:
        problems.append(
            f"channel blocks must tile from 0: limbs at {layout.limb_start} (+{nl}), "
            f"keypoints at {layout.keypoint_start} (+{nk})"
        )
    if len(layout.to_coco) != nk:
        problems.append(f"to_coco has {len(layout.to_coco)} entries for {nk} keypoints")
    else:
        slots = [c for c in layout.to_coco if c >= 0]
        if sorted(slots) != list(range(len(COCO_KEYPOINTS))):
            problems.append(f"to_coco is not a bijection onto the {len(COCO_KEYPOINTS)} COCO slots")
        for k, c in enumerate(layout.to_coco):
            if 0 <= c < len(COCO_KEYPOINTS) and COCO_KEYPOINTS[c] != layout.keypoints[k]:
                problems.append(f"keypoint {layout.keypoints[k]!r} maps to COCO {COCO_KEYPOINTS[c]!r}")
    if len(layout.oks_sigmas) != len(COCO_KEYPOINTS) or any(s <= 0 for s in layout.oks_sigmas):
        problems.append(f"oks_sigmas must be {len(COCO_KEYPOINTS)} positive numbers")
    if not _is_permutation(layout.flip_limbs, nl):
        problems.append("flip_limbs is not a permutation of the limbs")
    if not _is_permutation(layout.flip_heat, nk + na):
        problems.append("flip_heat is not a permutation of the keypoint and auxiliary channels")
    if layout.stride < 1:
        problems.append(f"stride must be >= 1, found {layout.stride}")
    if problems:
        raise LayoutError(f"invalid layout {layout.name!r}: " + "; ".join(problems))


def keypoint_flip(keypoints: Sequence[str]) -> Tuple[int, ...]:
    """Permutation that swaps left_* and right_* keypoints (for horizontal flips)."""
    index = {n: i for i, n in enumerate(keypoints)}
    swapped = []
    for n in keypoints:
        if n.startswith("left_"):
            n = "right_" + n[5:]
        elif n.startswith("right_"):
            n = "left_" + n[6:]
        swapped.append(index[n])
    return tuple(swapped)


def require_compatible(model: Layout, expected: Optional[Layout] = None) -> None:
    """Refuse a model whose output layout differs from what the decoder was built for.

    Every field the decoder, the scorer or the flip test reads must match; the name may differ.
    """
    expected = expected or BKPOSE_LAYOUT
    differing = [
        f.name for f in fields(Layout)
        if f.name != "name" and getattr(model, f.name) != getattr(expected, f.name)
    ]  # fmt: skip
    if differing:
        raise LayoutError(
            f"model layout {model.name!r} differs from the decoder's {expected.name!r} in {differing}; "
            "this runtime decodes only the BK-Pose (Simple Pose) 50-channel layout"
        )


BKPOSE_LAYOUT = Layout(
    name="bkpose-simplepose50",
    keypoints=_OPENPOSE18,
    limbs=_SIMPLEPOSE_LIMBS,
    limb_start=0,
    keypoint_start=30,
    aux_channels=("person_mask", "keypoint_max"),
    to_coco=tuple(COCO_KEYPOINTS.index(n) if n in COCO_KEYPOINTS else -1 for n in _OPENPOSE18),
    oks_sigmas=COCO_OKS_SIGMAS,
    flip_limbs=_FLIP_LIMBS,
    flip_heat=_FLIP_KEYPOINTS_AND_AUX,
    stride=4,
)
