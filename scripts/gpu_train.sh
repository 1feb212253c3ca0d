#!/usr/bin/env bash
# On a lent GPU (run by the device tool from the repository root, .gpu carried; see gpu_prepare.sh):
# resume the committed run, train with AMP for MINUTES, write the state, the ledger and fp16 best
# weights to $OUT, time the model at batch 1, 2, 4 and 8, then run the cuda tests. Afterwards,
# here: copy $OUT's compact.pth and log.jsonl into the run folder and commit them.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site"
minutes="${MINUTES:-8}"
run="${RUN:-models/run-coco2k-512}"
size="$(python3 -c "import torch; print(torch.load('$run/compact.pth', weights_only=True)['args']['input_size'])")"
epochs="$(python3 -c "import torch; print(torch.load('$run/compact.pth', weights_only=True)['args']['epochs'])")"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv | tee "$OUT/gpu.txt"
mkdir -p /tmp/run && cp "$run/log.jsonl" /tmp/run/
python3 -m train.cli --device cuda --input-size "$size" --epochs "$epochs" --batch 8 --workers 12 \
    --images ".gpu/train-$size/images" --annotations ".gpu/train-$size/annotations.json" \
    --val-images ".gpu/dev538-$size/images" --val-annotations ".gpu/dev538-$size/annotations.json" \
    --out /tmp/run --resume "$run/compact.pth" --eval-every 5 --save-every-min 2 \
    --time-budget-min "$minutes" 2>&1 | grep --line-buffered -v "step/s" | tee "$OUT/train.log"
cp /tmp/run/compact.pth /tmp/run/log.jsonl "$OUT/"
python3 - <<'PY'
import os, torch
from train.state import weights_fp16
best = "/tmp/run/best.pth" if os.path.exists("/tmp/run/best.pth") else "/tmp/run/last.pth"
state = torch.load(best, weights_only=True)
torch.save({"model": weights_fp16(state["model"]), "input_size": state["args"]["input_size"],
            "epoch": state["epoch"], "best_ap": state["best_ap"]}, os.path.join(os.environ["OUT"], "best-fp16.pth"))
PY
python3 -m benchmarks.batch_throughput --device cuda --input-size "$size" --out "$OUT/batch_throughput.json" \
    2>&1 | tee "$OUT/batch_throughput.txt"  # issue 19: batch 1/2/4/8, PyTorch FP16 as the stand-in
python3 -m pip install -q --no-index --find-links .gpu/sdist --target /tmp/site pycuda \
    && python3 -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda_preprocess.py 2>&1 | tee "$OUT/cuda-tests.txt"
