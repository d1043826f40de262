// Data movement, by element size only: strided copies (transposes,
// concatenation, in-bounds slices, broadcasts), copies through per-axis
// index tables (slices with fill, wrap, clamp or reflect; padding; nearest
// resizes), and gathers.

// dst[dst_offset + sum(idx_k * dst_strides[k])] =
//   src[src_offset + sum(idx_k * src_strides[k])] over every index of dims.
struct CopyParams {
  u64 dst, src;
  i64 n;
  i64 dst_offset, src_offset;
  Dims dims;
  i64 dst_strides[MAX_RANK];
  i64 src_strides[MAX_RANK];
};
static_assert(sizeof(CopyParams) == 240, "CopyParams layout");

template <typename T>
__device__ void copy_strided(const CopyParams &p) {
  T *dst = (T *)p.dst;
  const T *src = (const T *)p.src;
  GRID_STRIDE(i, p.n) {
    dst[p.dst_offset + offset_of(i, p.dims, p.dst_strides)] =
        src[p.src_offset + offset_of(i, p.dims, p.src_strides)];
  }
}

extern "C" __global__ void copy_strided_1(CopyParams p) { copy_strided<B1>(p); }
extern "C" __global__ void copy_strided_2(CopyParams p) { copy_strided<B2>(p); }
extern "C" __global__ void copy_strided_4(CopyParams p) { copy_strided<B4>(p); }
extern "C" __global__ void copy_strided_8(CopyParams p) { copy_strided<B8>(p); }

// Concatenation of up to CONCAT_MAX inputs in one launch: the output seen
// as [outer, total, inner], this launch writing its inputs' span of the
// axis from `first` on; input j covers [start[j], start[j + 1]) of the
// span and is dense [outer, start[j + 1] - start[j], inner]. (One launch
// per input cost a densenet121 concatenation of 25 inputs 25 launches.)
#define CONCAT_MAX 32
struct ConcatParams {
  u64 dst;
  i64 n;  // outer * span * inner
  i64 outer, total, inner, first, span;
  int count;
  int pad;
  u64 src[CONCAT_MAX];
  i64 start[CONCAT_MAX + 1];
};
static_assert(sizeof(ConcatParams) == 584, "ConcatParams layout");

// I: the index type, 32-bit where the output allows (64-bit division is
// emulated, several times slower).
template <typename T, typename I>
__device__ void concat_in(const ConcatParams &p) {
  T *dst = (T *)p.dst;
  const I inner = (I)p.inner, span = (I)p.span;
  GRID_STRIDE(k, p.n) {
    I i = (I)k;
    I in = i % inner;
    I r = i / inner;
    I t = r % span;
    I o = r / span;
    int j = 0;
    while (j + 1 < p.count && p.start[j + 1] <= (i64)t) ++j;
    I s0 = (I)p.start[j];
    I e = (I)p.start[j + 1] - s0;
    const T *src = (const T *)p.src[j];
    dst[((i64)o * p.total + p.first + t) * p.inner + in] = src[((i64)o * e + (t - s0)) * p.inner + in];
  }
}

template <typename T>
__device__ void concat(const ConcatParams &p) {
  if (p.n < 0x80000000LL) {
    concat_in<T, unsigned>(p);
  } else {
    concat_in<T, i64>(p);
  }
}

extern "C" __global__ void concat_1(ConcatParams p) { concat<B1>(p); }
extern "C" __global__ void concat_2(ConcatParams p) { concat<B2>(p); }
extern "C" __global__ void concat_4(ConcatParams p) { concat<B4>(p); }
extern "C" __global__ void concat_8(ConcatParams p) { concat<B8>(p); }
extern "C" __global__ void concat_16(ConcatParams p) { concat<B16>(p); }

// A dense output of `dims` whose coordinate c along axis k reads source
// index tables[table_offset[k] + c] along that axis (-1: the fill value);
// the source's strides are src_strides.
struct TableParams {
  u64 dst, src, tables;
  i64 n;
  u64 fill;  // the fill value's bits, in the element's size
  Dims dims;
  i64 table_offset[MAX_RANK];
  i64 src_strides[MAX_RANK];
};
static_assert(sizeof(TableParams) == 240, "TableParams layout");

template <typename T>
__device__ void copy_table(const TableParams &p) {
  T *dst = (T *)p.dst;
  const T *src = (const T *)p.src;
  const i64 *tables = (const i64 *)p.tables;
  T fill;
  fill.v = (decltype(fill.v))p.fill;
  GRID_STRIDE(i, p.n) {
    i64 rem = i, off = 0;
    bool filled = false;
    for (int k = p.dims.rank - 1; k >= 0; --k) {
      i64 c = rem % p.dims.d[k];
      rem /= p.dims.d[k];
      i64 s = tables[p.table_offset[k] + c];
      if (s < 0) filled = true;
      off += s * p.src_strides[k];
    }
    dst[i] = filled ? fill : src[off];
  }
}

extern "C" __global__ void copy_table_1(TableParams p) { copy_table<B1>(p); }
extern "C" __global__ void copy_table_2(TableParams p) { copy_table<B2>(p); }
extern "C" __global__ void copy_table_4(TableParams p) { copy_table<B4>(p); }
extern "C" __global__ void copy_table_8(TableParams p) { copy_table<B8>(p); }

// Gather along an axis: data viewed as [outer, axis_len, inner], indices
// flattened to n_idx values; output [outer, n_idx, inner].
struct GatherParams {
  u64 out, data, idx, err;
  i64 n, outer, axis_len, inner, n_idx;
  int idx_i64;
  int pad;
};
static_assert(sizeof(GatherParams) == 80, "GatherParams layout");

template <typename T>
__device__ void gather(const GatherParams &p) {
  T *out = (T *)p.out;
  const T *data = (const T *)p.data;
  GRID_STRIDE(i, p.n) {
    i64 in = i % p.inner;
    i64 j = (i / p.inner) % p.n_idx;
    i64 o = i / (p.inner * p.n_idx);
    i64 k = load_index(p.idx, p.idx_i64, j);
    if (k < 0) k += p.axis_len;
    if (k < 0 || k >= p.axis_len) {
      report(p.err, ERR_INDEX);
      T zero;
      zero.v = 0;
      out[i] = zero;
      continue;
    }
    out[i] = data[(o * p.axis_len + k) * p.inner + in];
  }
}

extern "C" __global__ void gather_1(GatherParams p) { gather<B1>(p); }
extern "C" __global__ void gather_2(GatherParams p) { gather<B2>(p); }
extern "C" __global__ void gather_4(GatherParams p) { gather<B4>(p); }
extern "C" __global__ void gather_8(GatherParams p) { gather<B8>(p); }

// GatherElements: the output has the indices' dims; coordinate `axis`
// comes from the index value, the others are the output's own.
struct GatherElementsParams {
  u64 out, data, idx, err;
  i64 n;
  Dims dims;  // the indices' (and output's) dims
  i64 data_dims[MAX_RANK];
  i64 data_strides[MAX_RANK];
  int axis;
  int idx_i64;
};
static_assert(sizeof(GatherElementsParams) == 248, "GatherElementsParams layout");

template <typename T>
__device__ void gather_elements(const GatherElementsParams &p) {
  T *out = (T *)p.out;
  const T *data = (const T *)p.data;
  GRID_STRIDE(i, p.n) {
    i64 rem = i, off = 0;
    bool bad = false;
    for (int k = p.dims.rank - 1; k >= 0; --k) {
      i64 c = rem % p.dims.d[k];
      rem /= p.dims.d[k];
      if (k == p.axis) {
        c = load_index(p.idx, p.idx_i64, i);
        if (c < 0) c += p.data_dims[k];
      }
      if (c < 0 || c >= p.data_dims[k]) bad = true;
      off += c * p.data_strides[k];
    }
    if (bad) {
      report(p.err, ERR_INDEX);
      T zero;
      zero.v = 0;
      out[i] = zero;
    } else {
      out[i] = data[off];
    }
  }
}

extern "C" __global__ void gather_elements_1(GatherElementsParams p) { gather_elements<B1>(p); }
extern "C" __global__ void gather_elements_2(GatherElementsParams p) { gather_elements<B2>(p); }
extern "C" __global__ void gather_elements_4(GatherElementsParams p) { gather_elements<B4>(p); }
extern "C" __global__ void gather_elements_8(GatherElementsParams p) { gather_elements<B8>(p); }
