#!/usr/bin/env bash
# Here, before a GPU call: pack the training and dev538 photos at the run's input size and fetch the
# wheels the device lacks, into .gpu/ (git-ignored, carried by the call; under 64 MiB together).
#   bash scripts/gpu_prepare.sh            then the device run: see scripts/gpu_train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
run="${RUN:-models/run-coco2k-512}"
size="${SIZE:-$(.venv/bin/python -c "import torch; print(torch.load('$run/compact.pth', weights_only=True)['args']['input_size'])")}"
# measured on 100 training photos: 5.1 MB at 512 and quality 90, 3.1 MB at quality 75 (the shared
# photos' own quality): about 63 MB for all 2022 at 512 q75, so a 512 run uses 75
quality="${QUALITY:-$([ "$size" -gt 384 ] && echo 75 || echo 90)}"
data=../shared/data
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
.venv/bin/python -m train.pack --images "$data/train/coco_val2017_extra" --size "$size" --out ".gpu/train-$size" \
    --quality "$quality" \
    --annotations "$data/train/coco_val2017_extra_person_keypoints.json"
.venv/bin/python -m train.pack --images "$data/images/coco_val2017_dev538" --size "$size" --out ".gpu/dev538-$size" \
    --quality "$quality" \
    --annotations "$data/coco_val2017_person_keypoints_dev538.json"
# pycocotools for the periodic evaluation (a cp312 manylinux wheel); pycuda and its pure-Python
# needs for the cuda tests (pycuda is an sdist: it compiles there against the local CUDA)
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl pycocotools
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/sdist pytools platformdirs siphash24 mako
.venv/bin/pip download -q --no-deps --no-binary=:all: -d .gpu/sdist pycuda
du -sh .gpu
mib="$(du -sm .gpu | cut -f1)"
[ "$mib" -le 64 ] || echo "warning: .gpu is $mib MiB, more than one device call carries (64 MiB);" \
    "carry the training pack in a first call to the warm machine (it keeps /tmp), the rest in a second" >&2
