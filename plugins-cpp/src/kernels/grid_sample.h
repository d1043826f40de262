// GridSample (ONNX opset 16-22, 2-D): one output element. Follows the ONNX
// reference implementation (onnx/reference/ops/op_grid_sample.py), which
// follows PyTorch's grid_sampler_2d.
#ifndef JETRT_KERNELS_GRID_SAMPLE_H
#define JETRT_KERNELS_GRID_SAMPLE_H

#include "common.h"

namespace jetrt {
namespace kernels {

enum GridSampleMode : int32_t { kGridLinear = 0, kGridNearest = 1, kGridCubic = 2 };
enum GridSamplePadding : int32_t { kPadZeros = 0, kPadBorder = 1, kPadReflection = 2 };

struct GridSampleParams {
  int32_t mode;
  int32_t padding;
  int32_t align_corners;
  int32_t reserved;
  // X is [n, c, h, w]; grid [n, out_h, out_w, 2]; Y [n, c, out_h, out_w].
  int64_t n, c, h, w, out_h, out_w;
};

// A normalized coordinate in [-1, 1] to a pixel coordinate.
JETRT_HD inline float gs_denormalize(float v, int64_t len, bool align_corners) {
  return align_corners ? (v + 1.0f) / 2.0f * static_cast<float>(len - 1)
                       : ((v + 1.0f) * static_cast<float>(len) - 1.0f) / 2.0f;
}

// Reflects x by the nearer border until it lies in [lo, hi].
JETRT_HD inline float gs_reflect(float x, float lo, float hi) {
  const float range = hi - lo;
  if (!(range > 0.0f)) return lo;
  if (x < lo) {
    const float dx = lo - x;
    const float n = floorf(dx / range);
    const float r = dx - n * range;
    return fmodf(n, 2.0f) == 0.0f ? lo + r : hi - r;
  }
  if (x > hi) {
    const float dx = x - hi;
    const float n = floorf(dx / range);
    const float r = dx - n * range;
    return fmodf(n, 2.0f) == 0.0f ? hi - r : lo + r;
  }
  return x;
}

// The value at integer position (y, x) under the padding mode.
JETRT_HD inline float gs_pixel(const float *plane, int64_t h, int64_t w, int64_t y, int64_t x, int32_t padding,
                               float lo_y, float hi_y, float lo_x, float hi_x) {
  if (padding == kPadZeros) {
    if (y < 0 || y >= h || x < 0 || x >= w) return 0.0f;
  } else if (padding == kPadBorder) {
    y = clamp_index(y, 0, h - 1);
    x = clamp_index(x, 0, w - 1);
  } else {
    y = clamp_index(trunc_index(gs_reflect(static_cast<float>(y), lo_y, hi_y)), 0, h - 1);
    x = clamp_index(trunc_index(gs_reflect(static_cast<float>(x), lo_x, hi_x)), 0, w - 1);
  }
  return plane[y * w + x];
}

// Keys' cubic convolution coefficients (alpha = -0.75) for fraction t.
JETRT_HD inline void gs_cubic_coeffs(float t, float c[4]) {
  const float a = -0.75f;
  const float x = fabsf(t);
  c[0] = ((a * (x + 1.0f) - 5.0f * a) * (x + 1.0f) + 8.0f * a) * (x + 1.0f) - 4.0f * a;
  c[1] = ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  c[2] = ((a + 2.0f) * (1.0f - x) - (a + 3.0f)) * (1.0f - x) * (1.0f - x) + 1.0f;
  c[3] = ((a * (2.0f - x) - 5.0f * a) * (2.0f - x) + 8.0f * a) * (2.0f - x) - 4.0f * a;
}

// Samples one channel plane at the normalized grid point (gx, gy).
// Non-finite grid coordinates sample as 0.
JETRT_HD inline float grid_sample_one(const float *plane, const GridSampleParams &p, float gx, float gy) {
  if (!is_finite(gx) || !is_finite(gy)) return 0.0f;
  const bool ac = p.align_corners != 0;
  const int64_t h = p.h, w = p.w;
  float y = gs_denormalize(gy, h, ac);
  float x = gs_denormalize(gx, w, ac);
  const float lo_y = ac ? 0.0f : -0.5f, hi_y = ac ? static_cast<float>(h) - 1.0f : static_cast<float>(h) - 0.5f;
  const float lo_x = ac ? 0.0f : -0.5f, hi_x = ac ? static_cast<float>(w) - 1.0f : static_cast<float>(w) - 0.5f;
  if (p.mode == kGridNearest) {
    // PyTorch rounds half to even.
    y = rintf(y);
    x = rintf(x);
  }
  if (y < lo_y || y > hi_y) {
    if (p.padding == kPadBorder) y = fminf(fmaxf(y, 0.0f), static_cast<float>(h - 1));
    else if (p.padding == kPadReflection) y = gs_reflect(y, lo_y, hi_y);
  }
  if (x < lo_x || x > hi_x) {
    if (p.padding == kPadBorder) x = fminf(fmaxf(x, 0.0f), static_cast<float>(w - 1));
    else if (p.padding == kPadReflection) x = gs_reflect(x, lo_x, hi_x);
  }
  if (p.mode == kGridNearest) {
    return gs_pixel(plane, h, w, trunc_index(y), trunc_index(x), p.padding, lo_y, hi_y, lo_x, hi_x);
  }
  const float fy = floorf(y), fx = floorf(x);
  const int64_t y0 = trunc_index(fy), x0 = trunc_index(fx);
  const float ty = y - fy, tx = x - fx;
  if (p.mode == kGridLinear) {
    // Along x within each row first, then along y, as the reference does.
    float rows[2];
    for (int i = 0; i < 2; ++i) {
      const float v0 = gs_pixel(plane, h, w, y0 + i, x0, p.padding, lo_y, hi_y, lo_x, hi_x);
      const float v1 = gs_pixel(plane, h, w, y0 + i, x0 + 1, p.padding, lo_y, hi_y, lo_x, hi_x);
      rows[i] = (1.0f - tx) * v0 + tx * v1;
    }
    return (1.0f - ty) * rows[0] + ty * rows[1];
  }
  float cx[4], cy[4], rows[4];
  gs_cubic_coeffs(tx, cx);
  gs_cubic_coeffs(ty, cy);
  for (int i = 0; i < 4; ++i) {
    float acc = 0.0f;
    for (int j = 0; j < 4; ++j) {
      acc += cx[j] * gs_pixel(plane, h, w, y0 - 1 + i, x0 - 1 + j, p.padding, lo_y, hi_y, lo_x, hi_x);
    }
    rows[i] = acc;
  }
  float out = 0.0f;
  for (int i = 0; i < 4; ++i) out += cy[i] * rows[i];
  return out;
}

}  // namespace kernels
}  // namespace jetrt

#endif
