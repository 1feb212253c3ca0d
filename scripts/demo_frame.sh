#!/usr/bin/env bash
# docs/demo.jpg: one frame of the PoseTrack clip with the skeletons that `bkpose-run --video` drew,
# using the default (shipped) model. Run from the repository root.
#     bash scripts/demo_frame.sh [VIDEO] [FRAME_INDEX] [OUT]
set -euo pipefail
video="${1:-../shared/data/videos/posetrack18_000001_mpiinew_test.mp4}"
index="${2:-2}"
out="${3:-docs/demo.jpg}"
bin=".venv/bin"; [ -x "$bin/bkpose-run" ] || bin="$(dirname "$(command -v bkpose-run)")"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$bin/bkpose-run" "$video" --video "$tmp/drawn.mp4" --jsonl "$tmp/poses.jsonl"
"$bin/python" - "$tmp/drawn.mp4" "$index" "$out" <<'PY'
import sys

import cv2

drawn, index, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
capture = cv2.VideoCapture(drawn)
for _ in range(index + 1):
    ok, frame = capture.read()
    if not ok:
        sys.exit(f"{drawn} has fewer than {index + 1} frames")
height, width = frame.shape[:2]
frame = cv2.resize(frame, (960, round(height * 960 / width)), interpolation=cv2.INTER_AREA)
cv2.imwrite(out, frame, [cv2.IMWRITE_JPEG_QUALITY, 82])
print(f"wrote {out} (frame {index} of {drawn})")
PY
sed -n "$((index + 1))p" "$tmp/poses.jsonl" | "$bin/python" -c "import json,sys; r=json.load(sys.stdin); print(len(r['people']), 'people in that frame')"
