// An example user plugin: y = c0 + c1*x + c2*x^2 + ... elementwise, for a
// node of a custom ONNX domain:
//
//   onnx.helper.make_node("Polynomial", ["x"], ["y"], domain="com.example",
//                         coefficients=[0.5, -1.0, 2.0])
//
// Built by jetrt_add_plugin() (see CMakeLists.txt beside it) into
// libjetrt_example_plugin.so, and used with
//   engine-builder build model.onnx -o model.engine --plugin libjetrt_example_plugin.so
#include <memory>
#include <vector>

#include "jetrt_plugin.hpp"

namespace {

class Polynomial : public jetrt::Plugin {
 public:
  std::vector<double> coefficients;

  // Build time: from the node's attributes.
  static std::unique_ptr<Polynomial> create(const jetrt::Fields &f) {
    auto p = std::make_unique<Polynomial>();
    p->coefficients = f.get_floats("coefficients");
    if (p->coefficients.empty()) throw jetrt::Error("the 'coefficients' attribute (a list of floats) is required");
    return p;
  }

  // Into the engine file, and back when the engine is loaded.
  void serialize(jetrt::Writer &out) const override {
    out.i64(static_cast<int64_t>(coefficients.size()));
    for (double c : coefficients) out.f64(c);
  }
  static std::unique_ptr<Polynomial> deserialize(jetrt::Reader &in) {
    auto p = std::make_unique<Polynomial>();
    const int64_t n = in.i64();
    if (n < 1 || n > 1024) throw jetrt::Error("corrupt parameters: coefficient count");
    for (int64_t i = 0; i < n; ++i) p->coefficients.push_back(in.f64());
    return p;
  }

  // One float32 input; the output has its type and dims.
  std::vector<jetrt::OutputDesc> infer(const std::vector<jetrt::TensorDesc> &in) const override {
    jetrt::expect_inputs(in, 1, 1);
    jetrt::expect_input(in, 0, "x", JETRT_DTYPE_F32, -1);
    jetrt::OutputDesc out{JETRT_DTYPE_F32, {}};
    for (int d = 0; d < in[0].rank(); ++d) out.dims.push_back(jetrt::Dim::of(in, 0, d));
    return {out};
  }

  void run_cpu(const jetrt::Args &a) override {
    const float *x = a.inputs[0].data<float>();
    float *y = a.outputs[0].data<float>();
    const int64_t n = a.inputs[0].numel();
    for (int64_t i = 0; i < n; ++i) {
      // Horner's rule, highest power first.
      double acc = 0.0;
      for (size_t k = coefficients.size(); k-- > 0;) acc = acc * x[i] + coefficients[k];
      y[i] = static_cast<float>(acc);
    }
  }
};

const jetrt_plugin_descriptor kPolynomial =
    jetrt::describe<Polynomial>("Polynomial", "1", "example: a polynomial of x, elementwise");
const jetrt_plugin_descriptor *const kPlugins[] = {&kPolynomial};

}  // namespace

JETRT_PLUGIN_LIBRARY(kPlugins)
