// GridSample's CUDA kernel: one thread per output element, each computing
// it with the function the CPU kernel uses.
#include <cuda_runtime.h>

#include "../builtins.h"

namespace jetrt {
namespace builtin {
namespace {

__global__ void grid_sample_kernel(kernels::GridSampleParams p, const float *x, const float *grid, float *y,
                                   int64_t total) {
  const int64_t plane_out = p.out_h * p.out_w;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // e indexes Y [n, c, out_h, out_w].
    const int64_t i = e % plane_out;
    const int64_t nc = e / plane_out;
    const int64_t n = nc / p.c;
    const float *g = grid + (n * plane_out + i) * 2;
    y[e] = kernels::grid_sample_one(x + nc * p.h * p.w, p, g[0], g[1]);
  }
}

}  // namespace

const char *cuda::grid_sample(const kernels::GridSampleParams &p, const float *x, const float *grid, float *y,
                              void *stream) {
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  if (total == 0) return nullptr;
  const int threads = 256;
  const int64_t want = (total + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(want < 65535 ? want : 65535);
  grid_sample_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(p, x, grid, y, total);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace builtin
}  // namespace jetrt
