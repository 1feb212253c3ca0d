// Fused letterbox preprocessing: uint8 BGR frame (any size, any row pitch) -> network input.
//
// One thread per output pixel (x, y) of one image in the batch; it writes all 3 planes of that
// pixel, so the output is fully written in one launch with no intermediate buffer. The math is
// the CPU reference's (edge/preprocess.py), operation for operation in float32 with explicit
// round-to-nearest intrinsics (no fused multiply-add), so both agree to the last bit or so:
//
//   sample position  p = (i + 0.5) * inv_scale - 0.5    (pixel centres at integers)
//   clamping         p < 0 -> index 0, weight 0; index >= size-1 -> last index, weight 0
//   bilinear         top = a + fx * (b - a); value = top + fy * (bottom - top)
//   normalise        out[c] = value(src channel source[c]) * mul[c] + add[c]; padding = pad[c]

#include <cuda_fp16.h>

struct Norm {
    int source[3];
    float mul[3];
    float add[3];
    float pad[3];
};

__device__ __forceinline__ void sample_axis(int i, float inv_scale, int size, int* first, int* second, float* weight)
{
    float p = __fadd_rn(__fmul_rn(__fadd_rn((float)i, 0.5f), inv_scale), -0.5f);
    int f = (int)floorf(p);
    float w = __fadd_rn(p, -(float)f);
    if (f < 0) { f = 0; w = 0.0f; }
    if (f >= size - 1) { f = size - 1; w = 0.0f; }
    *first = f;
    *second = min(f + 1, size - 1);
    *weight = w;
}

__device__ __forceinline__ float lerp_rn(float a, float b, float t)
{
    return __fadd_rn(a, __fmul_rn(t, __fadd_rn(b, -a)));
}

template <typename T>
__device__ __forceinline__ T to_output(float v);

template <>
__device__ __forceinline__ float to_output<float>(float v) { return v; }

template <>
__device__ __forceinline__ __half to_output<__half>(float v) { return __float2half_rn(v); }

template <typename T>
__device__ void letterbox(
    const unsigned char* __restrict__ src, int src_w, int src_h, int src_pitch,
    T* __restrict__ dst, int dst_w, int dst_h,
    int resized_w, int resized_h, int pad_left, int pad_top,
    float inv_scale_x, float inv_scale_y, Norm norm)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    const size_t plane = (size_t)dst_w * dst_h;
    const size_t at = (size_t)y * dst_w + x;
    const int rx = x - pad_left;
    const int ry = y - pad_top;
    if (rx < 0 || rx >= resized_w || ry < 0 || ry >= resized_h) {
        for (int c = 0; c < 3; ++c) dst[c * plane + at] = to_output<T>(norm.pad[c]);
        return;
    }
    int x0, x1, y0, y1;
    float fx, fy;
    sample_axis(rx, inv_scale_x, src_w, &x0, &x1, &fx);
    sample_axis(ry, inv_scale_y, src_h, &y0, &y1, &fy);
    const unsigned char* row0 = src + (size_t)y0 * src_pitch;
    const unsigned char* row1 = src + (size_t)y1 * src_pitch;
    for (int c = 0; c < 3; ++c) {
        const int s = norm.source[c];
        const float top = lerp_rn((float)row0[x0 * 3 + s], (float)row0[x1 * 3 + s], fx);
        const float bottom = lerp_rn((float)row1[x0 * 3 + s], (float)row1[x1 * 3 + s], fx);
        const float value = lerp_rn(top, bottom, fy);
        dst[c * plane + at] = to_output<T>(__fadd_rn(__fmul_rn(value, norm.mul[c]), norm.add[c]));
    }
}

extern "C" __global__ void letterbox_f32(
    const unsigned char* __restrict__ src, int src_w, int src_h, int src_pitch,
    float* __restrict__ dst, int dst_w, int dst_h,
    int resized_w, int resized_h, int pad_left, int pad_top,
    float inv_scale_x, float inv_scale_y, Norm norm)
{
    letterbox<float>(src, src_w, src_h, src_pitch, dst, dst_w, dst_h, resized_w, resized_h,
                     pad_left, pad_top, inv_scale_x, inv_scale_y, norm);
}

extern "C" __global__ void letterbox_f16(
    const unsigned char* __restrict__ src, int src_w, int src_h, int src_pitch,
    __half* __restrict__ dst, int dst_w, int dst_h,
    int resized_w, int resized_h, int pad_left, int pad_top,
    float inv_scale_x, float inv_scale_y, Norm norm)
{
    letterbox<__half>(src, src_w, src_h, src_pitch, dst, dst_w, dst_h, resized_w, resized_h,
                      pad_left, pad_top, inv_scale_x, inv_scale_y, norm);
}
