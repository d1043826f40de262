#!/usr/bin/env bash
# Installs what jetrt's tests need, then runs them all: formatting, lints,
# the C++ plugin build, unit tests and end-to-end tests (jetrtd's among
# them: real daemons on temporary sockets, GStreamer's videotestsrc, the
# Python client).
#
#   scripts/test.sh
#
# JETRT_MODELS names the model zoo (default: ../shared/models when present);
# JETRT_ONNX_CASES where the ONNX node test cases are written (default:
# target/onnx-cases); JETRT_PROFILE the cargo profile the tests are built in
# (default: ci, an optimized profile, built once for tests and binaries alike).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile="${JETRT_PROFILE:-ci}"
# The ONNX release whose node test cases the allow-list is written against.
onnx_version=1.23.2
# NVRTC from PyPI: the cuda backend's kernel compiler, which runs without a
# GPU, so every kernel source is compiled for the Jetson (sm_87) and the
# H100/H200 (sm_90) on every run.
nvrtc_version=12.9.86
start=$(date +%s)

step() { printf '\n==> %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

# Cross-builds for the Jetson's aarch64 CPU and runs the cpu kernels' unit
# tests and two model tests under qemu, so the NEON paths are checked. A
# machine that cannot get the toolchain skips this step, loudly.
aarch64_test() {
  local target=aarch64-unknown-linux-gnu
  local need=()
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
  command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
  [ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
  if ((${#need[@]})) && ! apt_install "${need[@]}"; then
    skip_loudly "cannot install ${need[*]}"
    return 0
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if ! rustup target add "$target"; then
      skip_loudly "rustup cannot install the $target target"
      return 0
    fi
  fi
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
  cargo build --profile "$profile" --target "$target" -p engine-builder
  cargo test --profile "$profile" --target "$target" -p jetrt-engine --lib backend::cpu
  local bin="target/$target/$profile/engine-builder"
  file "$bin" 2>/dev/null || true
  if [ -n "${JETRT_MODELS:-}" ]; then
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" test \
      "$JETRT_MODELS/squeezenet1_1" "$JETRT_MODELS/mobilenet_v3_small"
  else
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" test models/tiny
  fi
}

skip_loudly() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf '!!! SKIPPED the aarch64 step: %s\n' "$*" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
}

step "checking tools"
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
# jetrtd's GStreamer source (gstreamer-rs, tested with videotestsrc) and its
# V4L2 source (the v4l crate generates bindings with libclang).
pkg-config --exists gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 2>/dev/null \
  || missing+=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)
dpkg -s gstreamer1.0-plugins-base >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-base)
dpkg -s gstreamer1.0-plugins-good >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-good)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

if [ -z "${JETRT_MODELS:-}" ] && [ -d "$root/../shared/models" ]; then
  export JETRT_MODELS="$root/../shared/models"
fi
echo "JETRT_MODELS=${JETRT_MODELS:-<unset: model zoo tests skip>}"

step "ONNX node cases (onnx==$onnx_version)"
if ! python3 -c "import onnx, sys; sys.exit(onnx.__version__ != '$onnx_version')" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "onnx==$onnx_version"
fi
export JETRT_ONNX_CASES="${JETRT_ONNX_CASES:-$root/target/onnx-cases}"
if [ "$(cat "$JETRT_ONNX_CASES/.onnx-version" 2>/dev/null)" != "$onnx_version" ]; then
  rm -rf "$JETRT_ONNX_CASES"
  python3 scripts/gen_onnx_cases.py --out "$JETRT_ONNX_CASES"
else
  echo "reusing $JETRT_ONNX_CASES"
fi

step "formatting"
cargo fmt --all -- --check

step "plugins-cpp (CMake)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
export JETRT_PLUGIN_LIB="$root/build/plugins-cpp/libjetrt_plugins.so"

step "NVRTC $nvrtc_version (compiles the cuda backend's kernels without a GPU)"
if ! python3 -c "import nvidia.cuda_nvrtc" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "nvidia-cuda-nvrtc-cu12==$nvrtc_version"
fi
nvrtc_lib="$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], "lib"))')"
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The kernel check fails rather than skips when NVRTC cannot be used.
export JETRT_REQUIRE_NVRTC=1

step "lints"
cargo clippy --workspace --all-targets --profile "$profile" -- -D warnings

step "building binaries ($profile)"
cargo build --workspace --bins --profile "$profile"

step "tests ($profile)"
cargo test --workspace --profile "$profile"

step "aarch64 (Jetson's CPU): cross-build, then the kernels and two models under qemu"
aarch64_test
step "all tests passed"
