"""One exception hierarchy for users of the runtime.

`BKPoseError` and its subclasses are raised for problems the user can fix (a bad model file, a
layout the decoder cannot use, a frame of the wrong format). Internal bugs raise the built-in
exceptions. Messages say what was expected, what was found and what to do.
"""


class BKPoseError(Exception):
    """Base class of every error the runtime raises for bad input or configuration."""


class LayoutError(BKPoseError, ValueError):
    """A model's output layout is missing, malformed or not usable by this runtime."""


class FrameError(BKPoseError, ValueError):
    """A frame has the wrong type, dtype, shape or channel count."""


class ModelError(BKPoseError, ValueError):
    """A model file (checkpoint, ONNX, engine) is unreadable, truncated or has bad metadata."""
