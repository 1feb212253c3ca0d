"""GPU side of the runtime: the pycuda device layer and the fused preprocessing kernel.

Nothing here imports pycuda at module import time; `CudaDevice()` does, and raises
`CudaUnavailable` with what to install when it cannot.
"""
