// Shared by every kernel source of the cuda backend; prepended to each
// before NVRTC compiles it, so no header needs to be found at run time.
//
// Conventions:
//  - Every kernel takes one parameter struct by value, mirrored field for
//    field by a #[repr(C)] struct in the Rust launcher; both sides assert
//    the struct's size, so a mismatch fails to compile rather than run.
//  - Pointers travel as u64 and are cast where used.
//  - float16 is stored as its bits (u16) and converted with PTX cvt, so
//    no CUDA header is needed; arithmetic is in float32.
//  - Element-wise kernels walk a grid-stride loop over the output; kernels
//    that reduce give each output row one block.
//  - A kernel that meets bad data (an index out of range) sets a bit in
//    the context's error word instead of reading out of bounds; the host
//    reads the word after the run and reports the layer.

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define MAX_RANK 8
#define BLOCK 256

// Error bits a kernel may set in the error word.
#define ERR_INDEX 1

struct Dims {
  int rank;
  int pad;
  i64 d[MAX_RANK];
};

__device__ __forceinline__ float h2f(u16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ u16 f2h(float f) {
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

__device__ __forceinline__ u16 d2h(double d) {
  u16 h;
  asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d));
  return h;
}

// Float loads and stores of the two float storage types.
__device__ __forceinline__ float ldf(const float *p, i64 i) { return p[i]; }
__device__ __forceinline__ float ldf(const u16 *p, i64 i) { return h2f(p[i]); }
__device__ __forceinline__ void stf(float *p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void stf(u16 *p, i64 i, float v) { p[i] = f2h(v); }

// V neighbouring elements (V is 1 or 2; for 2 the address is aligned to
// two elements): one 4-byte load or store of two float16 values, or one
// 8-byte one of two float32 values.
template <int V>
__device__ __forceinline__ void ldv(const u16 *p, float *v) {
  if (V == 2) {
    const u32 b = *(const u32 *)p;
    v[0] = h2f((u16)(b & 0xffff));
    v[1] = h2f((u16)(b >> 16));
  } else {
    v[0] = h2f(p[0]);
  }
}
template <int V>
__device__ __forceinline__ void ldv(const float *p, float *v) {
  if (V == 2) {
    const float2 b = *(const float2 *)p;
    v[0] = b.x;
    v[1] = b.y;
  } else {
    v[0] = p[0];
  }
}
template <int V>
__device__ __forceinline__ void stv(u16 *p, const float *v) {
  if (V == 2) {
    *(u32 *)p = (u32)f2h(v[0]) | ((u32)f2h(v[1]) << 16);
  } else {
    p[0] = f2h(v[0]);
  }
}
template <int V>
__device__ __forceinline__ void stv(float *p, const float *v) {
  if (V == 2) {
    *(float2 *)p = make_float2(v[0], v[1]);
  } else {
    p[0] = v[0];
  }
}

// Element i of a typed tensor, float16 widened to float32 (and stores
// back, rounded), for kernels templated over the element type.
__device__ __forceinline__ float ldval(const float *p, i64 i) { return p[i]; }
__device__ __forceinline__ float ldval(const u16 *p, i64 i) { return h2f(p[i]); }
__device__ __forceinline__ int ldval(const int *p, i64 i) { return p[i]; }
__device__ __forceinline__ i64 ldval(const i64 *p, i64 i) { return p[i]; }
__device__ __forceinline__ u8 ldval(const u8 *p, i64 i) { return p[i]; }
__device__ __forceinline__ void stval(float *p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void stval(u16 *p, i64 i, float v) { p[i] = f2h(v); }
__device__ __forceinline__ void stval(int *p, i64 i, int v) { p[i] = v; }
__device__ __forceinline__ void stval(i64 *p, i64 i, i64 v) { p[i] = v; }
__device__ __forceinline__ void stval(u8 *p, i64 i, u8 v) { p[i] = v; }

// Element i of an int32 or int64 index tensor, as int64.
__device__ __forceinline__ i64 load_index(u64 idx, int is_i64, i64 i) {
  return is_i64 ? ((const i64 *)idx)[i] : (i64)((const int *)idx)[i];
}

// 16 bytes of neighbouring elements (8 float16 or 4 float32 values; the
// address aligned to 16 bytes): one load or store instruction per thread,
// which a memory-bound kernel needs to approach the bandwidth (two-byte
// accesses reached about a third of it on an H200).
#define VEC16(T) ((int)(16 / sizeof(T)))
__device__ __forceinline__ void ld16(const u16 *p, float *v) {
  const uint4 b = *(const uint4 *)p;
  const u32 w[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    v[2 * e] = h2f((u16)(w[e] & 0xffff));
    v[2 * e + 1] = h2f((u16)(w[e] >> 16));
  }
}
__device__ __forceinline__ void ld16(const float *p, float *v) {
  const float4 b = *(const float4 *)p;
  v[0] = b.x;
  v[1] = b.y;
  v[2] = b.z;
  v[3] = b.w;
}
__device__ __forceinline__ void st16(u16 *p, const float *v) {
  u32 w[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) w[e] = (u32)f2h(v[2 * e]) | ((u32)f2h(v[2 * e + 1]) << 16);
  *(uint4 *)p = make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ void st16(float *p, const float *v) {
  *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
}

// The offset of linear index `i` of an array of dims `d` in a tensor whose
// strides along those dims are `s` (0 where broadcast, negative allowed).
__device__ __forceinline__ i64 offset_of(i64 i, const Dims &d, const i64 *s) {
  i64 o = 0;
  if ((u64)i < 0x80000000ULL) {
    // 32-bit division: 64-bit division is emulated, several times slower.
    // Once the remaining index is below a dim, it is that coordinate and
    // every outer one is 0.
    unsigned r = (unsigned)i;
    for (int k = d.rank - 1; k >= 0 && r != 0; --k) {
      i64 n = d.d[k];
      if ((u64)n > r) {
        o += (i64)r * s[k];
        break;
      }
      unsigned q = r / (unsigned)n;
      o += (i64)(r - q * (unsigned)n) * s[k];
      r = q;
    }
    return o;
  }
  for (int k = d.rank - 1; k >= 0; --k) {
    i64 n = d.d[k];
    i64 c = i % n;
    i /= n;
    o += c * s[k];
  }
  return o;
}

// (i / inner) % count, in 32-bit arithmetic where i allows.
__device__ __forceinline__ i64 channel_of(i64 i, i64 inner, i64 count) {
  if ((u64)i < 0x80000000ULL) {
    unsigned r = (unsigned)i;
    if ((u64)inner > r) return 0;
    r /= (unsigned)inner;
    if ((u64)count > r) return r;
    return r % (unsigned)count;
  }
  return (i / inner) % count;
}

#define GRID_STRIDE(i, n)                                                      \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);            \
       i += (i64)blockDim.x * gridDim.x)

#define ROW_STRIDE(r, rows) for (i64 r = blockIdx.x; r < (rows); r += gridDim.x)

__device__ __forceinline__ void report(u64 err, int bits) {
  atomicOr((int *)err, bits);
}

// Block-wide reductions over BLOCK threads (blockDim.x must be BLOCK).
template <typename T, typename F>
__device__ __forceinline__ T block_reduce(T v, F f, T *shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) {
      shared[threadIdx.x] = f(shared[threadIdx.x], shared[threadIdx.x + s]);
    }
    __syncthreads();
  }
  T r = shared[0];
  __syncthreads();
  return r;
}

// Elements of 1, 2, 4 and 8 bytes, for kernels that only move data, and
// 16-byte units (one vector load and store) for those that move runs.
struct B1 { u8 v; };
struct B2 { u16 v; };
struct B4 { u32 v; };
struct B8 { u64 v; };
struct B16 { uint4 v; };

// Activations of element-wise kernels and of convolution epilogues.
// Codes (Activation in the IR, plus HardSwish and Identity for epilogues).
#define A_RELU 0
#define A_SIGMOID 1
#define A_TANH 2
#define A_LEAKY_RELU 3
#define A_ELU 4
#define A_SELU 5
#define A_SOFTSIGN 6
#define A_SOFTPLUS 7
#define A_CLIP 8
#define A_HARD_SIGMOID 9
#define A_SCALED_TANH 10
#define A_THRESHOLDED_RELU 11
#define A_GELU_ERF 12
#define A_GELU_TANH 13
#define A_HARD_SWISH 14
#define A_IDENTITY 15

__device__ __forceinline__ float activate(int op, float a, float b, float x) {
  switch (op) {
  case A_RELU: return fmaxf(x, 0.0f);
  case A_SIGMOID: return 1.0f / (1.0f + expf(-x));
  case A_TANH: return tanhf(x);
  case A_LEAKY_RELU: return x >= 0.0f ? x : a * x;
  case A_ELU: return x >= 0.0f ? x : a * (expf(x) - 1.0f);
  case A_SELU: return x > 0.0f ? b * x : b * a * (expf(x) - 1.0f);
  case A_SOFTSIGN: return x / (1.0f + fabsf(x));
  case A_SOFTPLUS: {
    float z = b * x;
    return a * (fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))));
  }
  case A_CLIP: return fminf(fmaxf(x, a), b);
  case A_HARD_SIGMOID: return fminf(fmaxf(a * x + b, 0.0f), 1.0f);
  case A_SCALED_TANH: return a * tanhf(b * x);
  case A_THRESHOLDED_RELU: return x > a ? x : 0.0f;
  case A_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  case A_GELU_TANH: {
    const float c = 0.7978846f;
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
  }
  case A_HARD_SWISH: return x * fminf(fmaxf(a * x + b, 0.0f), 1.0f);
  default: return x;
  }
}
