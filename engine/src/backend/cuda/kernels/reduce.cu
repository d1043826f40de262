// Layers that combine many elements: Reduce, Softmax, Normalization,
// Cumulative and TopK. Sums of float data accumulate in float64, as the
// cpu backend's do, so means and variances over large planes agree with
// it; the stored results are float32 or float16.

// ---- Reduce --------------------------------------------------------------

#define R_SUM 0
#define R_PROD 1
#define R_MAX 2
#define R_MIN 3
#define R_AVG 4

// One block per output: the output's position in the kept dims gives its
// base offset, the reduced dims the elements it combines.
struct ReduceParams {
  u64 out, x;
  i64 n_out, count;
  Dims keep;
  i64 keep_strides[MAX_RANK];
  Dims red;
  i64 red_strides[MAX_RANK];
  int op;
  int pad;
};
static_assert(sizeof(ReduceParams) == 312, "ReduceParams layout");

struct SumD { __device__ double operator()(double a, double b) const { return a + b; } };
struct ProdF { __device__ float operator()(float a, float b) const { return a * b; } };
// Max and min keep a NaN once they meet one, as the cpu fold does.
struct MaxF {
  __device__ float operator()(float a, float b) const { return (b > a || isnan(b)) ? b : a; }
};
struct MinF {
  __device__ float operator()(float a, float b) const { return (b < a || isnan(b)) ? b : a; }
};

template <typename T, typename A, typename F>
__device__ A fold_row(const ReduceParams &p, i64 base, A init, F f, A *shared) {
  const T *x = (const T *)p.x;
  A acc = init;
  for (i64 j = threadIdx.x; j < p.count; j += BLOCK) {
    acc = f(acc, (A)ldf(x, base + offset_of(j, p.red, p.red_strides)));
  }
  return block_reduce(acc, f, shared);
}

template <typename T>
__device__ void reduce_float(const ReduceParams &p) {
  __shared__ double sd[BLOCK];
  __shared__ float sf[BLOCK];
  ROW_STRIDE(r, p.n_out) {
    i64 base = offset_of(r, p.keep, p.keep_strides);
    float v;
    switch (p.op) {
    case R_SUM: v = (float)fold_row<T, double>(p, base, 0.0, SumD(), sd); break;
    case R_AVG: v = (float)(fold_row<T, double>(p, base, 0.0, SumD(), sd) / (double)p.count); break;
    case R_PROD: v = fold_row<T, float>(p, base, 1.0f, ProdF(), sf); break;
    case R_MAX: v = fold_row<T, float>(p, base, -__int_as_float(0x7f800000), MaxF(), sf); break;
    default: v = fold_row<T, float>(p, base, __int_as_float(0x7f800000), MinF(), sf); break;
    }
    if (threadIdx.x == 0) stf((T *)p.out, r, v);
  }
}

extern "C" __global__ void reduce_f32(ReduceParams p) { reduce_float<float>(p); }
extern "C" __global__ void reduce_f16(ReduceParams p) { reduce_float<u16>(p); }

// Columns: for a reduction whose innermost input dim is kept, a block
// takes 32 neighbouring outputs, one per lane, and its warps split the
// reduced elements between them: at every step a warp reads 32
// neighbouring elements (a channels-last global pooling, [N, H, W, C] over
// H and W, read C-strided by one block per output was SqueezeNet's
// slowest layer; one thread per output left the GPU nearly idle). A
// single reduced dim (the host merges contiguous ones) needs no division
// per element.
#define COL_LANES 32
#define COL_WARPS (BLOCK / COL_LANES)

template <typename T, typename A, typename F>
__device__ A fold_col(const ReduceParams &p, i64 base, i64 count, A init, F f, A *shared) {
  const T *x = (const T *)p.x;
  const int lane = threadIdx.x % COL_LANES, warp = threadIdx.x / COL_LANES;
  A acc = init;
  if (p.red.rank == 1) {
    for (i64 j = warp; j < count; j += COL_WARPS) acc = f(acc, (A)ldf(x, base + j * p.red_strides[0]));
  } else {
    for (i64 j = warp; j < count; j += COL_WARPS)
      acc = f(acc, (A)ldf(x, base + offset_of(j, p.red, p.red_strides)));
  }
  shared[threadIdx.x] = acc;
  __syncthreads();
  if (warp == 0) {
    for (int w = 1; w < COL_WARPS; ++w) acc = f(acc, shared[w * COL_LANES + lane]);
  }
  __syncthreads();
  return acc;
}

template <typename T>
__device__ void reduce_cols(const ReduceParams &p) {
  __shared__ double sd[BLOCK];
  __shared__ float sf[BLOCK];
  const i64 groups = (p.n_out + COL_LANES - 1) / COL_LANES;
  ROW_STRIDE(g, groups) {
    const i64 r = g * COL_LANES + threadIdx.x % COL_LANES;
    // Lanes past the last output fold nothing but still meet the barriers.
    const bool live = r < p.n_out;
    const i64 base = live ? offset_of(r, p.keep, p.keep_strides) : 0;
    const i64 count = live ? p.count : 0;
    float v;
    switch (p.op) {
    case R_SUM: v = (float)fold_col<T, double>(p, base, count, 0.0, SumD(), sd); break;
    case R_AVG: v = (float)(fold_col<T, double>(p, base, count, 0.0, SumD(), sd) / (double)p.count); break;
    case R_PROD: v = fold_col<T, float>(p, base, count, 1.0f, ProdF(), sf); break;
    case R_MAX: v = fold_col<T, float>(p, base, count, -__int_as_float(0x7f800000), MaxF(), sf); break;
    default: v = fold_col<T, float>(p, base, count, __int_as_float(0x7f800000), MinF(), sf); break;
    }
    if (live && threadIdx.x < COL_LANES) stf((T *)p.out, r, v);
  }
}

extern "C" __global__ void reduce_cols_f32(ReduceParams p) { reduce_cols<float>(p); }
extern "C" __global__ void reduce_cols_f16(ReduceParams p) { reduce_cols<u16>(p); }

struct SumI { __device__ i64 operator()(i64 a, i64 b) const { return (i64)((u64)a + (u64)b); } };
struct ProdI { __device__ i64 operator()(i64 a, i64 b) const { return (i64)((u64)a * (u64)b); } };
struct MaxI { __device__ i64 operator()(i64 a, i64 b) const { return a > b ? a : b; } };
struct MinI { __device__ i64 operator()(i64 a, i64 b) const { return a < b ? a : b; } };

template <typename T, typename F>
__device__ i64 fold_row_int(const ReduceParams &p, i64 base, i64 init, F f, i64 *shared) {
  const T *x = (const T *)p.x;
  i64 acc = init;
  for (i64 j = threadIdx.x; j < p.count; j += BLOCK) {
    acc = f(acc, (i64)x[base + offset_of(j, p.red, p.red_strides)]);
  }
  return block_reduce(acc, f, shared);
}

// Integers reduce in 64 bits, wrapping, then narrow: the cpu backend's way.
template <typename T>
__device__ void reduce_int(const ReduceParams &p) {
  __shared__ i64 si[BLOCK];
  ROW_STRIDE(r, p.n_out) {
    i64 base = offset_of(r, p.keep, p.keep_strides);
    i64 v;
    switch (p.op) {
    case R_SUM: v = fold_row_int<T>(p, base, 0, SumI(), si); break;
    case R_AVG:
      v = fold_row_int<T>(p, base, 0, SumI(), si);
      v = p.count == 0 ? 0 : v / p.count;
      break;
    case R_PROD: v = fold_row_int<T>(p, base, 1, ProdI(), si); break;
    case R_MAX: v = fold_row_int<T>(p, base, (i64)0x8000000000000000LL, MaxI(), si); break;
    default: v = fold_row_int<T>(p, base, 0x7fffffffffffffffLL, MinI(), si); break;
    }
    if (threadIdx.x == 0) ((T *)p.out)[r] = (T)v;
  }
}

extern "C" __global__ void reduce_i32(ReduceParams p) { reduce_int<int>(p); }
extern "C" __global__ void reduce_i64(ReduceParams p) { reduce_int<i64>(p); }
extern "C" __global__ void reduce_u8(ReduceParams p) { reduce_int<u8>(p); }

// Max of bools is "any", min is "all".
extern "C" __global__ void reduce_bool(ReduceParams p) {
  __shared__ i64 si[BLOCK];
  ROW_STRIDE(r, p.n_out) {
    i64 base = offset_of(r, p.keep, p.keep_strides);
    i64 v = p.op == R_MAX ? fold_row_int<u8>(p, base, 0, MaxI(), si)
                          : fold_row_int<u8>(p, base, 1, MinI(), si);
    if (threadIdx.x == 0) ((u8 *)p.out)[r] = v ? 1 : 0;
  }
}

// ---- Softmax -------------------------------------------------------------

// Rows of `len` elements `inner` apart; one block per row. The maximum is
// subtracted first and the sum is float32, as on the cpu.
struct SoftmaxParams {
  u64 out, x;
  i64 rows, len, inner;
};
static_assert(sizeof(SoftmaxParams) == 40, "SoftmaxParams layout");

struct MaxPlain { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct SumF { __device__ float operator()(float a, float b) const { return a + b; } };

template <typename T>
__device__ void softmax(const SoftmaxParams &p) {
  __shared__ float sf[BLOCK];
  const T *x = (const T *)p.x;
  T *out = (T *)p.out;
  ROW_STRIDE(r, p.rows) {
    i64 base = (r / p.inner) * p.len * p.inner + r % p.inner;
    float m = -__int_as_float(0x7f800000);
    for (i64 i = threadIdx.x; i < p.len; i += BLOCK) m = fmaxf(m, ldf(x, base + i * p.inner));
    m = block_reduce(m, MaxPlain(), sf);
    float s = 0.0f;
    for (i64 i = threadIdx.x; i < p.len; i += BLOCK) s += expf(ldf(x, base + i * p.inner) - m);
    s = block_reduce(s, SumF(), sf);
    for (i64 i = threadIdx.x; i < p.len; i += BLOCK) {
      i64 at = base + i * p.inner;
      stf(out, at, expf(ldf(x, at) - m) / s);
    }
  }
}

extern "C" __global__ void softmax_f32(SoftmaxParams p) { softmax<float>(p); }
extern "C" __global__ void softmax_f16(SoftmaxParams p) { softmax<u16>(p); }

// ---- Normalization -------------------------------------------------------

// A block (a warp, for small groups) per statistics group. A group's
// position in the key dims gives its base offsets (in x, scale and bias),
// the reduced dims those of its elements; the strides are linear in both, so grouped channels work
// as any other dim. Mean and variance are float64, two passes.
struct NormParams {
  u64 out, x, scale, bias;
  i64 groups, count;
  float eps;
  int pad;
  Dims key;
  i64 key_x[MAX_RANK];
  i64 key_s[MAX_RANK];
  i64 key_b[MAX_RANK];
  Dims red;
  i64 red_x[MAX_RANK];
  i64 red_s[MAX_RANK];
  i64 red_b[MAX_RANK];
};
static_assert(sizeof(NormParams) == 584, "NormParams layout");

// Normalizes group g, its elements taken by this thread from `first` on,
// `step` apart; `sum` adds a double over every thread sharing the group
// (a block or a warp).
template <typename T, typename Sum>
__device__ __forceinline__ void normalize_group(const NormParams &p, i64 g, i64 first, i64 step,
                                                Sum sum) {
  const T *x = (const T *)p.x;
  const T *sc = (const T *)p.scale;
  const T *bi = (const T *)p.bias;
  T *out = (T *)p.out;
  const double n = (double)(p.count > 0 ? p.count : 1);
  i64 bx = offset_of(g, p.key, p.key_x);
  i64 bs = offset_of(g, p.key, p.key_s);
  i64 bb = offset_of(g, p.key, p.key_b);
  double s = 0.0;
  for (i64 j = first; j < p.count; j += step) s += (double)ldf(x, bx + offset_of(j, p.red, p.red_x));
  double mean = sum(s) / n;
  double v = 0.0;
  for (i64 j = first; j < p.count; j += step) {
    double d = (double)ldf(x, bx + offset_of(j, p.red, p.red_x)) - mean;
    v += d * d;
  }
  double inv = 1.0 / sqrt(sum(v) / n + (double)p.eps);
  for (i64 j = first; j < p.count; j += step) {
    i64 ox = bx + offset_of(j, p.red, p.red_x);
    float y = (float)(((double)ldf(x, ox) - mean) * inv);
    y = y * ldf(sc, bs + offset_of(j, p.red, p.red_s)) + ldf(bi, bb + offset_of(j, p.red, p.red_b));
    stf(out, ox, y);
  }
}

// A sum over the block's threads (every thread of the block calls it).
struct BlockSum {
  double *shared;
  __device__ double operator()(double v) const { return block_reduce(v, SumD(), shared); }
};

// A sum over the warp's lanes (every lane calls it).
struct WarpSum {
  __device__ double operator()(double v) const {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
  }
};

// One block per group.
template <typename T>
__device__ void normalization(const NormParams &p) {
  __shared__ double sd[BLOCK];
  ROW_STRIDE(g, p.groups) { normalize_group<T>(p, g, threadIdx.x, BLOCK, BlockSum{sd}); }
}

extern "C" __global__ void norm_f32(NormParams p) { normalization<float>(p); }
extern "C" __global__ void norm_f16(NormParams p) { normalization<u16>(p); }

// One warp per group, for small groups (LayerNorm over the channels of
// ConvNeXt or a transformer: 96-1024 values): the block-wide version kept
// 256 threads and its barriers on 96 values, most of the block idle. Every
// lane of a warp takes the same group, so the shuffles see the whole warp.
template <typename T>
__device__ void normalization_warp(const NormParams &p) {
  const i64 warps = (i64)gridDim.x * (BLOCK / 32);
  for (i64 g = (i64)blockIdx.x * (BLOCK / 32) + (threadIdx.x >> 5); g < p.groups; g += warps) {
    normalize_group<T>(p, g, threadIdx.x & 31, 32, WarpSum{});
  }
}

extern "C" __global__ void norm_warp_f32(NormParams p) { normalization_warp<float>(p); }
extern "C" __global__ void norm_warp_f16(NormParams p) { normalization_warp<u16>(p); }

// Rows of `cols` contiguous values (LayerNorm over trailing dims), each
// normalized by `tpr` threads (a power of two, 1..BLOCK) holding V of its
// values in registers: x is read once and the statistics are two float32
// passes over the registers. The kernels above walk strided dims in
// float64 and read x three times, latency-bound where rows are few and
// long (ConvNeXt's last stage, 49 rows of 768: 42 us a call on an H200).
struct RowNormParams {
  u64 out, x, scale, bias;
  i64 rows;
  int cols, tpr;
  float eps;
  int scale_step, bias_step, pad;
};
static_assert(sizeof(RowNormParams) == 64, "RowNormParams layout");

// The sum of v over the tpr threads of a row (a row is an aligned run of
// tpr threads); every thread of the block calls it. Every thread of a row
// adds the warps' partial sums in the same order, so all get one value.
__device__ __forceinline__ float row_sum(float v, int tpr, float *shared) {
  for (int o = (tpr < 32 ? tpr : 32) >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (tpr <= 32) return v;
  const int warp = threadIdx.x >> 5, per_row = tpr >> 5;
  __syncthreads();  // the previous call's partial sums are read
  if ((threadIdx.x & 31) == 0) shared[warp] = v;
  __syncthreads();
  const int first = warp / per_row * per_row;
  float s = 0.f;
  for (int w = 0; w < per_row; ++w) s += shared[first + w];
  return s;
}

template <typename T, int V>
__device__ void row_normalization(const RowNormParams &p) {
  __shared__ float shared[BLOCK / 32];
  const T *x = (const T *)p.x;
  const T *sc = (const T *)p.scale;
  const T *bi = (const T *)p.bias;
  T *out = (T *)p.out;
  const int rows_per_block = BLOCK / p.tpr;
  const int t = threadIdx.x & (p.tpr - 1);
  const float n = (float)p.cols;
  // Block-uniform loop: every thread reaches every barrier of row_sum.
  for (i64 base = (i64)blockIdx.x * rows_per_block; base < p.rows;
       base += (i64)gridDim.x * rows_per_block) {
    const i64 row = base + threadIdx.x / p.tpr;
    const bool live = row < p.rows;
    const i64 o = row * p.cols;
    float v[V];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int j = t + k * p.tpr;
      v[k] = (live && j < p.cols) ? ldf(x, o + j) : 0.f;
      s += v[k];
    }
    const float mean = row_sum(s, p.tpr, shared) / n;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float d = v[k] - mean;
      if (t + k * p.tpr < p.cols) q += d * d;
    }
    const float inv = 1.f / sqrtf(row_sum(q, p.tpr, shared) / n + p.eps);
    if (!live) continue;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int j = t + k * p.tpr;
      if (j < p.cols) {
        const float y = (v[k] - mean) * inv;
        stf(out, o + j, y * ldf(sc, (i64)j * p.scale_step) + ldf(bi, (i64)j * p.bias_step));
      }
    }
  }
}

// Spelled out: the launcher finds a kernel's source by its name.
extern "C" __global__ void row_norm1_f32(RowNormParams p) { row_normalization<float, 1>(p); }
extern "C" __global__ void row_norm1_f16(RowNormParams p) { row_normalization<u16, 1>(p); }
extern "C" __global__ void row_norm2_f32(RowNormParams p) { row_normalization<float, 2>(p); }
extern "C" __global__ void row_norm2_f16(RowNormParams p) { row_normalization<u16, 2>(p); }
extern "C" __global__ void row_norm4_f32(RowNormParams p) { row_normalization<float, 4>(p); }
extern "C" __global__ void row_norm4_f16(RowNormParams p) { row_normalization<u16, 4>(p); }
extern "C" __global__ void row_norm8_f32(RowNormParams p) { row_normalization<float, 8>(p); }
extern "C" __global__ void row_norm8_f16(RowNormParams p) { row_normalization<u16, 8>(p); }

// ---- Cumulative ----------------------------------------------------------

// One thread per line of `n` elements `inner` apart.
struct CumParams {
  u64 out, x;
  i64 lines, n, inner;
  int exclusive, reverse, product, pad;
};
static_assert(sizeof(CumParams) == 56, "CumParams layout");


template <typename T>
__device__ __forceinline__ T wrap_add(T a, T b) {
  return (T)((u64)(i64)a + (u64)(i64)b);
}

// Additions per element type for the scan (common.cuh loads and stores).
__device__ __forceinline__ float add(float a, float b) { return a + b; }
__device__ __forceinline__ int add(int a, int b) { return wrap_add<int>(a, b); }
__device__ __forceinline__ i64 add(i64 a, i64 b) { return wrap_add<i64>(a, b); }
__device__ __forceinline__ u8 add(u8 a, u8 b) { return (u8)(a + b); }
__device__ __forceinline__ float mul(float a, float b) { return a * b; }
__device__ __forceinline__ int mul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ i64 mul(i64 a, i64 b) { return (i64)((u64)a * (u64)b); }
__device__ __forceinline__ u8 mul(u8 a, u8 b) { return (u8)(a * b); }

template <typename T, typename A>
__device__ void cumulative(const CumParams &p) {
  const T *x = (const T *)p.x;
  T *out = (T *)p.out;
  GRID_STRIDE(l, p.lines) {
    i64 o = l / p.inner, in = l % p.inner;
    A acc = p.product ? (A)1 : (A)0;
    for (i64 s = 0; s < p.n; ++s) {
      i64 j = p.reverse ? p.n - 1 - s : s;
      i64 at = (o * p.n + j) * p.inner + in;
      A v = (A)ldval(x, at);
      if (p.exclusive) {
        stval(out, at, acc);
        acc = p.product ? mul(acc, v) : add(acc, v);
      } else {
        acc = p.product ? mul(acc, v) : add(acc, v);
        stval(out, at, acc);
      }
    }
  }
}

extern "C" __global__ void cumsum_f32(CumParams p) { cumulative<float, float>(p); }
extern "C" __global__ void cumsum_f16(CumParams p) { cumulative<u16, float>(p); }
extern "C" __global__ void cumsum_i32(CumParams p) { cumulative<int, int>(p); }
extern "C" __global__ void cumsum_i64(CumParams p) { cumulative<i64, i64>(p); }
extern "C" __global__ void cumsum_u8(CumParams p) { cumulative<u8, u8>(p); }

// ---- TopK ----------------------------------------------------------------

// One thread per element of a row: its rank is how many elements of the
// row come before it (larger, or equal at a lower index; NaN counts as the
// largest value either way, as on the cpu), and the first k ranks are
// written. Values compare as float64, like the cpu's.
struct TopkParams {
  u64 values, indices, x;
  i64 rows, n, inner, k;
  int largest;
  int pad;
};
static_assert(sizeof(TopkParams) == 64, "TopkParams layout");

__device__ __forceinline__ double keyval(const float *p, i64 i) { return p[i]; }
__device__ __forceinline__ double keyval(const u16 *p, i64 i) { return h2f(p[i]); }
__device__ __forceinline__ double keyval(const int *p, i64 i) { return p[i]; }
__device__ __forceinline__ double keyval(const i64 *p, i64 i) { return (double)p[i]; }
__device__ __forceinline__ double keyval(const u8 *p, i64 i) { return p[i]; }

__device__ __forceinline__ bool before(double a, i64 ia, double b, i64 ib, int largest) {
  bool an = isnan(a), bn = isnan(b);
  if (an || bn) {
    if (an && bn) return ia < ib;
    // NaN is the largest value: first when largest, last otherwise.
    return largest ? an : bn;
  }
  if (a == b) return ia < ib;
  return largest ? a > b : a < b;
}

template <typename T>
__device__ void topk(const TopkParams &p) {
  const T *x = (const T *)p.x;
  GRID_STRIDE(e, p.rows * p.n) {
    i64 r = e / p.n, j = e % p.n;
    i64 o = r / p.inner, in = r % p.inner;
    i64 at = (o * p.n + j) * p.inner + in;
    double v = keyval(x, at);
    i64 rank = 0;
    for (i64 t = 0; t < p.n && rank < p.k; ++t) {
      if (t != j && before(keyval(x, (o * p.n + t) * p.inner + in), t, v, j, p.largest)) ++rank;
    }
    if (rank < p.k) {
      i64 dst = (o * p.k + rank) * p.inner + in;
      ((T *)p.values)[dst] = x[at];
      ((int *)p.indices)[dst] = (int)j;
    }
  }
}

extern "C" __global__ void topk_f32(TopkParams p) { topk<float>(p); }
extern "C" __global__ void topk_f16(TopkParams p) { topk<u16>(p); }
extern "C" __global__ void topk_i32(TopkParams p) { topk<int>(p); }
extern "C" __global__ void topk_i64(TopkParams p) { topk<i64>(p); }
extern "C" __global__ void topk_u8(TopkParams p) { topk<u8>(p); }
