// RoiAlign as a plugin: average or max pooling of bilinear samples over
// regions of interest.
#include <string>

#include "builtins.h"
#include "jetrt_plugin.hpp"

namespace jetrt {
namespace builtin {
namespace {

using kernels::RoiAlignParams;

class RoiAlign : public Plugin {
 public:
  std::string mode = "avg";
  int64_t output_height = 1;
  int64_t output_width = 1;
  int64_t sampling_ratio = 0;
  double spatial_scale = 1.0;
  std::string coordinate_transformation_mode = "half_pixel";

  static std::unique_ptr<RoiAlign> create(const Fields &f) {
    auto p = std::make_unique<RoiAlign>();
    p->mode = f.get_string("mode", "avg");
    p->output_height = f.get_int("output_height", 1);
    p->output_width = f.get_int("output_width", 1);
    p->sampling_ratio = f.get_int("sampling_ratio", 0);
    p->spatial_scale = f.get_float("spatial_scale", 1.0);
    p->coordinate_transformation_mode = f.get_string("coordinate_transformation_mode", "half_pixel");
    p->check();
    return p;
  }
  static std::unique_ptr<RoiAlign> deserialize(Reader &in) {
    auto p = std::make_unique<RoiAlign>();
    p->mode = in.str();
    p->output_height = in.i64();
    p->output_width = in.i64();
    p->sampling_ratio = in.i64();
    p->spatial_scale = in.f64();
    p->coordinate_transformation_mode = in.str();
    p->check();
    return p;
  }
  void check() const {
    if (mode != "avg" && mode != "max") throw Error("mode must be 'avg' or 'max', got '" + mode + "'");
    if (coordinate_transformation_mode != "half_pixel" && coordinate_transformation_mode != "output_half_pixel") {
      throw Error("coordinate_transformation_mode must be 'half_pixel' or 'output_half_pixel', got '" +
                  coordinate_transformation_mode + "'");
    }
    if (output_height < 1 || output_width < 1) throw Error("output_height and output_width must be positive");
    if (sampling_ratio < 0) throw Error("sampling_ratio must not be negative");
  }
  void serialize(Writer &out) const override {
    out.str(mode);
    out.i64(output_height);
    out.i64(output_width);
    out.i64(sampling_ratio);
    out.f64(spatial_scale);
    out.str(coordinate_transformation_mode);
  }

  std::vector<OutputDesc> infer(const std::vector<TensorDesc> &in) const override {
    expect_inputs(in, 3, 3);
    expect_input(in, 0, "X", JETRT_DTYPE_F32, 4);
    expect_input(in, 1, "rois", JETRT_DTYPE_F32, 2);
    expect_input(in, 2, "batch_indices", JETRT_DTYPE_I64, 1);
    if (in[1].dims[1] >= 0 && in[1].dims[1] != 4) throw Error("rois must be [num_rois, 4]");
    if (in[1].dims[0] >= 0 && in[2].dims[0] >= 0 && in[1].dims[0] != in[2].dims[0]) {
      throw Error("rois and batch_indices must have the same length");
    }
    return {OutputDesc{JETRT_DTYPE_F32,
                       {Dim::of(in, 1, 0), Dim::of(in, 0, 1), Dim::fixed(output_height), Dim::fixed(output_width)}}};
  }

  RoiAlignParams params(const Args &a) const {
    RoiAlignParams p{};
    p.mode = mode == "max" ? kernels::kRoiMax : kernels::kRoiAvg;
    p.half_pixel = coordinate_transformation_mode == "half_pixel" ? 1 : 0;
    p.out_h = output_height;
    p.out_w = output_width;
    p.sampling_ratio = sampling_ratio;
    p.spatial_scale = static_cast<float>(spatial_scale);
    p.n = a.inputs[0].dim(0);
    p.c = a.inputs[0].dim(1);
    p.h = a.inputs[0].dim(2);
    p.w = a.inputs[0].dim(3);
    p.num_rois = a.inputs[1].dim(0);
    return p;
  }

  void run_cpu(const Args &a) override {
    const RoiAlignParams p = params(a);
    const float *x = a.inputs[0].data<float>();
    const float *rois = a.inputs[1].data<float>();
    const int64_t *batch = a.inputs[2].data<int64_t>();
    float *y = a.outputs[0].data<float>();
    for (int64_t r = 0; r < p.num_rois; ++r) {
      const int64_t b = batch[r];
      if (b < 0 || b >= p.n) {
        throw Error("batch_indices[" + std::to_string(r) + "] = " + std::to_string(b) + " is outside the batch of " +
                    std::to_string(p.n));
      }
      for (int64_t c = 0; c < p.c; ++c) {
        const float *plane = x + (b * p.c + c) * p.h * p.w;
        float *out = y + (r * p.c + c) * p.out_h * p.out_w;
        for (int64_t ph = 0; ph < p.out_h; ++ph) {
          for (int64_t pw = 0; pw < p.out_w; ++pw) {
            out[ph * p.out_w + pw] = kernels::roi_align_one(plane, p, rois + r * 4, ph, pw);
          }
        }
      }
    }
  }

  void run_cuda(const Args &a) override {
#ifdef JETRT_PLUGINS_WITH_CUDA
    if (const char *e = cuda::roi_align(params(a), a.inputs[0].data<float>(), a.inputs[1].data<float>(),
                                        a.inputs[2].data<int64_t>(), a.outputs[0].data<float>(), a.stream)) {
      throw Error(std::string("RoiAlign CUDA kernel: ") + e, JETRT_ERROR_CUDA);
    }
#else
    Plugin::run_cuda(a);
#endif
  }
};

}  // namespace

jetrt_plugin_descriptor roi_align_descriptor() {
  return describe<RoiAlign>("RoiAlign", "1", "ONNX RoiAlign: avg or max pooling of bilinear samples over regions",
                            kWithCuda);
}

}  // namespace builtin
}  // namespace jetrt
