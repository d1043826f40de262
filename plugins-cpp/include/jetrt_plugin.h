/*
 * jetrt plugin C ABI.
 *
 * A plugin library adds layer implementations ("plugins") to jetrt through
 * plain C functions and structs, so that a library built by any C or C++
 * compiler, with or without CUDA, loads into any jetrt binary of the same
 * ABI version. The model follows TensorRT's IPluginV3: a plugin is created
 * from typed fields (the ONNX node's attributes), serializes its parameters
 * into the engine file, is re-created from those bytes when the engine is
 * loaded, infers its output types, and runs on the CPU and optionally on a
 * CUDA stream.
 *
 * A library exports two functions (JETRT_PLUGIN_LIBRARY defines both):
 *
 *   uint32_t jetrt_plugin_abi_version(void);
 *   const jetrt_plugin_descriptor *const *jetrt_plugin_list(uint32_t *count);
 *
 * jetrt refuses a library whose jetrt_plugin_abi_version() is not its own
 * JETRT_PLUGIN_ABI_VERSION, and any descriptor whose abi_version differs.
 *
 * Rules every function follows:
 *  - Plain C types only; no C++ exception may leave a function (catch and
 *    return a status with a message in `error`).
 *  - Every function returning jetrt_status writes a NUL-terminated message
 *    into error->message when it returns anything but JETRT_OK.
 *  - Structs carry `struct_size`: the caller sets it to sizeof the struct as
 *    it was compiled; a callee reads only fields that fit in that size, so
 *    fields can be appended in later minor versions.
 *  - jetrt never calls one instance from two threads at once; different
 *    instances may be used concurrently.
 *  - Tensors are dense and row-major.
 */
#ifndef JETRT_PLUGIN_H
#define JETRT_PLUGIN_H

#include <stdint.h>

/* Version 2: descriptors, fields, output inference, CPU and CUDA kernels. */
#define JETRT_PLUGIN_ABI_VERSION 2u

#if defined(_WIN32)
#define JETRT_PLUGIN_EXPORT __declspec(dllexport)
#else
#define JETRT_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The most dims a tensor passed through this ABI has. */
#define JETRT_MAX_RANK 8
/* Bytes of a jetrt_error message, NUL included. */
#define JETRT_ERROR_MESSAGE_SIZE 512

/* ---- status codes ------------------------------------------------------ */
typedef int32_t jetrt_status;
#define JETRT_OK 0
#define JETRT_ERROR_INVALID_ARGUMENT 1 /* bad fields, input types or data */
#define JETRT_ERROR_UNSUPPORTED 2      /* a valid request this plugin does not implement */
#define JETRT_ERROR_BUFFER_TOO_SMALL 3 /* serialize: *size says how much is needed */
#define JETRT_ERROR_OUT_OF_MEMORY 4
#define JETRT_ERROR_CUDA 5     /* a CUDA call failed; the message says which */
#define JETRT_ERROR_INTERNAL 6 /* anything else (an unexpected exception) */

/* ---- element types (the same set as jetrt tensors) ---------------------- */
typedef int32_t jetrt_dtype;
#define JETRT_DTYPE_F32 1
#define JETRT_DTYPE_F16 2 /* IEEE binary16 */
#define JETRT_DTYPE_I32 3
#define JETRT_DTYPE_I64 4
#define JETRT_DTYPE_U8 5
#define JETRT_DTYPE_BOOL 6 /* one byte per element, 0 or 1 */

/* ---- where a kernel runs ------------------------------------------------ */
typedef int32_t jetrt_device;
#define JETRT_DEVICE_CPU 0
#define JETRT_DEVICE_CUDA 1

/* ---- fields: a plugin's typed parameters --------------------------------- */
/* For a node of an ONNX model, the fields are the node's attributes (ONNX
 * float attributes arrive as doubles holding the float's exact value). */
#define JETRT_FIELD_INT 1
#define JETRT_FIELD_FLOAT 2
#define JETRT_FIELD_STRING 3
#define JETRT_FIELD_INTS 4
#define JETRT_FIELD_FLOATS 5

typedef struct jetrt_field {
  const char *name; /* NUL-terminated */
  int32_t type;     /* JETRT_FIELD_* */
  int32_t reserved; /* 0 */
  /* INTS, FLOATS: element count; STRING: byte length (without the NUL); else 1. */
  int64_t count;
  int64_t i;             /* INT */
  double f;              /* FLOAT */
  const char *s;         /* STRING: `count` bytes followed by a NUL */
  const int64_t *ints;   /* INTS */
  const double *floats;  /* FLOATS */
} jetrt_field;

typedef struct jetrt_error {
  char message[JETRT_ERROR_MESSAGE_SIZE]; /* NUL-terminated */
} jetrt_error;

/* ---- tensor descriptions -------------------------------------------------- */
/* An input dim not known when outputs are inferred at build time (a dynamic
 * batch dim); at run time every input dim is known. As an output dim: one
 * that depends on such an input dim. */
#define JETRT_DIM_UNKNOWN (-1)
/* An output dim known only once the kernel has run (NonMaxSuppression's
 * count of selected boxes). `bounds` gives its upper bound, which jetrt
 * allocates; the kernel reports the actual size (see jetrt_tensor). */
#define JETRT_DIM_DATA_DEPENDENT (-2)

typedef struct jetrt_tensor_desc {
  uint32_t struct_size;
  jetrt_dtype dtype;
  int32_t rank;
  int32_t reserved;
  int64_t dims[JETRT_MAX_RANK]; /* >= 0, or JETRT_DIM_UNKNOWN at build time */
} jetrt_tensor_desc;

/* What infer_outputs writes per output. jetrt zero-fills it, then sets
 * struct_size, and every same_as_input to -1, before the call. */
typedef struct jetrt_output_desc {
  uint32_t struct_size;
  jetrt_dtype dtype;
  int32_t rank;
  int32_t reserved;
  /* >= 0, JETRT_DIM_UNKNOWN or JETRT_DIM_DATA_DEPENDENT. */
  int64_t dims[JETRT_MAX_RANK];
  /* For data-dependent dims: the upper bound, or -1 when it cannot be
   * computed yet (it depends on an unknown input dim). */
  int64_t bounds[JETRT_MAX_RANK];
  /* -1, or the input whose dim same_as_axis[d] this dim always equals; it
   * lets a dynamic dim (a named batch) keep its identity through the plugin. */
  int32_t same_as_input[JETRT_MAX_RANK];
  int32_t same_as_axis[JETRT_MAX_RANK];
} jetrt_output_desc;

/* A tensor a kernel reads or writes: host memory for run_cpu, device memory
 * for run_cuda. For an output, `dims` are what jetrt allocated (bounds for
 * data-dependent dims); a kernel with data-dependent dims overwrites them
 * with the sizes it produced (<= the allocated ones) and writes the data
 * packed for those sizes from the start of the buffer. */
typedef struct jetrt_tensor {
  uint32_t struct_size;
  jetrt_dtype dtype;
  int32_t rank;
  int32_t reserved;
  int64_t dims[JETRT_MAX_RANK];
  void *data;
} jetrt_tensor;

/* ---- the plugin descriptor --------------------------------------------- */
typedef struct jetrt_plugin_descriptor {
  uint32_t struct_size; /* sizeof(jetrt_plugin_descriptor) as the library was built */
  uint32_t abi_version; /* JETRT_PLUGIN_ABI_VERSION */
  /* The op name; a node of a custom (non-default) ONNX domain whose op_type
   * is this name is converted to this plugin. */
  const char *name;
  const char *version;     /* e.g. "1"; an engine records name and version */
  const char *description; /* one line for listings; may be NULL */

  /* A new instance from fields (build time). Unknown or ill-typed fields are
   * an error, so that typos in a model do not pass silently. */
  jetrt_status (*create)(const jetrt_field *fields, int32_t num_fields, void **instance,
                         jetrt_error *error);
  /* A new instance from bytes `serialize` wrote (engine load time). */
  jetrt_status (*deserialize)(const uint8_t *data, uint64_t size, void **instance,
                              jetrt_error *error);
  /* Frees an instance; NULL is allowed and ignored. */
  void (*destroy)(void *instance);
  /* Writes the instance's parameters. When `capacity` is too small (a NULL
   * buffer with capacity 0 asks), sets *size to the bytes needed and returns
   * JETRT_ERROR_BUFFER_TOO_SMALL; otherwise writes and sets *size. */
  jetrt_status (*serialize)(const void *instance, uint8_t *buffer, uint64_t capacity,
                            uint64_t *size, jetrt_error *error);
  /* Checks input types and describes the outputs: writes at most `capacity`
   * descriptions and sets *num_outputs. Called at build time (input dims may
   * be JETRT_DIM_UNKNOWN) and before each run (all dims known). */
  jetrt_status (*infer_outputs)(const void *instance, const jetrt_tensor_desc *inputs,
                                int32_t num_inputs, jetrt_output_desc *outputs,
                                int32_t capacity, int32_t *num_outputs, jetrt_error *error);
  /* Scratch bytes a run on these inputs (all dims known) needs on `device`
   * (JETRT_DEVICE_*); jetrt allocates them there. May be NULL: no scratch. */
  jetrt_status (*workspace_size)(const void *instance, const jetrt_tensor_desc *inputs,
                                 int32_t num_inputs, jetrt_device device, uint64_t *size,
                                 jetrt_error *error);
  /* The CPU kernel (required): host pointers. */
  jetrt_status (*run_cpu)(void *instance, const jetrt_tensor *inputs, int32_t num_inputs,
                          jetrt_tensor *outputs, int32_t num_outputs, void *workspace,
                          uint64_t workspace_size, jetrt_error *error);
  /* The CUDA kernel, or NULL: device pointers; work is enqueued on `stream`
   * (a cudaStream_t). A kernel with data-dependent output dims must have set
   * them in outputs[k].dims before it returns (it may synchronize the stream
   * to learn them); otherwise it need not wait for its work to finish. */
  jetrt_status (*run_cuda)(void *instance, const jetrt_tensor *inputs, int32_t num_inputs,
                           jetrt_tensor *outputs, int32_t num_outputs, void *workspace,
                           uint64_t workspace_size, void *stream, jetrt_error *error);
} jetrt_plugin_descriptor;

/* ---- what a plugin library exports --------------------------------------- */
typedef uint32_t (*jetrt_plugin_abi_version_fn)(void);
typedef const jetrt_plugin_descriptor *const *(*jetrt_plugin_list_fn)(uint32_t *count);

/* The ABI version the library was built against: JETRT_PLUGIN_ABI_VERSION. */
JETRT_PLUGIN_EXPORT uint32_t jetrt_plugin_abi_version(void);
/* The library's plugins: sets *count and returns an array of that many
 * descriptors, valid for as long as the library stays loaded. */
JETRT_PLUGIN_EXPORT const jetrt_plugin_descriptor *const *jetrt_plugin_list(uint32_t *count);

/* Defines both exports for an array of descriptor pointers:
 *   static const jetrt_plugin_descriptor *const kPlugins[] = {&my_plugin};
 *   JETRT_PLUGIN_LIBRARY(kPlugins)
 */
#define JETRT_PLUGIN_LIBRARY(descriptors)                                                  \
  JETRT_PLUGIN_EXPORT uint32_t jetrt_plugin_abi_version(void) {                            \
    return JETRT_PLUGIN_ABI_VERSION;                                                       \
  }                                                                                        \
  JETRT_PLUGIN_EXPORT const jetrt_plugin_descriptor *const *jetrt_plugin_list(             \
      uint32_t *count) {                                                                   \
    *count = (uint32_t)(sizeof(descriptors) / sizeof((descriptors)[0]));                   \
    return descriptors;                                                                    \
  }

#ifdef __cplusplus
}
#endif

#endif /* JETRT_PLUGIN_H */
