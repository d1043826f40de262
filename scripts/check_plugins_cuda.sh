#!/usr/bin/env bash
# Builds jetrt's plugin library with CUDA and checks every CUDA kernel
# against its CPU kernel on random inputs, printing a table of the largest
# differences per kernel and case. For a GPU machine with nvcc and CMake
# (no Rust needed):
#
#   scripts/check_plugins_cuda.sh [BUILD_DIR]
#
# BUILD_DIR defaults to build-cuda. CMAKE_CUDA_ARCHITECTURES may be set in
# the environment (default: the GPU of this machine). Exit status 0 when
# every kernel matches; without a usable GPU or nvcc it fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-cuda}"

command -v cmake >/dev/null || { echo "error: cmake is not installed" >&2; exit 2; }
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
command -v nvcc >/dev/null || { echo "error: nvcc is not on PATH (nor in /usr/local/cuda*/bin)" >&2; exit 2; }
nvcc --version | tail -n 2
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader || true

args=(-S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DJETRT_PLUGINS_CUDA=ON
      -DCMAKE_CUDA_COMPILER="$(command -v nvcc)")
if [ -n "${CMAKE_CUDA_ARCHITECTURES:-}" ]; then
  args+=(-DCMAKE_CUDA_ARCHITECTURES="$CMAKE_CUDA_ARCHITECTURES")
fi
cmake "${args[@]}"
cmake --build "$build" -j "$(nproc)"

echo
"$build/plugins-cpp/jetrt_check_plugins" --require-cuda "$build/plugins-cpp/libjetrt_plugins.so"
