// Depthwise 2-D convolution (one filter per channel: groups equal to the
// input and output channels), channels-first, with the layer's bias, a
// fused residual and its activation in the same kernel. cuDNN's grouped
// kernels took 10-32 us for ConvNeXt's 7x7 layers on an H200 where the
// work is a few hundred thousand outputs of 49 taps each; here a thread
// computes four neighbouring outputs of a row, each filter tap loaded once
// for the four, and writes them once, with any padding (asymmetric too)
// read as zeros instead of staged.
struct DepthwiseParams {
  u64 out, x, w, bias, res;
  i64 rows;  // N * C * OH
  int c, h, w_in, oh, ow;
  int kh, kw, sh, sw;
  int ph, pw, dh, dw;
  int op;
  float alpha, beta;
  int pad;
};
static_assert(sizeof(DepthwiseParams) == 120, "DepthwiseParams layout");

#define DW_TILE 4

template <typename T>
__device__ void depthwise(const DepthwiseParams &p) {
  const i64 tiles = (p.ow + DW_TILE - 1) / DW_TILE;
  GRID_STRIDE(i, p.rows * tiles) {
    const i64 r = i / tiles;
    const int ox0 = (int)(i - r * tiles) * DW_TILE;
    const int oy = (int)(r % p.oh);
    const i64 plane = r / p.oh;  // n * C + c
    const int c = (int)(plane % p.c);
    const T *x = (const T *)p.x + plane * p.h * p.w_in;
    const T *w = (const T *)p.w + (i64)c * p.kh * p.kw;
    float acc[DW_TILE];
#pragma unroll
    for (int t = 0; t < DW_TILE; ++t) acc[t] = 0.f;
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = oy * p.sh - p.ph + ky * p.dh;
      if (iy < 0 || iy >= p.h) continue;
      const T *row = x + (i64)iy * p.w_in;
      for (int kx = 0; kx < p.kw; ++kx) {
        const float wv = ldf(w, ky * p.kw + kx);
        const int ix0 = ox0 * p.sw - p.pw + kx * p.dw;
#pragma unroll
        for (int t = 0; t < DW_TILE; ++t) {
          const int ix = ix0 + t * p.sw;
          if (ix >= 0 && ix < p.w_in) acc[t] += wv * ldf(row, ix);
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
