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
start=$(date +%s)

step() { printf '\n==> %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
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

step "lints"
cargo clippy --workspace --all-targets --profile "$profile" -- -D warnings

step "building binaries ($profile)"
cargo build --workspace --bins --profile "$profile"

step "tests ($profile)"
cargo test --workspace --profile "$profile"

step "all tests passed"
