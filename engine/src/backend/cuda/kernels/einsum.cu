// Einsum by direct summation over every summed letter's range, products
// and sums in float64 as on the cpu: exact enough, and fast enough for
// the small contractions models use it for.
#define MAX_OPS 4
#define MAX_LETTERS 12

struct EinsumParams {
  u64 out;
  u64 ops[MAX_OPS];
  i64 n_out, inner;
  int nops, nout, nletters, dtype;  // dtype: T_* of cast.cu's codes
  i64 sizes[MAX_LETTERS];
  i64 strides[MAX_OPS][MAX_LETTERS];
};
static_assert(sizeof(EinsumParams) == 552, "EinsumParams layout");

#define E_F32 0
#define E_F16 1
#define E_I32 2
#define E_I64 3
#define E_U8 4

__device__ __forceinline__ double e_load(int t, u64 p, i64 i) {
  switch (t) {
  case E_F32: return ((const float *)p)[i];
  case E_F16: return h2f(((const u16 *)p)[i]);
  case E_I32: return ((const int *)p)[i];
  case E_I64: return (double)((const i64 *)p)[i];
  default: return ((const u8 *)p)[i];
  }
}

// Rust's saturating float-to-int conversions (NaN to 0).
__device__ __forceinline__ double sat(double v, double lo, double hi) {
  if (isnan(v)) return 0.0;
  v = trunc(v);
  return v < lo ? lo : (v > hi ? hi : v);
}

extern "C" __global__ void einsum_sum(EinsumParams p) {
  GRID_STRIDE(o, p.n_out) {
    i64 idx[MAX_LETTERS];
    i64 rem = o;
    for (int l = p.nout - 1; l >= 0; --l) {
      idx[l] = rem % p.sizes[l];
      rem /= p.sizes[l];
    }
    double acc = 0.0;
    for (i64 t = 0; t < p.inner; ++t) {
      i64 r = t;
      for (int l = p.nletters - 1; l >= p.nout; --l) {
        idx[l] = r % p.sizes[l];
        r /= p.sizes[l];
      }
      double prod = 1.0;
      for (int k = 0; k < p.nops; ++k) {
        i64 off = 0;
        for (int l = 0; l < p.nletters; ++l) off += idx[l] * p.strides[k][l];
        prod *= e_load(p.dtype, p.ops[k], off);
      }
      acc += prod;
    }
    switch (p.dtype) {
    case E_F32: ((float *)p.out)[o] = (float)acc; break;
    case E_F16: ((u16 *)p.out)[o] = d2h(acc); break;
    case E_I32: ((int *)p.out)[o] = (int)sat(acc, -2147483648.0, 2147483647.0); break;
    case E_I64: ((i64 *)p.out)[o] = (i64)acc; break;
    default: ((u8 *)p.out)[o] = (u8)sat(acc, 0.0, 255.0); break;
    }
  }
}
