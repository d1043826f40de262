//! Plugins end to end, with the libraries CMake builds (scripts/test.sh
//! builds them and sets JETRT_PLUGIN_LIB to the shared built-in library;
//! the example plugin and the test fixtures lie beside it): a custom-domain
//! op served by the example user plugin through build, inspect, run, verify
//! and test; and the errors for a missing plugin, a library of another ABI
//! version and a custom op no library provides.

mod common;

use common::*;
use engine_builder::onnx::proto::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto,
};
use engine_builder::onnx::{read_pb, write_pb};
use jetrt_engine::Tensor;
use prost::Message;
use std::path::{Path, PathBuf};

/// The folder of the CMake-built plugin libraries, or `None` (a skip) when
/// they are not built; under CI=true their absence fails.
fn plugin_build_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("JETRT_PLUGIN_LIB") {
        Some(lib) => PathBuf::from(lib).parent().map(Path::to_path_buf),
        None => Some(repo().join("build/plugins-cpp")).filter(|d| d.is_dir()),
    };
    match dir {
        Some(d) => Some(d),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "JETRT_PLUGIN_LIB is not set in CI"
            );
            eprintln!("skipped: the plugin libraries are not built (scripts/test.sh builds them)");
            None
        }
    }
}

fn existing(p: PathBuf) -> PathBuf {
    assert!(
        p.is_file(),
        "{} is missing: build plugins-cpp with CMake",
        p.display()
    );
    p
}

fn example_plugin(dir: &Path) -> PathBuf {
    existing(dir.join("examples/libjetrt_example_plugin.so"))
}

const COEFFICIENTS: [f32; 3] = [0.5, -1.0, 2.0];

/// A model with a custom-domain op: y = Relu(Polynomial(x)), the polynomial
/// in domain com.example, run by the example plugin; with one data set.
fn polynomial_case(dir: &Path) -> PathBuf {
    let case = dir.join("custom_polynomial");
    let data = case.join("test_data_set_0");
    std::fs::create_dir_all(&data).unwrap();
    let mut poly = node("Polynomial", &["x"], &["p"], vec![]);
    poly.domain = "com.example".into();
    poly.attribute.push(AttributeProto {
        name: "coefficients".into(),
        r#type: AttributeType::Floats as i32,
        floats: COEFFICIENTS.to_vec(),
        ..Default::default()
    });
    let relu: NodeProto = node("Relu", &["p"], &["y"], vec![]);
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "com.example".into(),
                version: 1,
            },
        ],
        producer_name: "jetrt-tests".into(),
        graph: Some(GraphProto {
            node: vec![poly, relu],
            name: "custom_polynomial".into(),
            input: vec![value_info("x", 1, &[D::N(2), D::N(3)])],
            output: vec![value_info("y", 1, &[D::N(2), D::N(3)])],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(case.join("model.onnx"), model.encode_to_vec()).unwrap();
    let x = vec![-1.5f32, -0.25, 0.0, 0.5, 1.0, 2.0];
    let y: Vec<f32> = x
        .iter()
        .map(|&v| {
            let v = v as f64;
            let c = COEFFICIENTS.map(|c| c as f64);
            (c[0] + c[1] * v + c[2] * v * v).max(0.0) as f32
        })
        .collect();
    write_pb(
        &data.join("input_0.pb"),
        &Tensor::from_f32(&[2, 3], x).unwrap(),
        "x",
    )
    .unwrap();
    write_pb(
        &data.join("output_0.pb"),
        &Tensor::from_f32(&[2, 3], y).unwrap(),
        "y",
    )
    .unwrap();
    case
}

#[test]
fn a_custom_domain_op_runs_through_the_example_plugin() {
    let Some(libs) = plugin_build_dir() else {
        return;
    };
    let lib = example_plugin(&libs);
    let dir = tempfile::tempdir().unwrap();
    let case = polynomial_case(dir.path());

    let (code, out, err) = eb(&["test", "--plugin", s(&lib), s(&case)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("PASS  custom_polynomial") && out.contains("1 passed, 0 failed"),
        "{out}"
    );

    let engine = dir.path().join("poly.engine");
    let (code, out, err) = eb(&[
        "build",
        s(&case.join("model.onnx")),
        "-o",
        s(&engine),
        "--plugin",
        s(&lib),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = eb(&["inspect", s(&engine), "--layers"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("plugins    Polynomial 1 (libjetrt_example_plugin.so)"),
        "{out}"
    );
    assert!(out.contains("Plugin:Polynomial"), "{out}");

    let data = case.join("test_data_set_0");
    let (code, out, err) = eb(&["verify", s(&engine), s(&data), "--plugin", s(&lib)]);
    assert_eq!(code, 0, "{out}{err}");
    let run_dir = dir.path().join("out");
    std::fs::create_dir_all(&run_dir).unwrap();
    let (code, out, err) = eb(&[
        "run",
        s(&engine),
        "--input",
        s(&data.join("input_0.pb")),
        "-o",
        s(&run_dir),
        "--plugin",
        s(&lib),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (y, _) = read_pb(&run_dir.join("output_0.pb")).unwrap();
    let (want, _) = read_pb(&data.join("output_0.pb")).unwrap();
    assert_eq!(y, want);

    // Without the library the engine loads for inspection but does not
    // run, and the error names the plugin and the library to pass.
    let input = data.join("input_0.pb");
    for sub in ["run", "verify", "bench"] {
        let args: Vec<&str> = match sub {
            "run" => vec!["run", s(&engine), "--input", s(&input)],
            "verify" => vec!["verify", s(&engine), s(&data)],
            _ => vec!["bench", s(&engine), "--runs", "1"],
        };
        let err = eb_fails(&args);
        assert!(
            err.contains("plugin 'Polynomial' version 1")
                && err.contains("--plugin")
                && err.contains("libjetrt_example_plugin.so"),
            "{sub}: {err}"
        );
    }
}

#[test]
fn a_custom_op_without_a_library_is_reported_with_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let case = polynomial_case(dir.path());
    let err = eb_fails(&[
        "build",
        s(&case.join("model.onnx")),
        "-o",
        s(&dir.path().join("m.engine")),
    ]);
    assert!(
        err.contains("Polynomial (node 'Polynomial_p', com.example opset 1)")
            && err.contains("--plugin"),
        "{err}"
    );
    let (code, out, _) = eb(&["test", s(&case)]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  custom_polynomial") && out.contains("Polynomial"),
        "{out}"
    );
}

#[test]
fn a_library_of_another_abi_version_is_refused() {
    let Some(libs) = plugin_build_dir() else {
        return;
    };
    let lib = existing(libs.join("tests/libjetrt_test_wrong_abi.so"));
    let dir = tempfile::tempdir().unwrap();
    let case = polynomial_case(dir.path());
    for args in [
        vec![
            "build",
            s(&case.join("model.onnx")),
            "-o",
            "x.engine",
            "--plugin",
            s(&lib),
        ],
        vec!["test", "--plugin", s(&lib), s(&case)],
        vec!["inspect", "x.engine", "--plugin", s(&lib)],
    ] {
        let err = eb_fails(&args);
        assert!(
            err.contains("libjetrt_test_wrong_abi.so")
                && err.contains("speaks plugin ABI version 1, this build of jetrt speaks 2"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_shared_built_in_library_serves_the_built_in_ops() {
    // The shared library (with CUDA kernels on a GPU machine) replaces the
    // linked-in built-ins; an engine built with it records the library but
    // runs on the linked-in built-ins when it is not loaded.
    let Some(libs) = plugin_build_dir() else {
        return;
    };
    let lib = existing(libs.join("libjetrt_plugins.so"));
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("grid_sample");
    let data = case.join("test_data_set_0");
    std::fs::create_dir_all(&data).unwrap();
    let gs = node(
        "GridSample",
        &["x", "grid"],
        &["y"],
        vec![AttributeProto {
            name: "align_corners".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        }],
    );
    std::fs::write(
        case.join("model.onnx"),
        model_bytes(
            vec![gs],
            vec![
                value_info("x", 1, &[D::N(1), D::N(1), D::N(2), D::N(2)]),
                value_info("grid", 1, &[D::N(1), D::N(1), D::N(2), D::N(2)]),
            ],
            vec![value_info("y", 1, &[D::N(1), D::N(1), D::N(1), D::N(2)])],
            vec![],
            20,
        ),
    )
    .unwrap();
    // With align_corners, (-1,-1) is the top-left pixel and (1,1) the
    // bottom-right one.
    let x = Tensor::from_f32(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let grid = Tensor::from_f32(&[1, 1, 2, 2], vec![-1.0, -1.0, 1.0, 1.0]).unwrap();
    let y = Tensor::from_f32(&[1, 1, 1, 2], vec![1.0, 4.0]).unwrap();
    write_pb(&data.join("input_0.pb"), &x, "x").unwrap();
    write_pb(&data.join("input_1.pb"), &grid, "grid").unwrap();
    write_pb(&data.join("output_0.pb"), &y, "y").unwrap();

    let (code, out, err) = eb(&["test", "--plugin", s(&lib), s(&case)]);
    assert_eq!(code, 0, "{out}{err}");
    let engine = dir.path().join("gs.engine");
    let (code, _, err) = eb(&[
        "build",
        s(&case.join("model.onnx")),
        "-o",
        s(&engine),
        "--plugin",
        s(&lib),
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = eb(&["inspect", s(&engine)]);
    assert!(
        out.contains("plugins    GridSample 1 (libjetrt_plugins.so)"),
        "{out}"
    );
    let (code, out, err) = eb(&["verify", s(&engine), s(&data)]);
    assert_eq!(code, 0, "{out}{err}");
    // Built without the library: the built-in serves it.
    let (code, _, err) = eb(&["build", s(&case.join("model.onnx")), "-o", s(&engine)]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = eb(&["inspect", s(&engine)]);
    assert!(out.contains("plugins    GridSample 1 (built in)"), "{out}");
}

#[test]
fn the_kernel_checker_passes_on_the_cpu_side() {
    // scripts/check_plugins_cuda.sh runs it with CUDA on a GPU machine; here
    // it checks the CPU kernels on random inputs and their serialization.
    let Some(libs) = plugin_build_dir() else {
        return;
    };
    let checker = existing(libs.join("jetrt_check_plugins"));
    let out = std::process::Command::new(&checker)
        .arg(libs.join("libjetrt_plugins.so"))
        .output()
        .expect("the checker runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("34 checked, 0 failed"), "{text}");
    for plugin in ["GridSample", "RoiAlign", "NonMaxSuppression"] {
        assert!(text.lines().any(|l| l.starts_with(plugin)), "{text}");
    }
}
