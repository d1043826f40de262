//! Builds the built-in plugins (plugins-cpp, CPU kernels only) with CMake
//! and links the static library in, so that every jetrt binary has them
//! without a library to ship. CUDA kernels come from the shared library a
//! GPU machine builds, loaded at run time.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins = manifest.join("../plugins-cpp");
    for p in ["CMakeLists.txt", "cmake", "include", "src"] {
        println!("cargo:rerun-if-changed={}", plugins.join(p).display());
    }
    let dst = cmake::Config::new(&plugins)
        .define("JETRT_PLUGINS_SHARED", "OFF")
        .define("JETRT_PLUGINS_CHECKER", "OFF")
        .define("JETRT_PLUGINS_CUDA", "OFF")
        .build_target("jetrt_plugins_static")
        .build();
    println!(
        "cargo:rustc-link-search=native={}",
        dst.join("build").display()
    );
    println!("cargo:rustc-link-lib=static=jetrt_plugins");
    // The C++ runtime the library needs.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("apple") || target.contains("freebsd") {
        println!("cargo:rustc-link-lib=dylib=c++");
    } else if !target.contains("msvc") {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}
