fn main() {
    // The shim is linked only when the `shim` feature asks for it; the build
    // script stays trivial otherwise so that CPU-only machines need no TensorRT.
    println!("cargo:rerun-if-changed=build.rs");
}
