#!/usr/bin/env bash
# After a training stretch: ship a run's checkpoint as the default model with the decoder constants
# measured for it, then measure what models/MODEL_CARD.md reports. Run from the repository root,
# with the training stopped (every step is timed or scored on this machine's CPU).
#     bash scripts/refresh_model.sh CHECKPOINT WEIGHTS [INPUT_SIZE]
#     bash scripts/refresh_model.sh models/run-coco2k-384/best.pth models/bkpose-coco2k-384.pth
# Writes WEIGHTS, engines/<stem>.{fp32,fp16,int8}.onnx and results/{decoder_sweep,model_report,
# cpu_backends}.json; each step prints the table the card holds.
set -euo pipefail
checkpoint="$1"
weights="$2"
size=()
[ -n "${3:-}" ] && size=(--input-size "$3")
py=".venv/bin/python"; [ -x "$py" ] || py="python3"
data="${BKPOSE_DATA:-../shared/data}"
stem="$(basename "$weights" .pth)"
export BKPOSE_CHECKPOINT="$weights"  # the tools' default model is these weights from here on

echo "== ship with the reference decoder constants, then sweep them on dev538"
"$py" -m train.ship "$checkpoint" "$weights" "${size[@]}"
"$py" -m benchmarks.decoder_sweep --json results/decoder_sweep.json
read -r -a measured < <("$py" - <<'PY'
import json

sweep = json.load(open("results/decoder_sweep.json"))
flags = {"--peak-threshold": sweep["recommended_peak_threshold"], "--min-parts": sweep["recommended_min_parts"]}
print(" ".join(f"{flag} {value}" for flag, value in flags.items() if value is not None))
PY
)

echo "== ship with the measured constants: ${measured[*]:-none}"
"$py" -m train.ship "$checkpoint" "$weights" "${size[@]}" "${measured[@]}"

echo "== FP32, FP16 and INT8 through ONNX Runtime on dev538"
"$py" -m benchmarks.model_report --checkpoint "$weights"

echo "== every CPU runtime on the PoseTrack clip, with AP and agreement on dev538"
"$py" -m benchmarks.cpu_backends --model "engines/$stem.fp32.onnx" \
    --source "$data/videos/posetrack18_000001_mpiinew_test.mp4" --frames 150 \
    --annotations "$data/coco_val2017_person_keypoints_dev538.json" --images "$data/images/coco_val2017_dev538"
