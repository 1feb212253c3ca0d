"""The pipeline's stage vocabulary: every per-frame time that a backend, the decoder or the runner
records is keyed by one of these names, in milliseconds, and `bkpose-bench` reports exactly these.

A stage a new component adds (a tracker, a batcher) gets its name here, its meaning in MEANING,
and so its row in the bench table and in `--compare`.
"""

from __future__ import annotations

READ = "read"  # taking the next frame from the source (decoding included)
PREPROCESS = "preprocess"  # letterbox + normalise, host wall time
INFER = "infer"  # the model call, host wall time
PREPROCESS_GPU = "preprocess_gpu"  # CUDA events: frame upload + letterbox kernel
INFER_GPU = "infer_gpu"  # CUDA events: engine execution
DOWNLOAD_GPU = "download_gpu"  # CUDA events: heatmaps device to host
PEAKS = "peaks"  # decoder: peak finding
GROUPING = "grouping"  # decoder: limb scoring and person assembly
DECODE = "decode"  # the decode stage's wall time (peaks + grouping + overhead)
TRACK = "track"  # per-stream tracking after decoding (a ResultStage)
LATENCY = "latency"  # capture timestamp to result, in the pipelined runner
TOTAL = "total"  # the bench's per-frame total: read to poses (sequential) or LATENCY (pipelined)

MEANING = {
    READ: "next frame from the source (video and image decoding included; ~0 for generated frames)",
    PREPROCESS: "letterbox + normalise (CPU; OpenVINO: the uint8 letterbox only, it normalises in its "
    "graph; on TensorRT the CUDA kernel incl. frame upload)",
    INFER: "host wall time of the model call (ONNX Runtime / OpenVINO run / TensorRT enqueue + copy back)",
    PREPROCESS_GPU: "CUDA events: frame upload + letterbox kernel (TensorRT)",
    INFER_GPU: "CUDA events: engine execution (TensorRT)",
    DOWNLOAD_GPU: "CUDA events: device-to-host heatmap copy (TensorRT)",
    PEAKS: "peak finding (NMS, refinement) on the 18 keypoint maps",
    GROUPING: "limb scoring, matching and person assembly",
    TRACK: "per-stream tracking of the decoded people (identity across frames)",
    TOTAL: "sequential: read start to poses; pipelined: capture to result (includes queueing)",
}
REPORTED = tuple(MEANING)  # the bench table's rows, in order
