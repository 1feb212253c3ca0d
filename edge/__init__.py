"""BK-Pose edge runtime: multi-person pose estimation on NVIDIA Jetson and any CPU.

`import edge` pulls in numpy only; torch, tensorrt and pycuda are imported lazily by the parts
that need them, so a CPU-only machine can import and run everything on ONNX Runtime.
"""

from edge import numba_cache
from edge.errors import BKPoseError, FrameError, LayoutError
from edge.geometry import Letterbox, letterbox
from edge.layout import BKPOSE_LAYOUT, Layout

numba_cache.configure()  # before any Numba kernel of edge.decode or edge.preprocess is decorated

__version__ = "0.1.0"

__all__ = [
    "BKPOSE_LAYOUT",
    "BKPoseError",
    "FrameError",
    "Layout",
    "LayoutError",
    "Letterbox",
    "__version__",
    "letterbox",
]
