// jetrt_check_plugins: checks a plugin library's kernels on random inputs.
//
//   jetrt_check_plugins [--require-cuda] path/to/libjetrt_plugins.so
//
// For every built-in plugin and a set of parameter cases, it runs the CPU
// kernel of an instance created from fields and of one re-created from its
// serialized bytes (they must agree exactly), and, where the library has a
// CUDA kernel and this checker was built with CUDA, the CUDA kernel: it
// prints the largest absolute and relative (to max|cpu|) difference from the
// CPU kernel per case. NonMaxSuppression must select exactly the same rows.
// The library is loaded through the C ABI, as jetrt loads it.
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "jetrt_plugin.h"

#ifdef JETRT_CHECK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace {

struct Field {
  std::string name;
  int32_t type;
  int64_t i = 0;
  double f = 0.0;
  std::string s;
};

Field int_field(const char *n, int64_t v) { return Field{n, JETRT_FIELD_INT, v, 0.0, ""}; }
Field float_field(const char *n, double v) { return Field{n, JETRT_FIELD_FLOAT, 0, v, ""}; }
Field string_field(const char *n, const std::string &v) { return Field{n, JETRT_FIELD_STRING, 0, 0.0, v}; }

struct Host {
  jetrt_dtype dtype = JETRT_DTYPE_F32;
  std::vector<int64_t> dims;
  std::vector<float> f;    // float32 data
  std::vector<int64_t> i;  // int64 data
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  size_t bytes() const { return static_cast<size_t>(numel()) * (dtype == JETRT_DTYPE_F32 ? 4 : 8); }
  void *data() { return dtype == JETRT_DTYPE_F32 ? static_cast<void *>(f.data()) : static_cast<void *>(i.data()); }
  void resize() {
    if (dtype == JETRT_DTYPE_F32) f.assign(static_cast<size_t>(numel()), 0.0f);
    else i.assign(static_cast<size_t>(numel()), 0);
  }
};

struct Case {
  std::string plugin;
  std::string label;
  std::vector<Field> fields;
  std::vector<Host> inputs;
  bool exact = false;  // integer outputs: equal, or fail
};

struct Failure {
  std::string what;
};

void check(jetrt_status s, const jetrt_error &e, const char *what) {
  if (s != JETRT_OK) throw Failure{std::string(what) + ": " + e.message};
}

// An instance of a plugin, destroyed on scope exit.
struct Instance {
  const jetrt_plugin_descriptor *d;
  void *p = nullptr;
  Instance(const jetrt_plugin_descriptor *desc, const std::vector<Field> &fields) : d(desc) {
    std::vector<jetrt_field> raw(fields.size());
    for (size_t k = 0; k < fields.size(); ++k) {
      std::memset(&raw[k], 0, sizeof raw[k]);
      raw[k].name = fields[k].name.c_str();
      raw[k].type = fields[k].type;
      raw[k].count = fields[k].type == JETRT_FIELD_STRING ? static_cast<int64_t>(fields[k].s.size()) : 1;
      raw[k].i = fields[k].i;
      raw[k].f = fields[k].f;
      raw[k].s = fields[k].s.c_str();
    }
    jetrt_error e{};
    check(d->create(raw.data(), static_cast<int32_t>(raw.size()), &p, &e), e, "create");
  }
  Instance(const jetrt_plugin_descriptor *desc, const std::vector<uint8_t> &bytes) : d(desc) {
    jetrt_error e{};
    check(d->deserialize(bytes.data(), bytes.size(), &p, &e), e, "deserialize");
  }
  ~Instance() { d->destroy(p); }
  Instance(const Instance &) = delete;
  Instance &operator=(const Instance &) = delete;

  std::vector<uint8_t> serialize() const {
    jetrt_error e{};
    uint64_t size = 0;
    jetrt_status s = d->serialize(p, nullptr, 0, &size, &e);
    if (s != JETRT_OK && s != JETRT_ERROR_BUFFER_TOO_SMALL) check(s, e, "serialize (size)");
    std::vector<uint8_t> bytes(size);
    check(d->serialize(p, bytes.data(), bytes.size(), &size, &e), e, "serialize");
    bytes.resize(size);
    return bytes;
  }

  // Output tensors allocated at their (upper-bound) dims, and scratch size.
  std::vector<Host> outputs(std::vector<Host> &inputs, jetrt_device device, uint64_t *workspace) const {
    std::vector<jetrt_tensor_desc> descs(inputs.size());
    for (size_t k = 0; k < inputs.size(); ++k) {
      std::memset(&descs[k], 0, sizeof descs[k]);
      descs[k].struct_size = sizeof(jetrt_tensor_desc);
      descs[k].dtype = inputs[k].dtype;
      descs[k].rank = static_cast<int32_t>(inputs[k].dims.size());
      for (size_t a = 0; a < inputs[k].dims.size(); ++a) descs[k].dims[a] = inputs[k].dims[a];
    }
    jetrt_output_desc od[4];
    std::memset(od, 0, sizeof od);
    for (auto &o : od) {
      o.struct_size = sizeof(jetrt_output_desc);
      for (int a = 0; a < JETRT_MAX_RANK; ++a) o.same_as_input[a] = -1;
    }
    int32_t n = 0;
    jetrt_error e{};
    check(d->infer_outputs(p, descs.data(), static_cast<int32_t>(descs.size()), od, 4, &n, &e), e, "infer_outputs");
    *workspace = 0;
    if (d->workspace_size) {
      check(d->workspace_size(p, descs.data(), static_cast<int32_t>(descs.size()), device, workspace, &e), e,
            "workspace_size");
    }
    std::vector<Host> out(static_cast<size_t>(n));
    for (int32_t k = 0; k < n; ++k) {
      out[k].dtype = od[k].dtype;
      for (int32_t a = 0; a < od[k].rank; ++a) {
        const int64_t dim = od[k].dims[a] == JETRT_DIM_DATA_DEPENDENT ? od[k].bounds[a] : od[k].dims[a];
        if (dim < 0) throw Failure{"an output dim is unknown with every input dim known"};
        out[k].dims.push_back(dim);
      }
      out[k].resize();
    }
    return out;
  }
};

jetrt_tensor raw_tensor(Host &h, void *data) {
  jetrt_tensor t;
  std::memset(&t, 0, sizeof t);
  t.struct_size = sizeof(jetrt_tensor);
  t.dtype = h.dtype;
  t.rank = static_cast<int32_t>(h.dims.size());
  for (size_t a = 0; a < h.dims.size(); ++a) t.dims[a] = h.dims[a];
  t.data = data;
  return t;
}

// Takes the dims a kernel reported, keeping the data it packed for them.
void take_dims(Host &h, const jetrt_tensor &t) {
  for (size_t a = 0; a < h.dims.size(); ++a) {
    if (t.dims[a] < 0 || t.dims[a] > h.dims[a]) throw Failure{"a kernel reported dims beyond the allocation"};
    h.dims[a] = t.dims[a];
  }
  if (h.dtype == JETRT_DTYPE_F32) h.f.resize(static_cast<size_t>(h.numel()));
  else h.i.resize(static_cast<size_t>(h.numel()));
}

std::vector<Host> run_cpu(const Instance &inst, std::vector<Host> inputs) {
  uint64_t ws = 0;
  std::vector<Host> outs = inst.outputs(inputs, JETRT_DEVICE_CPU, &ws);
  std::vector<uint8_t> workspace(ws);
  std::vector<jetrt_tensor> in, out;
  for (Host &h : inputs) in.push_back(raw_tensor(h, h.data()));
  for (Host &h : outs) out.push_back(raw_tensor(h, h.data()));
  jetrt_error e{};
  check(inst.d->run_cpu(inst.p, in.data(), static_cast<int32_t>(in.size()), out.data(),
                        static_cast<int32_t>(out.size()), workspace.data(), ws, &e),
        e, "run_cpu");
  for (size_t k = 0; k < outs.size(); ++k) take_dims(outs[k], out[k]);
  return outs;
}

#ifdef JETRT_CHECK_WITH_CUDA
void cuda_check(cudaError_t err, const char *what) {
  if (err != cudaSuccess) throw Failure{std::string(what) + ": " + cudaGetErrorString(err)};
}

std::vector<Host> run_cuda(const Instance &inst, std::vector<Host> inputs) {
  uint64_t ws = 0;
  std::vector<Host> outs = inst.outputs(inputs, JETRT_DEVICE_CUDA, &ws);
  std::vector<void *> buffers;
  auto device = [&](size_t bytes) {
    void *p = nullptr;
    cuda_check(cudaMalloc(&p, bytes > 0 ? bytes : 1), "cudaMalloc");
    buffers.push_back(p);
    return p;
  };
  cudaStream_t stream = nullptr;
  cuda_check(cudaStreamCreate(&stream), "cudaStreamCreate");
  std::vector<jetrt_tensor> in, out;
  try {
    for (Host &h : inputs) {
      void *p = device(h.bytes());
      cuda_check(cudaMemcpy(p, h.data(), h.bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
      in.push_back(raw_tensor(h, p));
    }
    for (Host &h : outs) {
      void *p = device(h.bytes());
      // A recognizable fill, so that elements a kernel never writes show.
      cuda_check(cudaMemset(p, 0xff, h.bytes()), "cudaMemset");
      out.push_back(raw_tensor(h, p));
    }
    void *workspace = ws > 0 ? device(ws) : nullptr;
    jetrt_error e{};
    check(inst.d->run_cuda(inst.p, in.data(), static_cast<int32_t>(in.size()), out.data(),
                           static_cast<int32_t>(out.size()), workspace, ws, stream, &e),
          e, "run_cuda");
    cuda_check(cudaStreamSynchronize(stream), "kernel");
    for (size_t k = 0; k < outs.size(); ++k) {
      take_dims(outs[k], out[k]);
      cuda_check(cudaMemcpy(outs[k].data(), out[k].data, outs[k].bytes(), cudaMemcpyDeviceToHost),
                 "cudaMemcpy to host");
    }
  } catch (...) {
    for (void *p : buffers) cudaFree(p);
    cudaStreamDestroy(stream);
    throw;
  }
  for (void *p : buffers) cudaFree(p);
  cudaStreamDestroy(stream);
  return outs;
}

bool have_cuda_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
#endif

struct Diff {
  double max_abs = 0.0;
  double max_ref = 0.0;
  int64_t mismatches = 0;  // integer elements that differ, or a dims mismatch
};

Diff compare(const std::vector<Host> &got, const std::vector<Host> &ref) {
  Diff d;
  if (got.size() != ref.size()) {
    d.mismatches = 1;
    return d;
  }
  for (size_t k = 0; k < got.size(); ++k) {
    if (got[k].dims != ref[k].dims) {
      d.mismatches += 1;
      continue;
    }
    if (ref[k].dtype == JETRT_DTYPE_F32) {
      for (size_t j = 0; j < ref[k].f.size(); ++j) {
        const double r = ref[k].f[j], g = got[k].f[j];
        d.max_ref = std::fmax(d.max_ref, std::fabs(r));
        const double diff = std::fabs(g - r);
        // NaN where the reference is not (or the reverse) counts as a mismatch.
        if (std::isnan(diff) && !(std::isnan(r) && std::isnan(g))) d.mismatches += 1;
        else if (!std::isnan(diff)) d.max_abs = std::fmax(d.max_abs, diff);
      }
    } else {
      for (size_t j = 0; j < ref[k].i.size(); ++j) d.mismatches += got[k].i[j] != ref[k].i[j];
    }
  }
  return d;
}

std::mt19937 rng(20240617);

Host random_f32(std::vector<int64_t> dims, float lo, float hi) {
  Host h;
  h.dims = std::move(dims);
  h.resize();
  std::uniform_real_distribution<float> u(lo, hi);
  for (float &v : h.f) v = u(rng);
  return h;
}

std::vector<Case> cases() {
  std::vector<Case> v;
  const char *modes[] = {"linear", "nearest", "cubic"};
  const char *paddings[] = {"zeros", "border", "reflection"};
  for (const char *m : modes) {
    for (const char *pad : paddings) {
      for (int ac = 0; ac < 2; ++ac) {
        Case c;
        c.plugin = "GridSample";
        c.label = std::string(m) + " " + pad + " align_corners=" + std::to_string(ac);
        c.fields = {string_field("mode", m), string_field("padding_mode", pad), int_field("align_corners", ac)};
        c.inputs = {random_f32({2, 3, 7, 9}, -1.0f, 1.0f), random_f32({2, 5, 6, 2}, -1.3f, 1.3f)};
        v.push_back(c);
      }
    }
  }
  const char *roi_modes[] = {"avg", "max"};
  const char *ctms[] = {"half_pixel", "output_half_pixel"};
  for (const char *m : roi_modes) {
    for (const char *ctm : ctms) {
      for (int sr : {0, 2}) {
        Case c;
        c.plugin = "RoiAlign";
        c.label = std::string(m) + " " + ctm + " sampling_ratio=" + std::to_string(sr);
        c.fields = {string_field("mode", m), string_field("coordinate_transformation_mode", ctm),
                    int_field("output_height", 3), int_field("output_width", 4), int_field("sampling_ratio", sr),
                    float_field("spatial_scale", 0.5)};
        const int64_t rois = 9;
        Host x = random_f32({2, 4, 12, 15}, -1.0f, 1.0f);
        Host r;
        r.dims = {rois, 4};
        r.resize();
        std::uniform_real_distribution<float> pos(-2.0f, 30.0f), size(0.5f, 16.0f);
        for (int64_t k = 0; k < rois; ++k) {
          const float x1 = pos(rng), y1 = pos(rng);
          r.f[k * 4 + 0] = x1;
          r.f[k * 4 + 1] = y1;
          r.f[k * 4 + 2] = x1 + size(rng);
          r.f[k * 4 + 3] = y1 + size(rng);
        }
        Host b;
        b.dtype = JETRT_DTYPE_I64;
        b.dims = {rois};
        b.resize();
        for (int64_t k = 0; k < rois; ++k) b.i[k] = static_cast<int64_t>(rng() % 2);
        c.inputs = {x, r, b};
        v.push_back(c);
      }
    }
  }
  for (int center = 0; center < 2; ++center) {
    for (int thr = 0; thr < 2; ++thr) {
      for (double iou : {0.3, 0.7}) {
        Case c;
        c.plugin = "NonMaxSuppression";
        char label[96];
        std::snprintf(label, sizeof label, "%s score_threshold=%s iou=%.1f", center ? "center" : "corners",
                      thr ? "0.5" : "none", iou);
        c.label = label;
        c.exact = true;
        c.fields = {int_field("center_point_box", center), int_field("max_output_boxes_per_class", 25),
                    float_field("iou_threshold", iou)};
        if (thr) c.fields.push_back(float_field("score_threshold", 0.5));
        const int64_t batches = 2, boxes = 300, classes = 4;
        Host bx;
        bx.dims = {batches, boxes, 4};
        bx.resize();
        std::uniform_real_distribution<float> at(0.0f, 100.0f), extent(5.0f, 30.0f);
        for (int64_t k = 0; k < batches * boxes; ++k) {
          const float cx = at(rng), cy = at(rng), w = extent(rng), h = extent(rng);
          float *b = &bx.f[k * 4];
          if (center) {
            b[0] = cx, b[1] = cy, b[2] = w, b[3] = h;
          } else if (rng() % 2) {  // corners in either order
            b[0] = cy - h / 2, b[1] = cx - w / 2, b[2] = cy + h / 2, b[3] = cx + w / 2;
          } else {
            b[0] = cy + h / 2, b[1] = cx + w / 2, b[2] = cy - h / 2, b[3] = cx - w / 2;
          }
        }
        c.inputs = {bx, random_f32({batches, classes, boxes}, 0.0f, 1.0f)};
        v.push_back(c);
      }
    }
  }
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  bool require_cuda = false;
  const char *path = nullptr;
  for (int k = 1; k < argc; ++k) {
    if (std::strcmp(argv[k], "--require-cuda") == 0) require_cuda = true;
    else path = argv[k];
  }
  if (!path) {
    std::fprintf(stderr, "usage: %s [--require-cuda] path/to/libjetrt_plugins.so\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "error: cannot load %s: %s\n", path, dlerror());
    return 2;
  }
  auto version = reinterpret_cast<jetrt_plugin_abi_version_fn>(dlsym(lib, "jetrt_plugin_abi_version"));
  auto list = reinterpret_cast<jetrt_plugin_list_fn>(dlsym(lib, "jetrt_plugin_list"));
  if (!version || !list || version() != JETRT_PLUGIN_ABI_VERSION) {
    std::fprintf(stderr, "error: %s is not a jetrt plugin library of ABI version %u\n", path,
                 JETRT_PLUGIN_ABI_VERSION);
    return 2;
  }
  uint32_t count = 0;
  const jetrt_plugin_descriptor *const *plugins = list(&count);
  auto find = [&](const std::string &name) -> const jetrt_plugin_descriptor * {
    for (uint32_t k = 0; k < count; ++k) {
      if (plugins[k] && name == plugins[k]->name) return plugins[k];
    }
    return nullptr;
  };

  bool cuda = false;
#ifdef JETRT_CHECK_WITH_CUDA
  cuda = have_cuda_device();
  if (!cuda) std::printf("note: built with CUDA, but no CUDA device is usable here\n");
#else
  std::printf("note: this checker was built without CUDA: CPU kernels only\n");
#endif
  if (require_cuda && !cuda) {
    std::fprintf(stderr, "error: --require-cuda, but CUDA kernels cannot be run here\n");
    return 2;
  }

  std::printf("%-18s %-42s %12s %12s  %s\n", "kernel", "case", "max|abs|", "max rel", "result");
  int checked = 0, failed = 0;
  for (Case &c : cases()) {
    const jetrt_plugin_descriptor *d = find(c.plugin);
    std::string result;
    double max_abs = 0.0, rel = 0.0;
    bool ok = true;
    try {
      if (!d) throw Failure{"the library has no such plugin"};
      Instance fresh(d, c.fields);
      const std::vector<Host> ref = run_cpu(fresh, c.inputs);
      Instance loaded(d, fresh.serialize());
      const Diff again = compare(run_cpu(loaded, c.inputs), ref);
      if (again.max_abs != 0.0 || again.mismatches != 0) {
        throw Failure{"the CPU kernel of a deserialized instance differs"};
      }
      if (!cuda) {
        result = "cpu ok (no cuda)";
      } else if (!d->run_cuda) {
        ok = false;
        result = "FAIL: no CUDA kernel in this library";
      } else {
#ifdef JETRT_CHECK_WITH_CUDA
        const Diff diff = compare(run_cuda(fresh, c.inputs), ref);
        max_abs = diff.max_abs;
        rel = diff.max_ref > 0.0 ? diff.max_abs / diff.max_ref : diff.max_abs;
        // Float outputs: the kernels share their code and neither side fuses
        // multiply-adds, so only library math may differ, in the last bits.
        ok = diff.mismatches == 0 && (c.exact ? max_abs == 0.0 : max_abs <= 1e-5 + 1e-5 * diff.max_ref);
        result = ok ? "ok" : "FAIL";
        if (diff.mismatches) result += " (" + std::to_string(diff.mismatches) + " elements or dims differ)";
#endif
      }
    } catch (const Failure &f) {
      ok = false;
      result = "FAIL: " + f.what;
    }
    ++checked;
    failed += ok ? 0 : 1;
    std::printf("%-18s %-42s %12.3e %12.3e  %s\n", c.plugin.c_str(), c.label.c_str(), max_abs, rel, result.c_str());
  }
  std::printf("%d checked, %d failed%s\n", checked, failed, cuda ? "" : " (CPU kernels only)");
  return failed == 0 ? 0 : 1;
}
