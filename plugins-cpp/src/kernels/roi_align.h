// RoiAlign (ONNX opset 10-22): one output element. Follows the ONNX
// reference implementation (onnx/reference/ops/op_roi_align.py), including
// its "max" mode (the maximum of the weighted corner values of each sample).
#ifndef JETRT_KERNELS_ROI_ALIGN_H
#define JETRT_KERNELS_ROI_ALIGN_H

#include "common.h"

namespace jetrt {
namespace kernels {

enum RoiAlignMode : int32_t { kRoiAvg = 0, kRoiMax = 1 };

// Sampling grids larger than this per axis are cut to it: only absurd
// regions reach it, and it keeps a corrupt roi from stalling a kernel.
const int64_t kRoiMaxGrid = 1 << 12;

struct RoiAlignParams {
  int32_t mode;
  int32_t half_pixel;  // coordinate_transformation_mode == "half_pixel"
  int64_t out_h, out_w;
  int64_t sampling_ratio;
  float spatial_scale;
  int32_t reserved;
  // X is [n, c, h, w]; rois [num_rois, 4]; Y [num_rois, c, out_h, out_w].
  int64_t n, c, h, w, num_rois;
};

JETRT_HD inline int64_t roi_grid(int64_t sampling_ratio, float extent, int64_t bins) {
  if (sampling_ratio > 0) return sampling_ratio < kRoiMaxGrid ? sampling_ratio : kRoiMaxGrid;
  const float g = ceilf(extent / static_cast<float>(bins));
  if (!(g > 0.0f)) return 0;  // also NaN
  return g < static_cast<float>(kRoiMaxGrid) ? static_cast<int64_t>(g) : kRoiMaxGrid;
}

// Output (ph, pw) of one roi (x1, y1, x2, y2 in `roi`) over one channel plane.
JETRT_HD inline float roi_align_one(const float *plane, const RoiAlignParams &p, const float *roi, int64_t ph,
                                    int64_t pw) {
  const int64_t h = p.h, w = p.w;
  const float offset = p.half_pixel ? 0.5f : 0.0f;
  const float start_w = roi[0] * p.spatial_scale - offset;
  const float start_h = roi[1] * p.spatial_scale - offset;
  const float end_w = roi[2] * p.spatial_scale - offset;
  const float end_h = roi[3] * p.spatial_scale - offset;
  float roi_w = end_w - start_w;
  float roi_h = end_h - start_h;
  if (!p.half_pixel) {
    // Malformed rois are forced to 1x1.
    roi_w = fmaxf(roi_w, 1.0f);
    roi_h = fmaxf(roi_h, 1.0f);
  }
  const float bin_h = roi_h / static_cast<float>(p.out_h);
  const float bin_w = roi_w / static_cast<float>(p.out_w);
  const int64_t grid_h = roi_grid(p.sampling_ratio, roi_h, p.out_h);
  const int64_t grid_w = roi_grid(p.sampling_ratio, roi_w, p.out_w);
  const int64_t count = grid_h * grid_w > 1 ? grid_h * grid_w : 1;
  float acc = 0.0f;
  bool first = true;
  for (int64_t iy = 0; iy < grid_h; ++iy) {
    const float yy = start_h + static_cast<float>(ph) * bin_h +
                     (static_cast<float>(iy) + 0.5f) * bin_h / static_cast<float>(grid_h);
    for (int64_t ix = 0; ix < grid_w; ++ix) {
      const float xx = start_w + static_cast<float>(pw) * bin_w +
                       (static_cast<float>(ix) + 0.5f) * bin_w / static_cast<float>(grid_w);
      float y = yy, x = xx;
      int64_t pos1 = 0, pos2 = 0, pos3 = 0, pos4 = 0;
      float w1 = 0.0f, w2 = 0.0f, w3 = 0.0f, w4 = 0.0f;
      // Samples outside the feature map (or NaN) weigh nothing.
      if (y >= -1.0f && y <= static_cast<float>(h) && x >= -1.0f && x <= static_cast<float>(w)) {
        y = fmaxf(y, 0.0f);
        x = fmaxf(x, 0.0f);
        int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x);
        int64_t y_high, x_high;
        if (y_low >= h - 1) {
          y_high = y_low = h - 1;
          y = static_cast<float>(y_low);
        } else {
          y_high = y_low + 1;
        }
        if (x_low >= w - 1) {
          x_high = x_low = w - 1;
          x = static_cast<float>(x_low);
        } else {
          x_high = x_low + 1;
        }
        const float ly = y - static_cast<float>(y_low), lx = x - static_cast<float>(x_low);
        const float hy = 1.0f - ly, hx = 1.0f - lx;
        w1 = hy * hx;
        w2 = hy * lx;
        w3 = ly * hx;
        w4 = ly * lx;
        pos1 = y_low * w + x_low;
        pos2 = y_low * w + x_high;
        pos3 = y_high * w + x_low;
        pos4 = y_high * w + x_high;
      }
      if (p.mode == kRoiAvg) {
        acc += w1 * plane[pos1] + w2 * plane[pos2] + w3 * plane[pos3] + w4 * plane[pos4];
      } else {
        const float v = fmaxf(fmaxf(w1 * plane[pos1], w2 * plane[pos2]), fmaxf(w3 * plane[pos3], w4 * plane[pos4]));
        acc = first ? v : fmaxf(acc, v);
        first = false;
      }
    }
  }
  return p.mode == kRoiAvg ? acc / static_cast<float>(count) : acc;
}

}  // namespace kernels
}  // namespace jetrt

#endif
