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

template <typename T>
__device__ void pool(const PoolParams &p) {
  const T *x = (const T *)p.x;
  const i64 cs = p.channels > 0 ? p.channels : 1;  // element stride
  GRID_STRIDE(i, p.n) {
    i64 rem = i;
    i64 ch = 0;
    if (p.channels > 0) {
      ch = rem % p.channels;
      rem /= p.channels;
    }
    i64 o[3];
    for (int a = 2; a >= 0; --a) {
      o[a] = rem % p.out_d[a];
      rem /= p.out_d[a];
    }
    i64 plane = rem;  // the (batch, channel) plane, or the batch item
    i64 lo[3], hi[3];
    float div = 1.0f;
    for (int a = 0; a < 3; ++a) {
      i64 start = o[a] * p.s[a] - p.pre[a];
      i64 end = start + p.k[a];
      lo[a] = start < 0 ? 0 : start;
      hi[a] = end > p.in[a] ? p.in[a] : end;
      i64 clo = p.exclude ? 0 : -p.pre[a];
      i64 chi = p.exclude ? p.in[a] : p.in[a] + p.post[a];
      i64 c = (end < chi ? end : chi) - (start > clo ? start : clo);
      div *= (float)(c > 0 ? c : 0);
    }
    const T *src = x + plane * p.in[0] * p.in[1] * p.in[2] * cs + ch;
    float acc = p.is_max ? -__int_as_float(0x7f800000) : 0.0f;
    for (i64 z = lo[0]; z < hi[0]; ++z)
      for (i64 y = lo[1]; y < hi[1]; ++y)
        for (i64 w = lo[2]; w < hi[2]; ++w) {
          float v = ldf(src, ((z * p.in[1] + y) * p.in[2] + w) * cs);
          acc = p.is_max ? fmaxf(acc, v) : acc + v;
        }
    stf((T *)p.out, i, p.is_max ? acc : acc / div);
  }
}

extern "C" __global__ void pool_f32(PoolParams p) { pool<float>(p); }
extern "C" __global__ void pool_f16(PoolParams p) { pool<u16>(p); }
