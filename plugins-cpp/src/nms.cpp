// NonMaxSuppression as a plugin. The output's row count depends on the
// data: it is bounded by batches * classes * min(boxes, max per class), and
// the kernel reports the count it selected.
#include <algorithm>
#include <vector>

#include "builtins.h"
#include "jetrt_plugin.hpp"

namespace jetrt {
namespace builtin {
namespace {

using kernels::NmsParams;

class Nms : public Plugin {
 public:
  int64_t center_point_box = 0;
  int64_t max_output_boxes_per_class = 0;
  double iou_threshold = 0.0;
  bool has_score_threshold = false;
  double score_threshold = 0.0;

  static std::unique_ptr<Nms> create(const Fields &f) {
    auto p = std::make_unique<Nms>();
    p->center_point_box = f.get_int("center_point_box", 0);
    p->max_output_boxes_per_class = std::max<int64_t>(f.get_int("max_output_boxes_per_class", 0), 0);
    p->iou_threshold = f.get_float("iou_threshold", 0.0);
    p->has_score_threshold = f.has("score_threshold");
    p->score_threshold = f.get_float("score_threshold", 0.0);
    p->check();
    return p;
  }
  static std::unique_ptr<Nms> deserialize(Reader &in) {
    auto p = std::make_unique<Nms>();
    p->center_point_box = in.i64();
    p->max_output_boxes_per_class = in.i64();
    p->iou_threshold = in.f64();
    p->has_score_threshold = in.u8() != 0;
    p->score_threshold = in.f64();
    p->check();
    return p;
  }
  void check() const {
    if (center_point_box != 0 && center_point_box != 1) throw Error("center_point_box must be 0 or 1");
    if (max_output_boxes_per_class < 0) throw Error("max_output_boxes_per_class must not be negative");
  }
  void serialize(Writer &out) const override {
    out.i64(center_point_box);
    out.i64(max_output_boxes_per_class);
    out.f64(iou_threshold);
    out.u8(has_score_threshold ? 1 : 0);
    out.f64(score_threshold);
  }

  std::vector<OutputDesc> infer(const std::vector<TensorDesc> &in) const override {
    expect_inputs(in, 2, 2);
    expect_input(in, 0, "boxes", JETRT_DTYPE_F32, 3);
    expect_input(in, 1, "scores", JETRT_DTYPE_F32, 3);
    const int64_t b = in[0].dims[0], n = in[0].dims[1], c = in[1].dims[1];
    if (in[0].dims[2] >= 0 && in[0].dims[2] != 4) throw Error("boxes must be [batches, boxes, 4]");
    auto differ = [](int64_t x, int64_t y) { return x >= 0 && y >= 0 && x != y; };
    if (differ(in[1].dims[0], b) || differ(in[1].dims[2], n)) {
      throw Error("scores must be [batches, classes, boxes] for boxes [batches, boxes, 4]");
    }
    int64_t bound = -1;
    if (b >= 0 && n >= 0 && c >= 0) bound = b * c * std::min(n, max_output_boxes_per_class);
    return {OutputDesc{JETRT_DTYPE_I64, {Dim::data_dependent(bound), Dim::fixed(3)}}};
  }

  NmsParams params(const Args &a) const {
    NmsParams p{};
    p.center_point_box = static_cast<int32_t>(center_point_box);
    p.has_score_threshold = has_score_threshold ? 1 : 0;
    p.max_output_boxes_per_class = max_output_boxes_per_class;
    p.iou_threshold = static_cast<float>(iou_threshold);
    p.score_threshold = static_cast<float>(score_threshold);
    p.batches = a.inputs[0].dim(0);
    p.boxes = a.inputs[0].dim(1);
    p.classes = a.inputs[1].dim(1);
    return p;
  }

  uint64_t workspace_size(const std::vector<TensorDesc> &in, jetrt_device device) const override {
    if (!kWithCuda || device != JETRT_DEVICE_CUDA) return 0;
    NmsParams p{};
    p.max_output_boxes_per_class = max_output_boxes_per_class;
    p.batches = in[0].dims[0];
    p.boxes = in[0].dims[1];
    p.classes = in[1].dims[1];
    return cuda::nms_workspace(p);
  }

  void run_cpu(const Args &a) override {
    const NmsParams p = params(a);
    const float *boxes = a.inputs[0].data<float>();
    const float *scores = a.inputs[1].data<float>();
    Tensor out = a.outputs[0];
    int64_t *rows = out.data<int64_t>();
    const int64_t capacity = out.dim(0);
    int64_t count = 0;
    struct Candidate {
      float score;
      int64_t index;
    };
    std::vector<Candidate> cand;
    std::vector<int64_t> selected;
    for (int64_t b = 0; b < p.batches; ++b) {
      const float *bb = boxes + b * p.boxes * 4;
      for (int64_t c = 0; c < p.classes; ++c) {
        const float *s = scores + (b * p.classes + c) * p.boxes;
        cand.clear();
        for (int64_t i = 0; i < p.boxes; ++i) {
          if (kernels::nms_candidate(p, s[i])) cand.push_back(Candidate{s[i], i});
        }
        std::sort(cand.begin(), cand.end(), [](const Candidate &x, const Candidate &y) {
          return kernels::nms_before(x.score, x.index, y.score, y.index);
        });
        selected.clear();
        for (const Candidate &k : cand) {
          if (static_cast<int64_t>(selected.size()) >= p.max_output_boxes_per_class) break;
          bool keep = true;
          for (int64_t j : selected) {
            if (kernels::nms_suppress(bb + j * 4, bb + k.index * 4, p.center_point_box, p.iou_threshold)) {
              keep = false;
              break;
            }
          }
          if (!keep) continue;
          selected.push_back(k.index);
          if (count >= capacity) throw Error("more rows selected than the output holds", JETRT_ERROR_INTERNAL);
          rows[count * 3 + 0] = b;
          rows[count * 3 + 1] = c;
          rows[count * 3 + 2] = k.index;
          ++count;
        }
      }
    }
    out.set_dim(0, count);
  }

  void run_cuda(const Args &a) override {
#ifdef JETRT_PLUGINS_WITH_CUDA
    const NmsParams p = params(a);
    Tensor out = a.outputs[0];
    int64_t count = 0;
    if (const char *e = cuda::nms(p, a.inputs[0].data<float>(), a.inputs[1].data<float>(), out.data<int64_t>(),
                                  &count, a.workspace, a.workspace_size, a.stream)) {
      throw Error(std::string("NonMaxSuppression CUDA kernel: ") + e, JETRT_ERROR_CUDA);
    }
    if (count > out.dim(0)) throw Error("more rows selected than the output holds", JETRT_ERROR_INTERNAL);
    out.set_dim(0, count);
#else
    Plugin::run_cuda(a);
#endif
  }
};

}  // namespace

jetrt_plugin_descriptor nms_descriptor() {
  return describe<Nms>("NonMaxSuppression", "1",
                       "ONNX NonMaxSuppression: per batch and class, greedy selection by score and IoU", kWithCuda);
}

}  // namespace builtin
}  // namespace jetrt
