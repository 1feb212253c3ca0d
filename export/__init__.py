"""Export stage: BK-Pose in PyTorch to ONNX (FP32, FP16, INT8 Q/DQ) and TensorRT engine builds.

Only this package and `train` import torch; `edge` never does.
"""
