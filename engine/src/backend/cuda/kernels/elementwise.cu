// Element-wise layers: ElementWise (with broadcasting), Unary, Activation,
// ParametricRelu, Scale, Select, Cast, and the bias + activation epilogue
// of convolutions. Semantics follow the cpu backend exactly (its
// integer division by zero gives 0, Max/Min propagate NaN, casts truncate
// and saturate), so that either backend computes the same network.

// ---- ElementWise ---------------------------------------------------------

// Op codes (ElementWiseOp in the IR, and ParametricRelu).
#define OP_SUM 0
#define OP_PROD 1
#define OP_MAX 2
#define OP_MIN 3
#define OP_SUB 4
#define OP_DIV 5
#define OP_POW 6
#define OP_FLOORDIV 7
#define OP_AND 8
#define OP_OR 9
#define OP_XOR 10
#define OP_EQUAL 11
#define OP_GREATER 12
#define OP_LESS 13
#define OP_PRELU 14
#define OP_SHL 15
#define OP_SHR 16

struct BinaryParams {
  u64 out, a, b;
  i64 n;
  Dims dims;  // the output's (broadcast) dims
  i64 sa[MAX_RANK];
  i64 sb[MAX_RANK];
  int op;
  int pad;
};
static_assert(sizeof(BinaryParams) == 240, "BinaryParams layout");

__device__ __forceinline__ bool is_compare(int op) {
  return op == OP_EQUAL || op == OP_GREATER || op == OP_LESS;
}

__device__ __forceinline__ float float_op(int op, float x, float y) {
  switch (op) {
  case OP_SUM: return x + y;
  case OP_PROD: return x * y;
  case OP_MAX: return (isnan(x) || isnan(y)) ? __int_as_float(0x7fc00000) : fmaxf(x, y);
  case OP_MIN: return (isnan(x) || isnan(y)) ? __int_as_float(0x7fc00000) : fminf(x, y);
  case OP_SUB: return x - y;
  case OP_DIV: return x / y;
  case OP_POW: return powf(x, y);
  case OP_FLOORDIV: return floorf(x / y);
  case OP_PRELU: return x >= 0.0f ? x : x * y;
  default: return 0.0f;
  }
}

template <typename T>
__device__ __forceinline__ bool compare(int op, T x, T y) {
  switch (op) {
  case OP_EQUAL: return x == y;
  case OP_GREATER: return x > y;
  default: return x < y;
  }
}

// Integer arithmetic in 64 bits on values of a `bits`-bit type (signed
// ones sign-extended, unsigned zero-extended), wrapping; division by zero
// gives 0; a shift count outside 0..bits gives 0, or the sign shifting
// right (ONNX's BitShift).
__device__ __forceinline__ i64 int_op(int op, i64 x, i64 y, int bits) {
  const bool in_range = y >= 0 && y < bits;
  switch (op) {
  case OP_AND: return x & y;
  case OP_OR: return x | y;
  case OP_XOR: return x ^ y;
  case OP_SHL: return in_range ? (i64)((u64)x << y) : 0;
  case OP_SHR: return x >> (in_range ? y : 63);
  case OP_SUM: return (i64)((u64)x + (u64)y);
  case OP_PROD: return (i64)((u64)x * (u64)y);
  case OP_MAX: return x > y ? x : y;
  case OP_MIN: return x < y ? x : y;
  case OP_SUB: return (i64)((u64)x - (u64)y);
  case OP_DIV:
    if (y == 0 || (x == (i64)0x8000000000000000LL && y == -1)) return 0;
    return x / y;
  case OP_FLOORDIV: {
    if (y == 0 || (x == (i64)0x8000000000000000LL && y == -1)) return 0;
    i64 q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) q -= 1;
    return q;
  }
  case OP_POW: {
    if (y < 0) {
      if (x == 1) return 1;
      if (x == -1) return (y % 2 == 0) ? 1 : -1;
      return 0;
    }
    u64 e = y > 0xffffffffLL ? 0xffffffffULL : (u64)y;
    u64 base = (u64)x, r = 1;
    while (e) {
      if (e & 1) r *= base;
      base *= base;
      e >>= 1;
    }
    return (i64)r;
  }
  default: return 0;
  }
}

template <typename T>
__device__ void binary_float(const BinaryParams &p) {
  const T *a = (const T *)p.a;
  const T *b = (const T *)p.b;
  GRID_STRIDE(i, p.n) {
    float x = ldf(a, offset_of(i, p.dims, p.sa));
    float y = ldf(b, offset_of(i, p.dims, p.sb));
    if (is_compare(p.op)) {
      ((u8 *)p.out)[i] = compare(p.op, x, y) ? 1 : 0;
    } else {
      stf((T *)p.out, i, float_op(p.op, x, y));
    }
  }
}

// Both operands of the output's dims, packed (a residual addition): 16
// bytes of each a thread and no index arithmetic. n is a multiple of the
// vector and every pointer 16-byte aligned (the host checks); never a
// comparison (its output is u8).
template <typename T>
__device__ void binary_flat(const BinaryParams &p) {
  constexpr int V = VEC16(T);
  const T *a = (const T *)p.a;
  const T *b = (const T *)p.b;
  GRID_STRIDE(k, p.n / V) {
    float x[V], y[V];
    ld16(a + k * V, x);
    ld16(b + k * V, y);
#pragma unroll
    for (int e = 0; e < V; ++e) x[e] = float_op(p.op, x[e], y[e]);
    st16((T *)p.out + k * V, x);
  }
}

template <typename T>
__device__ void binary_int(const BinaryParams &p) {
  const T *a = (const T *)p.a;
  const T *b = (const T *)p.b;
  GRID_STRIDE(i, p.n) {
    T x = a[offset_of(i, p.dims, p.sa)];
    T y = b[offset_of(i, p.dims, p.sb)];
    if (is_compare(p.op)) {
      ((u8 *)p.out)[i] = compare(p.op, x, y) ? 1 : 0;
    } else {
      ((T *)p.out)[i] = (T)int_op(p.op, (i64)x, (i64)y, 8 * (int)sizeof(T));
    }
  }
}

__device__ void binary_bool(const BinaryParams &p) {
  const u8 *a = (const u8 *)p.a;
  const u8 *b = (const u8 *)p.b;
  GRID_STRIDE(i, p.n) {
    bool x = a[offset_of(i, p.dims, p.sa)] != 0;
    bool y = b[offset_of(i, p.dims, p.sb)] != 0;
    bool r;
    switch (p.op) {
    case OP_AND: r = x && y; break;
    case OP_OR: r = x || y; break;
    case OP_XOR: r = x != y; break;
    case OP_EQUAL: r = x == y; break;
    case OP_GREATER: r = x && !y; break;
    default: r = !x && y; break;
    }
    ((u8 *)p.out)[i] = r ? 1 : 0;
  }
}

extern "C" __global__ void ew_binary_f32(BinaryParams p) { binary_float<float>(p); }
extern "C" __global__ void ew_binary_f16(BinaryParams p) { binary_float<u16>(p); }
extern "C" __global__ void ew_binary_flat_f32(BinaryParams p) { binary_flat<float>(p); }
extern "C" __global__ void ew_binary_flat_f16(BinaryParams p) { binary_flat<u16>(p); }
extern "C" __global__ void ew_binary_i32(BinaryParams p) { binary_int<int>(p); }
extern "C" __global__ void ew_binary_i64(BinaryParams p) { binary_int<i64>(p); }
extern "C" __global__ void ew_binary_u8(BinaryParams p) { binary_int<u8>(p); }
extern "C" __global__ void ew_binary_bool(BinaryParams p) { binary_bool(p); }

// ---- Unary ---------------------------------------------------------------

// Op codes (UnaryOp in the IR).
#define U_EXP 0
#define U_LOG 1
#define U_SQRT 2
#define U_RECIP 3
#define U_ABS 4
#define U_NEG 5
#define U_SIN 6
#define U_COS 7
#define U_TAN 8
#define U_SINH 9
#define U_COSH 10
#define U_ASIN 11
#define U_ACOS 12
#define U_ATAN 13
#define U_ASINH 14
#define U_ACOSH 15
#define U_ATANH 16
#define U_CEIL 17
#define U_FLOOR 18
#define U_ERF 19
#define U_NOT 20
#define U_SIGN 21
#define U_ROUND 22
#define U_ISINF 23
#define U_ISNAN 24

struct UnaryParams {
  u64 out, x;
  i64 n;
  int op;
  int pad;
};
static_assert(sizeof(UnaryParams) == 32, "UnaryParams layout");

__device__ __forceinline__ float unary_float(int op, float x) {
  switch (op) {
  case U_EXP: return expf(x);
  case U_LOG: return logf(x);
  case U_SQRT: return sqrtf(x);
  case U_RECIP: return 1.0f / x;
  case U_ABS: return fabsf(x);
  case U_NEG: return -x;
  case U_SIN: return sinf(x);
  case U_COS: return cosf(x);
  case U_TAN: return tanf(x);
  case U_SINH: return sinhf(x);
  case U_COSH: return coshf(x);
  case U_ASIN: return asinf(x);
  case U_ACOS: return acosf(x);
  case U_ATAN: return atanf(x);
  case U_ASINH: return asinhf(x);
  case U_ACOSH: return acoshf(x);
  case U_ATANH: return atanhf(x);
  case U_CEIL: return ceilf(x);
  case U_FLOOR: return floorf(x);
  case U_ERF: return erff(x);
  case U_SIGN: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
  case U_ROUND: return rintf(x);
  default: return x;
  }
}

template <typename T>
__device__ void unary_float_kernel(const UnaryParams &p) {
  const T *x = (const T *)p.x;
  GRID_STRIDE(i, p.n) {
    float v = ldf(x, i);
    if (p.op == U_ISINF) {
      ((u8 *)p.out)[i] = isinf(v) ? 1 : 0;
    } else if (p.op == U_ISNAN) {
      ((u8 *)p.out)[i] = isnan(v) ? 1 : 0;
    } else {
      stf((T *)p.out, i, unary_float(p.op, v));
    }
  }
}

// Abs, Neg and Sign of integers, in 64 bits and wrapping.
template <typename T>
__device__ void unary_int_kernel(const UnaryParams &p) {
  const T *x = (const T *)p.x;
  GRID_STRIDE(i, p.n) {
    i64 v = (i64)x[i];
    i64 r;
    switch (p.op) {
    case U_ABS: r = v < 0 ? (i64)(0ULL - (u64)v) : v; break;
    case U_NEG: r = (i64)(0ULL - (u64)v); break;
    default: r = v > 0 ? 1 : (v < 0 ? -1 : 0); break;
    }
    ((T *)p.out)[i] = (T)r;
  }
}

extern "C" __global__ void ew_unary_f32(UnaryParams p) { unary_float_kernel<float>(p); }
extern "C" __global__ void ew_unary_f16(UnaryParams p) { unary_float_kernel<u16>(p); }
extern "C" __global__ void ew_unary_i32(UnaryParams p) { unary_int_kernel<int>(p); }
extern "C" __global__ void ew_unary_i64(UnaryParams p) { unary_int_kernel<i64>(p); }
extern "C" __global__ void ew_unary_u8(UnaryParams p) { unary_int_kernel<u8>(p); }

extern "C" __global__ void ew_not_bool(UnaryParams p) {
  const u8 *x = (const u8 *)p.x;
  GRID_STRIDE(i, p.n) { ((u8 *)p.out)[i] = x[i] ? 0 : 1; }
}

// ---- Activation ----------------------------------------------------------

// The codes and activate() are in common.cuh (convolutions apply them too).

struct ActParams {
  u64 out, x;
  i64 n;
  int op;
  float alpha, beta;
  int pad;
};
static_assert(sizeof(ActParams) == 40, "ActParams layout");

template <typename T>
__device__ void act_kernel(const ActParams &p) {
  const T *x = (const T *)p.x;
  GRID_STRIDE(i, p.n) { stf((T *)p.out, i, activate(p.op, p.alpha, p.beta, ldf(x, i))); }
}

extern "C" __global__ void ew_act_f32(ActParams p) { act_kernel<float>(p); }
extern "C" __global__ void ew_act_f16(ActParams p) { act_kernel<u16>(p); }

// out = act(y * scale[channel] + bias[channel] + res) (res: a residual of
// y's dims): a convolution's epilogue, in place when out is y, and a Scale
// layer with its activation. The tensor is [outer, channels, inner]; scale
// and bias are float32; scale, bias and res may be absent.
struct BiasActParams {
  u64 out, y, bias, res;
  i64 n, channels, inner;
  int op;
  float alpha, beta;
  int pad;
  u64 scale;
};
static_assert(sizeof(BiasActParams) == 80, "BiasActParams layout");

template <typename T>
__device__ void bias_act_kernel(const BiasActParams &p) {
  const T *y = (const T *)p.y;
  const T *res = (const T *)p.res;
  const float *bias = (const float *)p.bias;
  const float *scale = (const float *)p.scale;
  GRID_STRIDE(i, p.n) {
    float v = ldf(y, i);
    if (scale) v *= scale[channel_of(i, p.inner, p.channels)];
    if (bias) v += bias[channel_of(i, p.inner, p.channels)];
    if (res) v += ldf(res, i);
    stf((T *)p.out, i, activate(p.op, p.alpha, p.beta, v));
  }
}

extern "C" __global__ void ew_bias_act_f32(BiasActParams p) { bias_act_kernel<float>(p); }
extern "C" __global__ void ew_bias_act_f16(BiasActParams p) { bias_act_kernel<u16>(p); }

// The same two elements a thread, for an even count and pointers aligned
// to two elements: one wide load and store instead of two narrow ones
// (a ConvNeXt MLP's bias and GELU over 8x56x56x384 values at batch 8).
template <typename T>
__device__ void bias_act2_kernel(const BiasActParams &p) {
  const T *y = (const T *)p.y;
  const T *res = (const T *)p.res;
  const float *bias = (const float *)p.bias;
  const float *scale = (const float *)p.scale;
  GRID_STRIDE(k, p.n / 2) {
    const i64 i = 2 * k;
    float v[2], r[2] = {0.f, 0.f};
    ldv<2>(y + i, v);
    if (res) ldv<2>(res + i, r);
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if (scale) v[e] *= scale[channel_of(i + e, p.inner, p.channels)];
      if (bias) v[e] += bias[channel_of(i + e, p.inner, p.channels)];
      v[e] = activate(p.op, p.alpha, p.beta, v[e] + r[e]);
    }
    stv<2>((T *)p.out + i, v);
  }
}

extern "C" __global__ void ew_bias_act2_f32(BiasActParams p) { bias_act2_kernel<float>(p); }
extern "C" __global__ void ew_bias_act2_f16(BiasActParams p) { bias_act2_kernel<u16>(p); }

// The same 16 bytes a thread (V elements; n a multiple of V, pointers
// 16-byte aligned). ROWS: the bias runs along the packed last dim (inner
// 1, a Linear's columns or a channels-last tensor's channels; channels a
// multiple of V), so a thread's V elements take V consecutive bias values,
// found with one division; else inner is a multiple of V (or there are no
// coefficients) and the V elements share one channel. The scale, when
// present, is read as the bias is. OP: the activation when
// known at compile time (-1: p.op's, switched on per element), so that the
// common ones (identity, ReLU, GELU) run without a branch per element.
template <typename T, bool ROWS, int OP>
__device__ void bias_act_vec_body(const BiasActParams &p) {
  constexpr int V = VEC16(T);
  const T *y = (const T *)p.y;
  const T *res = (const T *)p.res;
  const float *bias = (const float *)p.bias;
  const float *scale = (const float *)p.scale;
  GRID_STRIDE(k, p.n / V) {
    const i64 i = k * V;
    float v[V], r[V];
    ld16(y + i, v);
    if (res) {
      ld16(res + i, r);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) r[e] = 0.f;
    }
    if (scale) {
      if (ROWS) {
        const float *sc = scale + channel_of(i, 1, p.channels);
#pragma unroll
        for (int e = 0; e < V; e += 4) {
          const float4 q = *(const float4 *)(sc + e);
          v[e] *= q.x;
          v[e + 1] *= q.y;
          v[e + 2] *= q.z;
          v[e + 3] *= q.w;
        }
      } else {
        const float sc = scale[channel_of(i, p.inner, p.channels)];
#pragma unroll
        for (int e = 0; e < V; ++e) v[e] *= sc;
      }
    }
    if (bias) {
      if (ROWS) {
        const float *bc = bias + channel_of(i, 1, p.channels);
#pragma unroll
        for (int e = 0; e < V; e += 4) {
          const float4 q = *(const float4 *)(bc + e);
          v[e] += q.x;
          v[e + 1] += q.y;
          v[e + 2] += q.z;
          v[e + 3] += q.w;
        }
      } else {
        const float bc = bias[channel_of(i, p.inner, p.channels)];
#pragma unroll
        for (int e = 0; e < V; ++e) v[e] += bc;
      }
    }
#pragma unroll
    for (int e = 0; e < V; ++e) v[e] = activate(OP < 0 ? p.op : OP, p.alpha, p.beta, v[e] + r[e]);
    st16((T *)p.out + i, v);
  }
}

template <typename T, bool ROWS>
__device__ void bias_act_vec_kernel(const BiasActParams &p) {
  switch (p.op) {
  case A_IDENTITY: bias_act_vec_body<T, ROWS, A_IDENTITY>(p); break;
  case A_RELU: bias_act_vec_body<T, ROWS, A_RELU>(p); break;
  case A_GELU_ERF: bias_act_vec_body<T, ROWS, A_GELU_ERF>(p); break;
  default: bias_act_vec_body<T, ROWS, -1>(p); break;
  }
}

extern "C" __global__ void ew_bias_act_v_f32(BiasActParams p) { bias_act_vec_kernel<float, false>(p); }
extern "C" __global__ void ew_bias_act_v_f16(BiasActParams p) { bias_act_vec_kernel<u16, false>(p); }
extern "C" __global__ void ew_bias_act_vr_f32(BiasActParams p) { bias_act_vec_kernel<float, true>(p); }
extern "C" __global__ void ew_bias_act_vr_f16(BiasActParams p) { bias_act_vec_kernel<u16, true>(p); }

// ---- Scale ---------------------------------------------------------------

// act((x * scale + shift) ^ power), one coefficient per group of `inner`
// elements, groups cycling with period `groups`; coefficients are float32
// and each may be absent (0). Scales without a power run as BiasActParams.
struct ScaleParams {
  u64 out, x, scale, shift, power;
  i64 n, groups, inner;
  int op;
  float alpha, beta;
  int pad;
};
static_assert(sizeof(ScaleParams) == 80, "ScaleParams layout");

template <typename T>
__device__ void scale_kernel(const ScaleParams &p) {
  const T *x = (const T *)p.x;
  const float *sc = (const float *)p.scale;
  const float *sh = (const float *)p.shift;
  const float *pw = (const float *)p.power;
  GRID_STRIDE(i, p.n) {
    i64 c = channel_of(i, p.inner, p.groups);
    float y = ldf(x, i);
    if (sc) y *= sc[c];
    if (sh) y += sh[c];
    if (pw) y = powf(y, pw[c]);
    stf((T *)p.out, i, activate(p.op, p.alpha, p.beta, y));
  }
}

extern "C" __global__ void ew_scale_f32(ScaleParams p) { scale_kernel<float>(p); }
extern "C" __global__ void ew_scale_f16(ScaleParams p) { scale_kernel<u16>(p); }

// ---- Select --------------------------------------------------------------

struct SelectParams {
  u64 out, cond, a, b;
  i64 n;
  Dims dims;
  i64 sc[MAX_RANK];
  i64 sa[MAX_RANK];
  i64 sb[MAX_RANK];
};
static_assert(sizeof(SelectParams) == 304, "SelectParams layout");

template <typename T>
__device__ void select_kernel(const SelectParams &p) {
  const u8 *c = (const u8 *)p.cond;
  const T *a = (const T *)p.a;
  const T *b = (const T *)p.b;
  GRID_STRIDE(i, p.n) {
    bool take = c[offset_of(i, p.dims, p.sc)] != 0;
    ((T *)p.out)[i] = take ? a[offset_of(i, p.dims, p.sa)] : b[offset_of(i, p.dims, p.sb)];
  }
}

extern "C" __global__ void ew_select_1(SelectParams p) { select_kernel<B1>(p); }
extern "C" __global__ void ew_select_2(SelectParams p) { select_kernel<B2>(p); }
extern "C" __global__ void ew_select_4(SelectParams p) { select_kernel<B4>(p); }
extern "C" __global__ void ew_select_8(SelectParams p) { select_kernel<B8>(p); }

// ---- Cast ----------------------------------------------------------------

// Type codes, as DataType in the IR.
#define T_F32 0
#define T_F16 1
#define T_I32 2
#define T_I64 3
#define T_U8 4
#define T_BOOL 5

struct CastParams {
  u64 out, x;
  i64 n;
  int from, to;
};
static_assert(sizeof(CastParams) == 32, "CastParams layout");

__device__ __forceinline__ double load_f64(int t, u64 p, i64 i) {
  switch (t) {
  case T_F32: return (double)((const float *)p)[i];
  case T_F16: return (double)h2f(((const u16 *)p)[i]);
  case T_I32: return (double)((const int *)p)[i];
  case T_I64: return (double)((const i64 *)p)[i];
  default: return (double)((const u8 *)p)[i];
  }
}

__device__ __forceinline__ i64 load_i64(int t, u64 p, i64 i) {
  switch (t) {
  case T_F32: return (i64)((const float *)p)[i];  // truncates, saturates, NaN -> 0
  case T_F16: return (i64)h2f(((const u16 *)p)[i]);
  case T_I32: return (i64)((const int *)p)[i];
  case T_I64: return ((const i64 *)p)[i];
  default: return (i64)((const u8 *)p)[i];
  }
}

__device__ __forceinline__ bool is_int_type(int t) {
  return t == T_I32 || t == T_I64 || t == T_U8 || t == T_BOOL;
}

// The cpu backend's Tensor::cast, element for element.
extern "C" __global__ void ew_cast(CastParams p) {
  GRID_STRIDE(i, p.n) {
    switch (p.to) {
    case T_F32:
      if (p.from == T_I64) {
        ((float *)p.out)[i] = (float)((const i64 *)p.x)[i];
      } else {
        ((float *)p.out)[i] = (float)load_f64(p.from, p.x, i);
      }
      break;
    case T_F16:
      ((u16 *)p.out)[i] = d2h(load_f64(p.from, p.x, i));
      break;
    case T_I64:
      ((i64 *)p.out)[i] = load_i64(p.from, p.x, i);
      break;
    case T_I32:
      if (p.from == T_I64) {
        ((int *)p.out)[i] = (int)((const i64 *)p.x)[i];
      } else if (p.from == T_F32) {
        ((int *)p.out)[i] = (int)((const float *)p.x)[i];
      } else {
        ((int *)p.out)[i] = (int)load_f64(p.from, p.x, i);
      }
      break;
    case T_U8:
      if (is_int_type(p.from)) {
        ((u8 *)p.out)[i] = (u8)load_i64(p.from, p.x, i);
      } else {
        ((u8 *)p.out)[i] = (u8)(i64)load_f64(p.from, p.x, i);
      }
      break;
    default:
      ((u8 *)p.out)[i] = load_f64(p.from, p.x, i) != 0.0 ? 1 : 0;
      break;
    }
  }
}
