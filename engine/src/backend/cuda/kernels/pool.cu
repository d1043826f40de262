// Pooling over 1 to 3 spatial dims (the host pads shorter windows with
// leading 1s): max ignores padding (a window entirely in it gives -inf),
// average divides by the product over axes of each axis's count, of input
// positions when padding is excluded, else of positions inside the padded
// extent, as PyTorch, ONNX and the cpu backend count. With `channels` > 0
// the tensors are stored channels-last ([N, spatial..., C]): neighbouring
// threads take neighbouring channels, so their reads coalesce.
struct PoolParams {
  u64 out, x;
  i64 n;
  int is_max;
  int exclude;
  i64 in[3], out_d[3], k[3], s[3], pre[3], post[3];
  i64 channels;
};
static_assert(sizeof(PoolParams) == 184, "PoolParams layout");

// I: the index type, 32-bit when the input and output allow (64-bit
// division is emulated: SqueezeNet's first max pool at batch 8 took 49 us
// in 64-bit indices).
template <typename T, typename I>
__device__ void pool_in(const PoolParams &p) {
  const T *x = (const T *)p.x;
  const I cs = p.channels > 0 ? (I)p.channels : 1;  // element stride
  const I in0 = (I)p.in[0], in1 = (I)p.in[1], in2 = (I)p.in[2];
  GRID_STRIDE(k, p.n) {
    I rem = (I)k;
    I ch = 0;
    if (p.channels > 0) {
      ch = rem % cs;
      rem /= cs;
    }
    I o[3];
    for (int a = 2; a >= 0; --a) {
      I d = (I)p.out_d[a];
      o[a] = rem % d;
      rem /= d;
    }
    I plane = rem;  // the (batch, channel) plane, or the batch item
    I lo[3], hi[3];
    float div = 1.0f;
    for (int a = 0; a < 3; ++a) {
      i64 start = (i64)o[a] * p.s[a] - p.pre[a];
      i64 end = start + p.k[a];
      // A window wholly in the padding is empty (hi == lo): unsigned
      // indices must not see a negative end.
      i64 l = start < 0 ? 0 : start;
      i64 h = end > p.in[a] ? p.in[a] : end;
      lo[a] = (I)l;
      hi[a] = (I)(h < l ? l : h);
      i64 clo = p.exclude ? 0 : -p.pre[a];
      i64 chi = p.exclude ? p.in[a] : p.in[a] + p.post[a];
      i64 c = (end < chi ? end : chi) - (start > clo ? start : clo);
      div *= (float)(c > 0 ? c : 0);
    }
    const T *src = x + plane * in0 * in1 * in2 * cs + ch;
    float acc = p.is_max ? -__int_as_float(0x7f800000) : 0.0f;
    for (I z = lo[0]; z < hi[0]; ++z)
      for (I y = lo[1]; y < hi[1]; ++y)
        for (I w = lo[2]; w < hi[2]; ++w) {
          float v = ldf(src, ((z * in1 + y) * in2 + w) * cs);
          acc = p.is_max ? fmaxf(acc, v) : acc + v;
        }
    stf((T *)p.out, k, p.is_max ? acc : acc / div);
  }
}

template <typename T>
__device__ void pool(const PoolParams &p) {
  // The input's element count bounds every offset read; the output's,
  // every index written.
  i64 in_len = (p.n / (p.out_d[0] * p.out_d[1] * p.out_d[2] > 0
                           ? p.out_d[0] * p.out_d[1] * p.out_d[2]
                           : 1)) *
               p.in[0] * p.in[1] * p.in[2];
  if (p.n < 0x80000000LL && in_len < 0x80000000LL) {
    pool_in<T, unsigned>(p);
  } else {
    pool_in<T, i64>(p);
  }
}

extern "C" __global__ void pool_f32(PoolParams p) { pool<float>(p); }
extern "C" __global__ void pool_f16(PoolParams p) { pool<u16>(p); }
