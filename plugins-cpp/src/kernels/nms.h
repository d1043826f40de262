// NonMaxSuppression (ONNX opset 10-22): the suppression test between two
// boxes, shared by the CPU and CUDA kernels. Follows the ONNX reference
// implementation (onnx/reference/ops/op_non_max_suppression.py).
#ifndef JETRT_KERNELS_NMS_H
#define JETRT_KERNELS_NMS_H

#include "common.h"

namespace jetrt {
namespace kernels {

struct NmsParams {
  int32_t center_point_box;  // 0: [y1, x1, y2, x2] (corners in any order); 1: [xc, yc, w, h]
  int32_t has_score_threshold;
  int64_t max_output_boxes_per_class;
  float iou_threshold;
  float score_threshold;
  // boxes [batches, boxes, 4]; scores [batches, classes, boxes].
  int64_t batches, classes, boxes;
};

// Whether a score makes a box a candidate. NaN scores never do.
JETRT_HD inline bool nms_candidate(const NmsParams &p, float score) {
  if (score != score) return false;
  return !p.has_score_threshold || score > p.score_threshold;
}

// Whether `a` ranks before `b`: higher score first, then lower box index.
JETRT_HD inline bool nms_before(float sa, int64_t a, float sb, int64_t b) { return sa > sb || (sa == sb && a < b); }

// Whether box b2 is suppressed by the selected box b1.
JETRT_HD inline bool nms_suppress(const float *b1, const float *b2, int32_t center_point_box, float iou_threshold) {
  float x1_min, x1_max, x2_min, x2_max, y1_min, y1_max, y2_min, y2_max;
  if (center_point_box == 0) {
    x1_min = fminf(b1[1], b1[3]);
    x1_max = fmaxf(b1[1], b1[3]);
    x2_min = fminf(b2[1], b2[3]);
    x2_max = fmaxf(b2[1], b2[3]);
    y1_min = fminf(b1[0], b1[2]);
    y1_max = fmaxf(b1[0], b1[2]);
    y2_min = fminf(b2[0], b2[2]);
    y2_max = fmaxf(b2[0], b2[2]);
  } else {
    const float w1 = b1[2] / 2.0f, h1 = b1[3] / 2.0f, w2 = b2[2] / 2.0f, h2 = b2[3] / 2.0f;
    x1_min = b1[0] - w1;
    x1_max = b1[0] + w1;
    x2_min = b2[0] - w2;
    x2_max = b2[0] + w2;
    y1_min = b1[1] - h1;
    y1_max = b1[1] + h1;
    y2_min = b2[1] - h2;
    y2_max = b2[1] + h2;
  }
  const float ix_min = fmaxf(x1_min, x2_min), ix_max = fminf(x1_max, x2_max);
  if (!(ix_max > ix_min)) return false;
  const float iy_min = fmaxf(y1_min, y2_min), iy_max = fminf(y1_max, y2_max);
  if (!(iy_max > iy_min)) return false;
  const float inter = (ix_max - ix_min) * (iy_max - iy_min);
  if (!(inter > 0.0f)) return false;
  const float area1 = (x1_max - x1_min) * (y1_max - y1_min);
  const float area2 = (x2_max - x2_min) * (y2_max - y2_min);
  const float uni = area1 + area2 - inter;
  if (!(area1 > 0.0f) || !(area2 > 0.0f) || !(uni > 0.0f)) return false;
  return inter / uni > iou_threshold;
}

}  // namespace kernels
}  // namespace jetrt

#endif
