//! Marks the tests that need external data as ignored, with the reason,
//! when that data is absent: `cargo test` then lists them as "ignored"
//! instead of "ok", so a run without the models never looks like a pass
//! over them. Under CI=true nothing is ignored: the tests run and fail on
//! the missing data (CI must have it).

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_jetrt_models)");
    println!("cargo::rustc-check-cfg=cfg(no_onnx_cases)");
    for var in ["JETRT_MODELS", "JETRT_ONNX_CASES", "CI"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let dir = |var: &str| std::env::var_os(var).is_some_and(|v| Path::new(&v).is_dir());
    if !ci && !dir("JETRT_MODELS") {
        println!("cargo::rustc-cfg=no_jetrt_models");
    }
    // The node cases' default place, as the test looks for it.
    let default_cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/onnx-cases");
    println!("cargo::rerun-if-changed={}", default_cases.display());
    if !ci && !dir("JETRT_ONNX_CASES") && !default_cases.is_dir() {
        println!("cargo::rustc-cfg=no_onnx_cases");
    }
}
