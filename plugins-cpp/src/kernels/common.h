// Definitions shared by the CPU (.cpp) and CUDA (.cu) kernels: each built-in
// computes one output element with the same inline function on both, so
// the CUDA check compares like with like.
#ifndef JETRT_KERNELS_COMMON_H
#define JETRT_KERNELS_COMMON_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define JETRT_HD __host__ __device__
#else
#define JETRT_HD
#endif

namespace jetrt {
namespace kernels {

// True for numbers that are neither infinite nor NaN (no <cmath> on the
// device side, and no fast-math here, so this is exact).
JETRT_HD inline bool is_finite(float v) { return v == v && v - v == 0.0f; }

JETRT_HD inline int64_t clamp_index(int64_t i, int64_t lo, int64_t hi) { return i < lo ? lo : (i > hi ? hi : i); }

// Truncation toward zero of a finite float, saturated so that the cast is
// always defined; results this large are outside any tensor anyway.
JETRT_HD inline int64_t trunc_index(float v) {
  if (!(v > -1.0e15f)) return -1000000000000000LL;
  if (!(v < 1.0e15f)) return 1000000000000000LL;
  return static_cast<int64_t>(v);
}

}  // namespace kernels
}  // namespace jetrt

#endif
