// Depthwise 2-D convolution (one filter per channel: groups equal to the
// input and output channels) with the layer's bias, a fused residual and
// its activation in the same kernel. cuDNN's grouped kernels took 10-32 us
// for ConvNeXt's 7x7 layers on an H200 where the work is a few hundred
// thousand outputs of 49 taps each; here a thread computes four
// neighbouring outputs of a row, each filter tap loaded once for the four,
// and writes them once, with any padding (asymmetric too) read as zeros
// instead of staged.
//
// The input is read through its strides (either layout); the output and
// the residual are packed in the layout the kernel is named for:
// `depthwise` channels-first, `depthwise_cl` channels-last, where
// neighbouring threads take neighbouring channels so that every load and
// store of a warp is contiguous, V channels a thread (2 when the input is
// channels-last too and the channel count even: one 4-byte load of two
// float16 values, common.cuh's ldv).
struct DepthwiseParams {
  u64 out, x, w, bias, res;
  i64 items;  // threads' work items: see each kernel
  i64 xs_n, xs_c, xs_h, xs_w;  // the input's element strides
  int c, h, w_in, oh, ow;
  int kh, kw, sh, sw;
  int ph, pw, dh, dw;
  int op;
  float alpha, beta;
};
static_assert(sizeof(DepthwiseParams) == 144, "DepthwiseParams layout");

#define DW_TILE 4

// Channels-first output: an item is (n, c, oy, a tile of DW_TILE columns);
// items = N * C * OH * tiles. `w` holds the filters as [C, kh, kw] in T.
template <typename T>
__device__ void depthwise(const DepthwiseParams &p) {
  const i64 tiles = (p.ow + DW_TILE - 1) / DW_TILE;
  GRID_STRIDE(i, p.items) {
    const i64 r = i / tiles;
    const int ox0 = (int)(i - r * tiles) * DW_TILE;
    const int oy = (int)(r % p.oh);
    const i64 plane = r / p.oh;  // n * C + c
    const int c = (int)(plane % p.c);
    const i64 n = plane / p.c;
    const T *x = (const T *)p.x + n * p.xs_n + (i64)c * p.xs_c;
    const T *w = (const T *)p.w + (i64)c * p.kh * p.kw;
    float acc[DW_TILE];
#pragma unroll
    for (int t = 0; t < DW_TILE; ++t) acc[t] = 0.f;
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = oy * p.sh - p.ph + ky * p.dh;
      if (iy < 0 || iy >= p.h) continue;
      const T *row = x + (i64)iy * p.xs_h;
      for (int kx = 0; kx < p.kw; ++kx) {
        const float wv = ldf(w, ky * p.kw + kx);
        const int ix0 = ox0 * p.sw - p.pw + kx * p.dw;
#pragma unroll
        for (int t = 0; t < DW_TILE; ++t) {
          const int ix = ix0 + t * p.sw;
          if (ix >= 0 && ix < p.w_in) acc[t] += wv * ldf(row, (i64)ix * p.xs_w);
        }
      }
    }
    const float b = p.bias ? ((const float *)p.bias)[c] : 0.f;
    T *out = (T *)p.out + r * p.ow;
    const T *res = p.res ? (const T *)p.res + r * p.ow : (const T *)0;
#pragma unroll
    for (int t = 0; t < DW_TILE; ++t) {
      const int ox = ox0 + t;
      if (ox < p.ow) {
        float v = acc[t] + b;
        if (res) v += ldf(res, ox);
        stf(out, ox, activate(p.op, p.alpha, p.beta, v));
      }
    }
  }
}

extern "C" __global__ void depthwise_f32(DepthwiseParams p) { depthwise<float>(p); }
extern "C" __global__ void depthwise_f16(DepthwiseParams p) { depthwise<u16>(p); }

// Channels-last output: an item is (n, oy, a tile of DW_TILE columns, a
// group of V channels), the channel group fastest; items = N * OH * tiles
// * (C / V). `w` holds the filters as [kh, kw, C] in float32, so that a
// warp's filter loads are contiguous too. I: the index type, 32-bit where
// the items allow (64-bit division is emulated, several times slower).
struct ClItem {
  int c0, ox0, oy;
  i64 n;
};

template <int V, typename I>
__device__ __forceinline__ ClItem cl_item(const DepthwiseParams &p, I i) {
  const I groups = (I)(p.c / V);
  const I tiles = (I)((p.ow + DW_TILE - 1) / DW_TILE);
  ClItem it;
  it.c0 = (int)(i % groups) * V;
  const I r = i / groups;
  it.ox0 = (int)(r % tiles) * DW_TILE;
  const I r2 = r / tiles;
  it.oy = (int)(r2 % (I)p.oh);
  it.n = (i64)(r2 / (I)p.oh);
  return it;
}

// A thread's input at its batch element and first channel, and its
// accumulators zeroed.
template <typename T, int V>
__device__ __forceinline__ const T *cl_begin(const DepthwiseParams &p, const ClItem &it,
                                             float (&acc)[DW_TILE][V]) {
#pragma unroll
  for (int t = 0; t < DW_TILE; ++t)
#pragma unroll
    for (int v = 0; v < V; ++v) acc[t][v] = 0.f;
  return (const T *)p.x + it.n * p.xs_n + (i64)it.c0 * p.xs_c;
}

// Bias, residual and activation of a thread's outputs, and their stores.
template <typename T, int V>
__device__ __forceinline__ void cl_store(const DepthwiseParams &p, const ClItem &it,
                                         float (&acc)[DW_TILE][V]) {
  float b[V];
#pragma unroll
  for (int v = 0; v < V; ++v) b[v] = p.bias ? ((const float *)p.bias)[it.c0 + v] : 0.f;
  const i64 base = (it.n * p.oh + it.oy) * p.ow;
#pragma unroll
  for (int t = 0; t < DW_TILE; ++t) {
    const int ox = it.ox0 + t;
    if (ox >= p.ow) break;
    const i64 at = (base + ox) * p.c + it.c0;
    float rv[V];
    if (p.res) {
      ldv<V>((const T *)p.res + at, rv);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) rv[v] = 0.f;
    }
    float o[V];
#pragma unroll
    for (int v = 0; v < V; ++v) o[v] = activate(p.op, p.alpha, p.beta, acc[t][v] + b[v] + rv[v]);
    stv<V>((T *)p.out + at, o);
  }
}

// Any geometry: taps and strides as the parameters say.
template <typename T, int V, typename I>
__device__ void depthwise_cl_any(const DepthwiseParams &p) {
  const float *w = (const float *)p.w;
  GRID_STRIDE(k, p.items) {
    const ClItem it = cl_item<V, I>(p, (I)k);
    float acc[DW_TILE][V];
    const T *x = cl_begin<T, V>(p, it, acc);
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = it.oy * p.sh - p.ph + ky * p.dh;
      if (iy < 0 || iy >= p.h) continue;
      const T *row = x + (i64)iy * p.xs_h;
      for (int kx = 0; kx < p.kw; ++kx) {
        const float *wt = w + (i64)(ky * p.kw + kx) * p.c + it.c0;
        float wv[V];
#pragma unroll
        for (int v = 0; v < V; ++v) wv[v] = wt[v];
        const int ix0 = it.ox0 * p.sw - p.pw + kx * p.dw;
#pragma unroll
        for (int t = 0; t < DW_TILE; ++t) {
          const int ix = ix0 + t * p.sw;
          if (ix >= 0 && ix < p.w_in) {
            float xv[V];
            ldv<V>(row + (i64)ix * p.xs_w, xv);
#pragma unroll
            for (int v = 0; v < V; ++v) acc[t][v] += wv[v] * xv[v];
          }
        }
      }
    }
    cl_store<T, V>(p, it, acc);
  }
}

// A square K x K filter at stride S, undilated (MobileNet's 3x3, ConvNeXt's
// 7x7): fully unrolled, a row's input columns loaded once, all together,
// for the tile's outputs, so that the loads overlap instead of waiting
// one by one (the general loop above took 33 us for ConvNeXt's 14x14x384
// layers on an H200 at batch 1, latency-bound).
template <typename T, int V, int K, int S, typename I>
__device__ void depthwise_cl_fixed(const DepthwiseParams &p) {
  constexpr int NC = (DW_TILE - 1) * S + K;
  const float *w = (const float *)p.w;
  GRID_STRIDE(k, p.items) {
    const ClItem it = cl_item<V, I>(p, (I)k);
    float acc[DW_TILE][V];
    const T *x = cl_begin<T, V>(p, it, acc);
    const int ix0 = it.ox0 * S - p.pw;
#pragma unroll
    for (int ky = 0; ky < K; ++ky) {
      const int iy = it.oy * S - p.ph + ky;
      if (iy < 0 || iy >= p.h) continue;
      const T *row = x + (i64)iy * p.xs_h;
      float xv[NC][V];
#pragma unroll
      for (int j = 0; j < NC; ++j) {
        const int ix = ix0 + j;
        if (ix >= 0 && ix < p.w_in) {
          ldv<V>(row + (i64)ix * p.xs_w, xv[j]);
        } else {
#pragma unroll
          for (int v = 0; v < V; ++v) xv[j][v] = 0.f;
        }
      }
#pragma unroll
      for (int kx = 0; kx < K; ++kx) {
        const float *wt = w + (i64)(ky * K + kx) * p.c + it.c0;
        float wv[V];
#pragma unroll
        for (int v = 0; v < V; ++v) wv[v] = wt[v];
#pragma unroll
        for (int t = 0; t < DW_TILE; ++t)
#pragma unroll
          for (int v = 0; v < V; ++v) acc[t][v] += wv[v] * xv[t * S + kx][v];
      }
    }
    cl_store<T, V>(p, it, acc);
  }
}

template <typename T, int V, typename I>
__device__ void depthwise_cl_in(const DepthwiseParams &p) {
  const bool square = p.kh == p.kw && p.sh == p.sw && p.dh == 1 && p.dw == 1;
  const int geo = square ? p.kh * 10 + p.sh : 0;
  switch (geo) {
  case 31: depthwise_cl_fixed<T, V, 3, 1, I>(p); break;
  case 32: depthwise_cl_fixed<T, V, 3, 2, I>(p); break;
  case 51: depthwise_cl_fixed<T, V, 5, 1, I>(p); break;
  case 52: depthwise_cl_fixed<T, V, 5, 2, I>(p); break;
  case 71: depthwise_cl_fixed<T, V, 7, 1, I>(p); break;
  default: depthwise_cl_any<T, V, I>(p); break;
  }
}

template <typename T, int V>
__device__ void depthwise_cl(const DepthwiseParams &p) {
  if (p.items < 0x80000000LL) {
    depthwise_cl_in<T, V, unsigned>(p);
  } else {
    depthwise_cl_in<T, V, i64>(p);
  }
}

extern "C" __global__ void depthwise_cl1_f32(DepthwiseParams p) { depthwise_cl<float, 1>(p); }
extern "C" __global__ void depthwise_cl1_f16(DepthwiseParams p) { depthwise_cl<u16, 1>(p); }
extern "C" __global__ void depthwise_cl2_f32(DepthwiseParams p) { depthwise_cl<float, 2>(p); }
extern "C" __global__ void depthwise_cl2_f16(DepthwiseParams p) { depthwise_cl<u16, 2>(p); }
