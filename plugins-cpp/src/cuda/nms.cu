// NonMaxSuppression's CUDA kernels, one thread block per (batch, class):
//  1. rank: each candidate's position in score order (higher score first,
//     then lower index) by counting the candidates before it;
//  2. select: walk the ranked candidates in order, the block's threads
//     testing each against the boxes selected so far;
//  3. gather: write the selected rows, batch-major then class, after the
//     rows of every earlier (batch, class).
// The row count is copied back to the host, which needs it for the output
// dims (the one synchronization).
#include <cuda_runtime.h>

#include "../builtins.h"

namespace jetrt {
namespace builtin {
namespace {

const int kThreads = 256;

struct Layout {
  int64_t segments;  // batches * classes
  int64_t keep;      // min(boxes, max_output_boxes_per_class)
  uint64_t order_bytes, counts_bytes, selected_bytes, total_bytes;
};

uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }

Layout layout(const kernels::NmsParams &p) {
  Layout l;
  l.segments = p.batches * p.classes;
  l.keep = p.boxes < p.max_output_boxes_per_class ? p.boxes : p.max_output_boxes_per_class;
  // order: int32 per box per segment; counts: candidates, then selected, per
  // segment, plus the total; selected: int32 per kept box per segment.
  l.order_bytes = align256(static_cast<uint64_t>(l.segments * p.boxes) * 4);
  l.counts_bytes = align256(static_cast<uint64_t>(2 * l.segments + 1) * 8);
  l.selected_bytes = align256(static_cast<uint64_t>(l.segments * l.keep) * 4);
  l.total_bytes = l.order_bytes + l.counts_bytes + l.selected_bytes;
  return l;
}

__global__ void rank_kernel(kernels::NmsParams p, const float *scores, int32_t *order, int64_t *candidates) {
  const int64_t seg = blockIdx.x;
  const float *s = scores + seg * p.boxes;
  int32_t *o = order + seg * p.boxes;
  __shared__ unsigned long long count;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < p.boxes; i += blockDim.x) {
    if (!kernels::nms_candidate(p, s[i])) continue;
    int64_t rank = 0;
    for (int64_t j = 0; j < p.boxes; ++j) {
      if (kernels::nms_candidate(p, s[j]) && kernels::nms_before(s[j], j, s[i], i)) ++rank;
    }
    o[rank] = static_cast<int32_t>(i);
    atomicAdd(&count, 1ull);
  }
  __syncthreads();
  if (threadIdx.x == 0) candidates[seg] = static_cast<int64_t>(count);
}

__global__ void select_kernel(kernels::NmsParams p, int64_t keep, const float *boxes, const int32_t *order,
                              const int64_t *candidates, int32_t *selected, int64_t *counts) {
  const int64_t seg = blockIdx.x;
  const int64_t b = seg / p.classes;
  const float *bb = boxes + b * p.boxes * 4;
  const int32_t *o = order + seg * p.boxes;
  int32_t *sel = selected + seg * keep;
  __shared__ int64_t nsel;
  __shared__ int suppressed;
  if (threadIdx.x == 0) nsel = 0;
  __syncthreads();
  const int64_t ncand = candidates[seg];
  for (int64_t k = 0; k < ncand; ++k) {
    if (nsel >= keep) break;  // the same value for every thread (read after a barrier)
    const int32_t i = o[k];
    if (threadIdx.x == 0) suppressed = 0;
    __syncthreads();
    for (int64_t j = threadIdx.x; j < nsel; j += blockDim.x) {
      if (kernels::nms_suppress(bb + static_cast<int64_t>(sel[j]) * 4, bb + static_cast<int64_t>(i) * 4,
                                p.center_point_box, p.iou_threshold)) {
        suppressed = 1;
      }
    }
    __syncthreads();
    if (threadIdx.x == 0 && !suppressed) {
      sel[nsel] = i;
      nsel = nsel + 1;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) counts[seg] = nsel;
}

__global__ void gather_kernel(kernels::NmsParams p, int64_t keep, const int32_t *selected, const int64_t *counts,
                              int64_t *out, int64_t *total) {
  const int64_t seg = blockIdx.x;
  __shared__ int64_t offset;
  if (threadIdx.x == 0) {
    int64_t sum = 0;
    for (int64_t s = 0; s < seg; ++s) sum += counts[s];
    offset = sum;
    if (seg == gridDim.x - 1) *total = sum + counts[seg];
  }
  __syncthreads();
  const int64_t b = seg / p.classes, c = seg % p.classes;
  for (int64_t j = threadIdx.x; j < counts[seg]; j += blockDim.x) {
    int64_t *row = out + (offset + j) * 3;
    row[0] = b;
    row[1] = c;
    row[2] = selected[seg * keep + j];
  }
}

}  // namespace

uint64_t cuda::nms_workspace(const kernels::NmsParams &p) {
  if (p.batches < 0 || p.classes < 0 || p.boxes < 0) return 0;
  return layout(p).total_bytes;
}

const char *cuda::nms(const kernels::NmsParams &p, const float *boxes, const float *scores, int64_t *out,
                      int64_t *count, void *workspace, uint64_t workspace_size, void *stream) {
  const Layout l = layout(p);
  *count = 0;
  if (l.segments == 0 || l.keep == 0) return nullptr;
  if (workspace_size < l.total_bytes) return "workspace too small";
  if (p.boxes > 0x7fffffff) return "more boxes than 32-bit indices hold";
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  char *ws = static_cast<char *>(workspace);
  int32_t *order = reinterpret_cast<int32_t *>(ws);
  int64_t *counts = reinterpret_cast<int64_t *>(ws + l.order_bytes);
  int64_t *candidates = counts + l.segments;
  int64_t *total = counts + 2 * l.segments;
  int32_t *selected = reinterpret_cast<int32_t *>(ws + l.order_bytes + l.counts_bytes);
  const unsigned blocks = static_cast<unsigned>(l.segments);
  rank_kernel<<<blocks, kThreads, 0, s>>>(p, scores, order, candidates);
  select_kernel<<<blocks, kThreads, 0, s>>>(p, l.keep, boxes, order, candidates, selected, counts);
  gather_kernel<<<blocks, kThreads, 0, s>>>(p, l.keep, selected, counts, out, total);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return cudaGetErrorString(err);
  int64_t host_total = 0;
  err = cudaMemcpyAsync(&host_total, total, sizeof host_total, cudaMemcpyDeviceToHost, s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  *count = host_total;
  return nullptr;
}

}  // namespace builtin
}  // namespace jetrt
