// GridSample as a plugin (2-D: X [N, C, H, W], grid [N, H_out, W_out, 2]).
#include <string>

#include "builtins.h"
#include "jetrt_plugin.hpp"

namespace jetrt {
namespace builtin {
namespace {

using kernels::GridSampleParams;

class GridSample : public Plugin {
 public:
  int32_t mode = kernels::kGridLinear;
  int32_t padding = kernels::kPadZeros;
  bool align_corners = false;

  static std::unique_ptr<GridSample> create(const Fields &f) {
    auto p = std::make_unique<GridSample>();
    // Opset 16 names the modes bilinear/bicubic, opset 20 linear/cubic.
    const std::string mode = f.get_string("mode", "linear");
    if (mode == "linear" || mode == "bilinear") p->mode = kernels::kGridLinear;
    else if (mode == "nearest") p->mode = kernels::kGridNearest;
    else if (mode == "cubic" || mode == "bicubic") p->mode = kernels::kGridCubic;
    else throw Error("mode must be linear, nearest or cubic (or bilinear, bicubic), got '" + mode + "'");
    const std::string padding = f.get_string("padding_mode", "zeros");
    if (padding == "zeros") p->padding = kernels::kPadZeros;
    else if (padding == "border") p->padding = kernels::kPadBorder;
    else if (padding == "reflection") p->padding = kernels::kPadReflection;
    else throw Error("padding_mode must be zeros, border or reflection, got '" + padding + "'");
    const int64_t ac = f.get_int("align_corners", 0);
    if (ac != 0 && ac != 1) throw Error("align_corners must be 0 or 1");
    p->align_corners = ac == 1;
    return p;
  }
  static std::unique_ptr<GridSample> deserialize(Reader &in) {
    auto p = std::make_unique<GridSample>();
    p->mode = static_cast<int32_t>(in.i64());
    p->padding = static_cast<int32_t>(in.i64());
    p->align_corners = in.u8() != 0;
    if (p->mode < kernels::kGridLinear || p->mode > kernels::kGridCubic || p->padding < kernels::kPadZeros ||
        p->padding > kernels::kPadReflection) {
      throw Error("corrupt parameters: unknown mode or padding");
    }
    return p;
  }
  void serialize(Writer &out) const override {
    out.i64(mode);
    out.i64(padding);
    out.u8(align_corners ? 1 : 0);
  }

  std::vector<OutputDesc> infer(const std::vector<TensorDesc> &in) const override {
    expect_inputs(in, 2, 2);
    if (in[0].rank() != 4) {
      throw Error("only 2-D sampling is implemented (X of rank 4); X has rank " + std::to_string(in[0].rank()),
                  JETRT_ERROR_UNSUPPORTED);
    }
    expect_input(in, 0, "X", JETRT_DTYPE_F32, 4);
    expect_input(in, 1, "grid", JETRT_DTYPE_F32, 4);
    if (in[1].dims[3] >= 0 && in[1].dims[3] != 2) throw Error("grid must be [N, H_out, W_out, 2]");
    if (in[0].dims[0] >= 0 && in[1].dims[0] >= 0 && in[0].dims[0] != in[1].dims[0]) {
      throw Error("X and grid must have the same batch size");
    }
    return {OutputDesc{JETRT_DTYPE_F32, {Dim::of(in, 0, 0), Dim::of(in, 0, 1), Dim::of(in, 1, 1), Dim::of(in, 1, 2)}}};
  }

  GridSampleParams params(const Args &a) const {
    GridSampleParams p{};
    p.mode = mode;
    p.padding = padding;
    p.align_corners = align_corners ? 1 : 0;
    p.n = a.inputs[0].dim(0);
    p.c = a.inputs[0].dim(1);
    p.h = a.inputs[0].dim(2);
    p.w = a.inputs[0].dim(3);
    p.out_h = a.inputs[1].dim(1);
    p.out_w = a.inputs[1].dim(2);
    return p;
  }

  void run_cpu(const Args &a) override {
    const GridSampleParams p = params(a);
    const float *x = a.inputs[0].data<float>();
    const float *grid = a.inputs[1].data<float>();
    float *y = a.outputs[0].data<float>();
    const int64_t plane_out = p.out_h * p.out_w;
    for (int64_t n = 0; n < p.n; ++n) {
      for (int64_t i = 0; i < plane_out; ++i) {
        const float *g = grid + (n * plane_out + i) * 2;
        for (int64_t c = 0; c < p.c; ++c) {
          y[(n * p.c + c) * plane_out + i] = kernels::grid_sample_one(x + (n * p.c + c) * p.h * p.w, p, g[0], g[1]);
        }
      }
    }
  }

  void run_cuda(const Args &a) override {
#ifdef JETRT_PLUGINS_WITH_CUDA
    if (const char *e = cuda::grid_sample(params(a), a.inputs[0].data<float>(), a.inputs[1].data<float>(),
                                          a.outputs[0].data<float>(), a.stream)) {
      throw Error(std::string("GridSample CUDA kernel: ") + e, JETRT_ERROR_CUDA);
    }
#else
    Plugin::run_cuda(a);
#endif
  }
};

}  // namespace

jetrt_plugin_descriptor grid_sample_descriptor() {
  return describe<GridSample>("GridSample", "1",
                              "ONNX GridSample, 2-D: linear, nearest, cubic; zeros, border, reflection padding",
                              kWithCuda);
}

}  // namespace builtin
}  // namespace jetrt
