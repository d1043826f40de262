#!/usr/bin/env bash
# Builds engine-builder, then takes the bundled tiny model (a 4-class shape
# classifier exported from PyTorch, models/tiny) through what a user does:
# build an engine, inspect it, run it on images, verify it against PyTorch's
# outputs, and benchmark it, all on the cpu backend.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The built-in plugins are C++, built with CMake by the engine crate.
for tool in cmake c++; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: building jetrt needs $tool (for the C++ plugins): apt-get install cmake g++" >&2
    exit 1
  }
done
cargo build --release --bin engine-builder
eb="$root/target/release/engine-builder"
out="$root/target/quickstart"
mkdir -p "$out"

show() { printf '\n$ %s\n' "$*"; "$@"; }

show "$eb" build models/tiny/model.onnx -o "$out/tiny.engine" \
  --input-size 64x64 --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 --labels models/tiny/labels.txt
show "$eb" inspect "$out/tiny.engine"
for img in models/tiny/images/*.png; do
  show "$eb" run "$out/tiny.engine" --image "$img" -o "$out" --top 2
done
show "$eb" verify "$out/tiny.engine" models/tiny/test_data_set_0
show "$eb" bench "$out/tiny.engine" --runs 200

cat <<MSG

Done. The commands in the README call engine-builder by name: put it on
your PATH with
    export PATH="$root/target/release:\$PATH"
or install it with
    cargo install --path engine-builder
MSG
