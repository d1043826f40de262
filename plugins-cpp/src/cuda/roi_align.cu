// RoiAlign's CUDA kernel: one thread per output element. A roi whose batch
// index is outside the batch gives zeros (the CPU kernel reports an error;
// a device kernel has no cheap way to).
#include <cuda_runtime.h>

#include "../builtins.h"

namespace jetrt {
namespace builtin {
namespace {

__global__ void roi_align_kernel(kernels::RoiAlignParams p, const float *x, const float *rois,
                                 const int64_t *batch, float *y, int64_t total) {
  const int64_t plane_out = p.out_h * p.out_w;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // e indexes Y [num_rois, c, out_h, out_w].
    const int64_t i = e % plane_out;
    const int64_t rc = e / plane_out;
    const int64_t c = rc % p.c;
    const int64_t r = rc / p.c;
    const int64_t b = batch[r];
    if (b < 0 || b >= p.n) {
      y[e] = 0.0f;
      continue;
    }
    y[e] = kernels::roi_align_one(x + (b * p.c + c) * p.h * p.w, p, rois + r * 4, i / p.out_w, i % p.out_w);
  }
}

}  // namespace

const char *cuda::roi_align(const kernels::RoiAlignParams &p, const float *x, const float *rois, const int64_t *batch,
                            float *y, void *stream) {
  const int64_t total = p.num_rois * p.c * p.out_h * p.out_w;
  if (total == 0) return nullptr;
  const int threads = 256;
  const int64_t want = (total + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(want < 65535 ? want : 65535);
  roi_align_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(p, x, rois, batch, y, total);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace builtin
}  // namespace jetrt
