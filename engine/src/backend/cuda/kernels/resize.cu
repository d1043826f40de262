// Resize through per-axis tap tables the host computes with the IR's own
// coordinate rules (ir::axis_map): each output coordinate along an axis
// reads up to four input positions with weights; an N-D output element is
// the weighted sum over every combination of its axes' taps.
struct Tap {
  i64 idx[4];
  float w[4];
  int n;
  int outside;  // tf_crop_and_resize: the position lies outside the input
};
static_assert(sizeof(Tap) == 56, "Tap layout");

struct ResizeParams {
  u64 out, x, taps;
  i64 n;
  Dims dims;  // the output's
  i64 x_strides[MAX_RANK];
  i64 tap_offset[MAX_RANK];
  float extrapolation;
  int use_extrapolation;
};
static_assert(sizeof(ResizeParams) == 240, "ResizeParams layout");

template <typename T>
__device__ void resize_mix(const ResizeParams &p) {
  const T *x = (const T *)p.x;
  const Tap *taps = (const Tap *)p.taps;
  GRID_STRIDE(i, p.n) {
    const Tap *t[MAX_RANK];
    i64 rem = i, combos = 1;
    bool outside = false;
    for (int k = p.dims.rank - 1; k >= 0; --k) {
      i64 c = rem % p.dims.d[k];
      rem /= p.dims.d[k];
      t[k] = &taps[p.tap_offset[k] + c];
      combos *= t[k]->n;
      outside = outside || t[k]->outside;
    }
    if (p.use_extrapolation && outside) {
      stf((T *)p.out, i, p.extrapolation);
      continue;
    }
    float acc = 0.0f;
    for (i64 c = 0; c < combos; ++c) {
      i64 r = c, off = 0;
      float w = 1.0f;
      for (int k = p.dims.rank - 1; k >= 0; --k) {
        int j = (int)(r % t[k]->n);
        r /= t[k]->n;
        off += t[k]->idx[j] * p.x_strides[k];
        w *= t[k]->w[j];
      }
      acc += w * ldf(x, off);
    }
    stf((T *)p.out, i, acc);
  }
}

extern "C" __global__ void resize_f32(ResizeParams p) { resize_mix<float>(p); }
extern "C" __global__ void resize_f16(ResizeParams p) { resize_mix<u16>(p); }

// Nearest neighbour moves elements as they are, whatever their type.
template <typename T>
__device__ void resize_nearest(const ResizeParams &p) {
  const T *x = (const T *)p.x;
  const Tap *taps = (const Tap *)p.taps;
  GRID_STRIDE(i, p.n) {
    i64 rem = i, off = 0;
    for (int k = p.dims.rank - 1; k >= 0; --k) {
      i64 c = rem % p.dims.d[k];
      rem /= p.dims.d[k];
      off += taps[p.tap_offset[k] + c].idx[0] * p.x_strides[k];
    }
    ((T *)p.out)[i] = x[off];
  }
}

extern "C" __global__ void resize_nearest_1(ResizeParams p) { resize_nearest<B1>(p); }
extern "C" __global__ void resize_nearest_2(ResizeParams p) { resize_nearest<B2>(p); }
extern "C" __global__ void resize_nearest_4(ResizeParams p) { resize_nearest<B4>(p); }
extern "C" __global__ void resize_nearest_8(ResizeParams p) { resize_nearest<B8>(p); }
