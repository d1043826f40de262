// Scatter: ONNX ScatterElements (element mode) and ScatterND (nd mode).
// The output already holds the data (copied on the stream before); each
// update element is written at its target, or combined with what is
// there. Without a reduction the writes run in parallel (ONNX leaves
// duplicate indices undefined then); with one, a single thread applies
// the updates in order, as the cpu backend does, so that duplicates
// combine exactly. An index out of range sets the layer's error word and
// its update is skipped.

struct ScatterParams {
  u64 out, idx, upd, err;
  i64 n;      // update elements
  i64 inner;  // nd: elements of one slice (the data's dims from k on)
  int k;      // nd: index tuple length
  int axis;   // element: the axis the indices name positions along
  int idx_i64;
  int reduction;  // 0 none, 1 add, 2 mul, 3 max, 4 min
  int nd;
  int pad;
  Dims udims;  // element: the updates' (and indices') dims
  i64 data_dims[MAX_RANK];
  i64 data_strides[MAX_RANK];
};
static_assert(sizeof(ScatterParams) == 272, "ScatterParams layout");

// The data offset update element i goes to, or -1 when its index is out
// of range.
__device__ i64 scatter_target(const ScatterParams &p, i64 i) {
  if (p.nd) {
    const i64 t = i / p.inner, e = i % p.inner;
    i64 off = 0;
    for (int j = 0; j < p.k; ++j) {
      i64 c = load_index(p.idx, p.idx_i64, t * p.k + j);
      if (c < 0) c += p.data_dims[j];
      if (c < 0 || c >= p.data_dims[j]) return -1;
      off += c * p.data_strides[j];
    }
    return off + e;
  }
  i64 off = 0, rest = i;
  for (int d = p.udims.rank - 1; d >= 0; --d) {
    const i64 n = p.udims.d[d];
    i64 c = rest % n;
    rest /= n;
    if (d == p.axis) {
      c = load_index(p.idx, p.idx_i64, i);
      if (c < 0) c += p.data_dims[d];
    }
    if (c < 0 || c >= p.data_dims[d]) return -1;
    off += c * p.data_strides[d];
  }
  return off;
}

template <typename T>
__device__ void scatter_set(const ScatterParams &p) {
  T *out = (T *)p.out;
  const T *upd = (const T *)p.upd;
  GRID_STRIDE(i, p.n) {
    const i64 o = scatter_target(p, i);
    if (o < 0) {
      report(p.err, ERR_INDEX);
      continue;
    }
    out[o] = upd[i];
  }
}

extern "C" __global__ void scatter_1(ScatterParams p) { scatter_set<B1>(p); }
extern "C" __global__ void scatter_2(ScatterParams p) { scatter_set<B2>(p); }
extern "C" __global__ void scatter_4(ScatterParams p) { scatter_set<B4>(p); }
extern "C" __global__ void scatter_8(ScatterParams p) { scatter_set<B8>(p); }

__device__ __forceinline__ float sc_combine(int r, float a, float b) {
  switch (r) {
  case 1: return a + b;
  case 2: return a * b;
  case 3: return (isnan(a) || isnan(b)) ? __int_as_float(0x7fc00000) : fmaxf(a, b);
  default: return (isnan(a) || isnan(b)) ? __int_as_float(0x7fc00000) : fminf(a, b);
  }
}
// Integers combined in 64 bits (A below); stored back truncated, so sums
// and products wrap in the element type.
__device__ __forceinline__ i64 sc_combine(int r, i64 a, i64 b) {
  switch (r) {
  case 1: return (i64)((u64)a + (u64)b);
  case 2: return (i64)((u64)a * (u64)b);
  case 3: return a > b ? a : b;
  default: return a < b ? a : b;
  }
}

template <typename T, typename A>
__device__ void scatter_reduce(const ScatterParams &p) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  T *out = (T *)p.out;
  const T *upd = (const T *)p.upd;
  for (i64 i = 0; i < p.n; ++i) {
    const i64 o = scatter_target(p, i);
    if (o < 0) {
      report(p.err, ERR_INDEX);
      continue;
    }
    const A r = sc_combine(p.reduction, (A)ldval(out, o), (A)ldval(upd, i));
    stval(out, o, (decltype(ldval(out, o)))r);
  }
}

extern "C" __global__ void scatter_reduce_f32(ScatterParams p) { scatter_reduce<float, float>(p); }
extern "C" __global__ void scatter_reduce_f16(ScatterParams p) { scatter_reduce<u16, float>(p); }
extern "C" __global__ void scatter_reduce_i32(ScatterParams p) { scatter_reduce<int, i64>(p); }
extern "C" __global__ void scatter_reduce_i64(ScatterParams p) { scatter_reduce<i64, i64>(p); }
extern "C" __global__ void scatter_reduce_u8(ScatterParams p) { scatter_reduce<u8, i64>(p); }
