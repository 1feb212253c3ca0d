#!/usr/bin/env bash
# Here, before a GPU call: pack the training and dev538 photos at the run's input size and fetch the
# wheels the device lacks, into .gpu/ (git-ignored, carried by the call; under 64 MiB together).
#   bash scripts/gpu_prepare.sh            then the device run: see scripts/gpu_train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size="${SIZE:-256}"
data=../shared/data
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
.venv/bin/python -m train.pack --images "$data/train/coco_val2017_extra" --size "$size" --out ".gpu/train-$size" \
    --annotations "$data/train/coco_val2017_extra_person_keypoints.json"
.venv/bin/python -m train.pack --images "$data/images/coco_val2017_dev538" --size "$size" --out ".gpu/dev538-$size" \
    --annotations "$data/coco_val2017_person_keypoints_dev538.json"
# pycocotools for the periodic evaluation (a cp312 manylinux wheel); pycuda and its pure-Python
# needs for the cuda tests (pycuda is an sdist: it compiles there against the local CUDA)
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl pycocotools
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/sdist pytools platformdirs siphash24 mako
.venv/bin/pip download -q --no-deps --no-binary=:all: -d .gpu/sdist pycuda
du -sh .gpu
