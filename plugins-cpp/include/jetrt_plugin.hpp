// C++ helpers for writing jetrt plugins against the C ABI in jetrt_plugin.h.
//
// A plugin is a class P deriving from jetrt::Plugin with
//
//   static std::unique_ptr<P> create(const jetrt::Fields &fields);
//   static std::unique_ptr<P> deserialize(jetrt::Reader &in);
//   void serialize(jetrt::Writer &out) const override;
//   std::vector<jetrt::OutputDesc> infer(const std::vector<jetrt::TensorDesc> &in) const override;
//   void run_cpu(const jetrt::Args &args) override;
//
// and optionally workspace_size() and run_cuda(). jetrt::describe<P>(...)
// makes its C descriptor: every entry point catches C++ exceptions and turns
// them into a status and message, so none crosses the C boundary.
#ifndef JETRT_PLUGIN_HPP
#define JETRT_PLUGIN_HPP

#include "jetrt_plugin.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace jetrt {

// An error with the status it is reported as.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string &msg, jetrt_status status = JETRT_ERROR_INVALID_ARGUMENT)
      : std::runtime_error(msg), status_(status) {}
  jetrt_status status() const { return status_; }

 private:
  jetrt_status status_;
};

inline const char *dtype_name(jetrt_dtype t) {
  switch (t) {
    case JETRT_DTYPE_F32: return "float32";
    case JETRT_DTYPE_F16: return "float16";
    case JETRT_DTYPE_I32: return "int32";
    case JETRT_DTYPE_I64: return "int64";
    case JETRT_DTYPE_U8: return "uint8";
    case JETRT_DTYPE_BOOL: return "bool";
    default: return "unknown type";
  }
}

// The fields a plugin is created from, with typed look-ups. Every field must
// be read (or listed in allow()) before check_all_used(), so that a typo in
// an attribute name is an error rather than a silently ignored setting.
class Fields {
 public:
  Fields(const jetrt_field *fields, int32_t n) : fields_(fields), n_(n < 0 ? 0 : n), used_(n_, false) {}

  bool has(const char *name) const { return find(name) != nullptr; }

  int64_t get_int(const char *name, int64_t fallback) const {
    const jetrt_field *f = find(name);
    if (!f) return fallback;
    expect(f, JETRT_FIELD_INT, "an int");
    return f->i;
  }
  double get_float(const char *name, double fallback) const {
    const jetrt_field *f = find(name);
    if (!f) return fallback;
    // An int where a float is expected is accepted: users write 1 for 1.0.
    if (f->type == JETRT_FIELD_INT) return static_cast<double>(f->i);
    expect(f, JETRT_FIELD_FLOAT, "a float");
    return f->f;
  }
  std::string get_string(const char *name, const std::string &fallback) const {
    const jetrt_field *f = find(name);
    if (!f) return fallback;
    expect(f, JETRT_FIELD_STRING, "a string");
    if (f->count < 0 || (f->count > 0 && !f->s)) throw Error(std::string("field '") + name + "' is malformed");
    return std::string(f->s ? f->s : "", static_cast<size_t>(f->count));
  }
  std::vector<int64_t> get_ints(const char *name) const {
    const jetrt_field *f = find(name);
    if (!f) return {};
    expect(f, JETRT_FIELD_INTS, "a list of ints");
    if (f->count < 0 || (f->count > 0 && !f->ints)) throw Error(std::string("field '") + name + "' is malformed");
    return std::vector<int64_t>(f->ints, f->ints + f->count);
  }
  std::vector<double> get_floats(const char *name) const {
    const jetrt_field *f = find(name);
    if (!f) return {};
    expect(f, JETRT_FIELD_FLOATS, "a list of floats");
    if (f->count < 0 || (f->count > 0 && !f->floats)) throw Error(std::string("field '") + name + "' is malformed");
    return std::vector<double>(f->floats, f->floats + f->count);
  }

  // Fails on a field no look-up asked for.
  void check_all_used() const {
    for (int32_t i = 0; i < n_; ++i) {
      if (!used_[i]) {
        throw Error(std::string("unknown field '") + (fields_[i].name ? fields_[i].name : "") + "'");
      }
    }
  }

 private:
  const jetrt_field *find(const char *name) const {
    for (int32_t i = 0; i < n_; ++i) {
      if (fields_[i].name && std::strcmp(fields_[i].name, name) == 0) {
        used_[i] = true;
        return &fields_[i];
      }
    }
    return nullptr;
  }
  static void expect(const jetrt_field *f, int32_t type, const char *what) {
    if (f->type != type) throw Error(std::string("field '") + f->name + "' should be " + what);
  }

  const jetrt_field *fields_;
  int32_t n_;
  mutable std::vector<bool> used_;
};

// Little-endian parameter bytes for the engine file.
class Writer {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void i64(int64_t v) {
    uint64_t u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<uint8_t>(u >> (8 * i)));
  }
  void f64(double v) {
    int64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    i64(bits);
  }
  void str(const std::string &s) {
    i64(static_cast<int64_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  const std::vector<uint8_t> &bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Reads what Writer wrote; running past the end is an error (a corrupt or
// foreign engine), never an overread.
class Reader {
 public:
  Reader(const uint8_t *data, uint64_t size) : p_(data), n_(data ? size : 0) {}
  uint8_t u8() {
    need(1);
    return p_[pos_++];
  }
  int64_t i64() {
    need(8);
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
    pos_ += 8;
    return static_cast<int64_t>(u);
  }
  double f64() {
    int64_t bits = i64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  std::string str() {
    int64_t len = i64();
    if (len < 0) throw Error("corrupt parameters: negative string length");
    need(static_cast<uint64_t>(len));
    std::string s(reinterpret_cast<const char *>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<uint64_t>(len);
    return s;
  }
  // Fails unless every byte was read.
  void finish() const {
    if (pos_ != n_) throw Error("corrupt parameters: " + std::to_string(n_ - pos_) + " trailing bytes");
  }

 private:
  void need(uint64_t k) const {
    if (k > n_ - pos_) throw Error("corrupt parameters: truncated");
  }
  const uint8_t *p_;
  uint64_t n_;
  uint64_t pos_ = 0;
};

// An input's type as infer() sees it.
struct TensorDesc {
  jetrt_dtype dtype = 0;
  std::vector<int64_t> dims;  // JETRT_DIM_UNKNOWN for dims not known yet
  int rank() const { return static_cast<int>(dims.size()); }
};

// One output dim: a size, unknown until run time, the same as an input's
// dim, or data-dependent with an upper bound.
struct Dim {
  int64_t size = JETRT_DIM_UNKNOWN;
  int64_t bound = -1;
  int32_t input = -1;
  int32_t axis = -1;

  static Dim fixed(int64_t n) { return Dim{n, -1, -1, -1}; }
  // Dim `axis` of input `i` (whatever it turns out to be).
  static Dim of(const std::vector<TensorDesc> &in, int32_t i, int32_t axis) {
    return Dim{in[i].dims[axis], -1, i, axis};
  }
  // Known after the kernel ran; at most `max` (-1: not computable yet).
  static Dim data_dependent(int64_t max) { return Dim{JETRT_DIM_DATA_DEPENDENT, max, -1, -1}; }
};

struct OutputDesc {
  jetrt_dtype dtype = 0;
  std::vector<Dim> dims;
};

// A tensor as a kernel sees it.
struct Tensor {
  jetrt_tensor *raw;
  jetrt_dtype dtype() const { return raw->dtype; }
  int rank() const { return raw->rank; }
  int64_t dim(int i) const { return raw->dims[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < raw->rank; ++i) n *= raw->dims[i];
    return n;
  }
  template <class T>
  T *data() const {
    return static_cast<T *>(raw->data);
  }
  // For kernels with data-dependent dims: the size actually produced.
  void set_dim(int i, int64_t n) { raw->dims[i] = n; }
};

// What a kernel gets: inputs, outputs, scratch (and a CUDA stream).
struct Args {
  std::vector<Tensor> inputs;
  std::vector<Tensor> outputs;
  void *workspace = nullptr;
  uint64_t workspace_size = 0;
  void *stream = nullptr;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual void serialize(Writer &out) const = 0;
  virtual std::vector<OutputDesc> infer(const std::vector<TensorDesc> &inputs) const = 0;
  // Scratch bytes for a run on `device` (JETRT_DEVICE_CPU or _CUDA).
  virtual uint64_t workspace_size(const std::vector<TensorDesc> &, jetrt_device) const { return 0; }
  virtual void run_cpu(const Args &args) = 0;
  virtual void run_cuda(const Args &) { throw Error("no CUDA kernel", JETRT_ERROR_UNSUPPORTED); }
};

// Input checks for infer(): count, dtype and rank, with messages that name
// the input.
inline void expect_inputs(const std::vector<TensorDesc> &in, size_t lo, size_t hi) {
  if (in.size() < lo || in.size() > hi) {
    throw Error("takes " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
                " inputs, got " + std::to_string(in.size()));
  }
}
inline void expect_input(const std::vector<TensorDesc> &in, size_t i, const char *name, jetrt_dtype dtype,
                         int rank) {
  if (in[i].dtype != dtype) {
    throw Error(std::string("input ") + std::to_string(i) + " (" + name + ") must be " + dtype_name(dtype) +
                ", got " + dtype_name(in[i].dtype));
  }
  if (rank >= 0 && in[i].rank() != rank) {
    throw Error(std::string("input ") + std::to_string(i) + " (" + name + ") must have rank " +
                std::to_string(rank) + ", got " + std::to_string(in[i].rank()));
  }
}

namespace detail {

inline void set_error(jetrt_error *error, const char *msg) {
  if (!error) return;
  std::snprintf(error->message, JETRT_ERROR_MESSAGE_SIZE, "%s", msg ? msg : "");
}

// Runs f, turning every exception into a status and message.
template <class F>
jetrt_status guard(jetrt_error *error, F &&f) {
  try {
    f();
    return JETRT_OK;
  } catch (const Error &e) {
    set_error(error, e.what());
    return e.status();
  } catch (const std::bad_alloc &) {
    set_error(error, "out of memory");
    return JETRT_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    set_error(error, e.what());
    return JETRT_ERROR_INTERNAL;
  } catch (...) {
    set_error(error, "unknown C++ exception");
    return JETRT_ERROR_INTERNAL;
  }
}

inline std::vector<TensorDesc> descs(const jetrt_tensor_desc *in, int32_t n) {
  if (n < 0 || (n > 0 && !in)) throw Error("bad input descriptions");
  std::vector<TensorDesc> v(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    if (in[i].rank < 0 || in[i].rank > JETRT_MAX_RANK) throw Error("input rank out of range");
    v[i].dtype = in[i].dtype;
    v[i].dims.assign(in[i].dims, in[i].dims + in[i].rank);
  }
  return v;
}

inline std::vector<Tensor> tensors(const jetrt_tensor *t, int32_t n) {
  if (n < 0 || (n > 0 && !t)) throw Error("bad tensors");
  std::vector<Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    if (t[i].rank < 0 || t[i].rank > JETRT_MAX_RANK) throw Error("tensor rank out of range");
    // Inputs are never written; the const is dropped only to share Tensor.
    v.push_back(Tensor{const_cast<jetrt_tensor *>(&t[i])});
  }
  return v;
}

template <class P>
struct Adapter {
  static jetrt_status create(const jetrt_field *fields, int32_t n, void **instance, jetrt_error *error) {
    return guard(error, [&] {
      Fields f(fields, n);
      std::unique_ptr<P> p = P::create(f);
      f.check_all_used();
      *instance = p.release();
    });
  }
  static jetrt_status deserialize(const uint8_t *data, uint64_t size, void **instance, jetrt_error *error) {
    return guard(error, [&] {
      Reader r(data, size);
      std::unique_ptr<P> p = P::deserialize(r);
      r.finish();
      *instance = p.release();
    });
  }
  static void destroy(void *instance) { delete static_cast<P *>(instance); }
  static jetrt_status serialize(const void *instance, uint8_t *buffer, uint64_t capacity, uint64_t *size,
                                jetrt_error *error) {
    jetrt_status too_small = JETRT_OK;
    jetrt_status s = guard(error, [&] {
      Writer w;
      static_cast<const P *>(instance)->serialize(w);
      *size = w.bytes().size();
      if (capacity < w.bytes().size() || (!buffer && !w.bytes().empty())) {
        set_error(error, "buffer too small");
        too_small = JETRT_ERROR_BUFFER_TOO_SMALL;
        return;
      }
      if (!w.bytes().empty()) std::memcpy(buffer, w.bytes().data(), w.bytes().size());
    });
    return s != JETRT_OK ? s : too_small;
  }
  static jetrt_status infer_outputs(const void *instance, const jetrt_tensor_desc *inputs, int32_t num_inputs,
                                    jetrt_output_desc *outputs, int32_t capacity, int32_t *num_outputs,
                                    jetrt_error *error) {
    return guard(error, [&] {
      std::vector<OutputDesc> out = static_cast<const P *>(instance)->infer(descs(inputs, num_inputs));
      if (out.size() > static_cast<size_t>(capacity < 0 ? 0 : capacity)) {
        throw Error("more outputs than jetrt has room for", JETRT_ERROR_INTERNAL);
      }
      for (size_t k = 0; k < out.size(); ++k) {
        jetrt_output_desc &o = outputs[k];
        if (out[k].dims.size() > JETRT_MAX_RANK) throw Error("output rank too large", JETRT_ERROR_INTERNAL);
        o.dtype = out[k].dtype;
        o.rank = static_cast<int32_t>(out[k].dims.size());
        for (size_t d = 0; d < out[k].dims.size(); ++d) {
          o.dims[d] = out[k].dims[d].size;
          o.bounds[d] = out[k].dims[d].bound;
          o.same_as_input[d] = out[k].dims[d].input;
          o.same_as_axis[d] = out[k].dims[d].axis;
        }
      }
      *num_outputs = static_cast<int32_t>(out.size());
    });
  }
  static jetrt_status workspace_size(const void *instance, const jetrt_tensor_desc *inputs, int32_t num_inputs,
                                     jetrt_device device, uint64_t *size, jetrt_error *error) {
    return guard(error, [&] {
      *size = static_cast<const P *>(instance)->workspace_size(descs(inputs, num_inputs), device);
    });
  }
  static Args args(const jetrt_tensor *inputs, int32_t num_inputs, jetrt_tensor *outputs, int32_t num_outputs,
                   void *workspace, uint64_t workspace_size, void *stream) {
    Args a;
    a.inputs = tensors(inputs, num_inputs);
    a.outputs = tensors(outputs, num_outputs);
    a.workspace = workspace;
    a.workspace_size = workspace_size;
    a.stream = stream;
    return a;
  }
  static jetrt_status run_cpu(void *instance, const jetrt_tensor *inputs, int32_t num_inputs, jetrt_tensor *outputs,
                              int32_t num_outputs, void *workspace, uint64_t workspace_size, jetrt_error *error) {
    return guard(error, [&] {
      static_cast<P *>(instance)->run_cpu(
          args(inputs, num_inputs, outputs, num_outputs, workspace, workspace_size, nullptr));
    });
  }
  static jetrt_status run_cuda(void *instance, const jetrt_tensor *inputs, int32_t num_inputs, jetrt_tensor *outputs,
                               int32_t num_outputs, void *workspace, uint64_t workspace_size, void *stream,
                               jetrt_error *error) {
    return guard(error, [&] {
      static_cast<P *>(instance)->run_cuda(
          args(inputs, num_inputs, outputs, num_outputs, workspace, workspace_size, stream));
    });
  }
};

}  // namespace detail

// The C descriptor of plugin class P. `with_cuda` says whether P::run_cuda
// is a real kernel in this build (built-ins have one only when nvcc was
// found); when false, jetrt sees no CUDA kernel.
template <class P>
jetrt_plugin_descriptor describe(const char *name, const char *version, const char *description,
                                 bool with_cuda = false) {
  jetrt_plugin_descriptor d;
  std::memset(&d, 0, sizeof d);
  d.struct_size = sizeof(jetrt_plugin_descriptor);
  d.abi_version = JETRT_PLUGIN_ABI_VERSION;
  d.name = name;
  d.version = version;
  d.description = description;
  d.create = &detail::Adapter<P>::create;
  d.deserialize = &detail::Adapter<P>::deserialize;
  d.destroy = &detail::Adapter<P>::destroy;
  d.serialize = &detail::Adapter<P>::serialize;
  d.infer_outputs = &detail::Adapter<P>::infer_outputs;
  d.workspace_size = &detail::Adapter<P>::workspace_size;
  d.run_cpu = &detail::Adapter<P>::run_cpu;
  d.run_cuda = with_cuda ? &detail::Adapter<P>::run_cuda : nullptr;
  return d;
}

}  // namespace jetrt

#endif  // JETRT_PLUGIN_HPP
