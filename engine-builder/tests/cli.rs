//! engine-builder's subcommands, run as a user runs them: the real binary
//! on real files.

mod common;

use common::*;
use engine_builder::compare::{compare, Tolerance};
use engine_builder::onnx::proto::AttributeProto;
use engine_builder::onnx::{read_pb, write_pb};
use jetrt_engine::{DataType, Tensor};

/// Builds the bundled tiny model with its preprocessing and labels.
fn build_tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let engine = dir.join("tiny.engine");
    let t = tiny();
    let (code, out, err) = eb(&[
        "build",
        s(&t.join("model.onnx")),
        "-o",
        s(&engine),
        "--input-size",
        "64x64",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
        "--labels",
        s(&t.join("labels.txt")),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("built") && out.contains("input   input float32 1x3x64x64"),
        "{out}"
    );
    engine
}

#[test]
fn tiny_model_builds_inspects_runs_verifies_and_benches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = build_tiny(dir.path());

    let (code, out, _) = eb(&["inspect", s(&engine)]);
    assert_eq!(code, 0);
    for want in [
        "precision  fp32",
        "backend    cpu",
        "Convolution",
        "size 64x64",
        "labels     4 (circle, square, triangle, cross)",
        "plans",
    ] {
        assert!(out.contains(want), "inspect lacks '{want}':\n{out}");
    }

    // Every bundled sample image is classified as what it shows.
    for class in ["circle", "square", "triangle", "cross"] {
        let img = tiny().join(format!("images/{class}.png"));
        let (code, out, err) = eb(&[
            "run",
            s(&engine),
            "--image",
            s(&img),
            "-o",
            s(dir.path()),
            "--top",
            "1",
        ]);
        assert_eq!(code, 0, "{err}");
        let top = out.lines().find(|l| l.contains('%')).unwrap_or_default();
        assert!(top.contains(class), "{class} classified as: {top}");
    }

    // Running on the reference input writes what PyTorch computed.
    let input = tiny().join("test_data_set_0/input_0.pb");
    let (code, _, err) = eb(&["run", s(&engine), "--input", s(&input), "-o", s(dir.path())]);
    assert_eq!(code, 0, "{err}");
    let (y, name) = read_pb(&dir.path().join("output_0.pb")).unwrap();
    let (r, _) = read_pb(&tiny().join("test_data_set_0/output_0.pb")).unwrap();
    assert_eq!(name, "logits");
    assert!(compare(&y, &r).unwrap().passes(Tolerance::FP32));

    let (code, out, _) = eb(&["verify", s(&engine), s(&tiny().join("test_data_set_0"))]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("max abs error")
            && out.contains("PSNR")
            && out.contains("argmax agreement       1/1")
    );
    assert!(out.trim_end().ends_with("verify: PASS"), "{out}");

    let (code, out, _) = eb(&["bench", s(&engine), "--runs", "20", "--threads", "1"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    let value = |prefix: &str, unit: &str| -> f64 {
        let l = lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' in {out}"));
        l[prefix.len()..]
            .trim_end_matches(unit)
            .trim()
            .parse()
            .unwrap()
    };
    let (median, p99, fps) = (
        value("median ", " ms"),
        value("p99 ", " ms"),
        value("fps ", ""),
    );
    assert!(median > 0.0 && p99 >= median && fps > 0.0, "{out}");

    // Device-resident I/O is a GPU backend's: the cpu one says so.
    let err = eb_fails(&["bench", s(&engine), "--runs", "1", "--device-io"]);
    assert!(
        err.contains("--device-io") && err.contains("cpu backend"),
        "{err}"
    );
}

#[test]
fn verify_fails_on_wrong_references() {
    let dir = tempfile::tempdir().unwrap();
    let engine = build_tiny(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(
        tiny().join("test_data_set_0/input_0.pb"),
        data.join("input_0.pb"),
    )
    .unwrap();
    let (r, name) = read_pb(&tiny().join("test_data_set_0/output_0.pb")).unwrap();
    let wrong: Vec<f32> = r.as_f32().unwrap().iter().map(|v| v * 1.01).collect();
    write_pb(
        &data.join("output_0.pb"),
        &Tensor::from_f32(r.shape(), wrong).unwrap(),
        &name,
    )
    .unwrap();
    let (code, out, _) = eb(&["verify", s(&engine), s(&data)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("OVER TOLERANCE") && out.trim_end().ends_with("verify: FAIL"),
        "{out}"
    );
}

#[test]
fn test_subcommand_reports_rows_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    // A broken case next to a good one: the run goes on and counts both.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(broken.join("test_data_set_0")).unwrap();
    std::fs::write(broken.join("model.onnx"), b"not a model").unwrap();
    let (code, out, _) = eb(&["test", s(&tiny()), s(&broken)]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PASS  tiny"), "{out}");
    assert!(
        lines[1].starts_with("FAIL  broken") && lines[1].contains("not a valid ONNX model"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"1 passed, 1 failed"));
    assert!(!out.contains('\x1b'), "colour on a pipe: {out:?}");
    let (code, out, _) = eb(&["test", s(&tiny())]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().last(), Some("1 passed, 0 failed"));
}

#[test]
fn malformed_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.engine");
    let model = std::fs::read(tiny().join("model.onnx")).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("text".into(), b"hello, this is not a model\n".to_vec()),
        (
            "png".into(),
            std::fs::read(tiny().join("images/circle.png")).unwrap(),
        ),
        (
            "garbage".into(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    for cut in [
        1,
        7,
        64,
        500,
        model.len() / 3,
        model.len() / 2,
        model.len() - 100,
        model.len() - 1,
    ] {
        cases.push((format!("cut{cut}"), model[..cut].to_vec()));
    }
    for (name, bytes) in cases {
        let p = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&p, &bytes).unwrap();
        let err = eb_fails(&["build", s(&p), "-o", s(&out)]);
        assert!(
            err.contains(s(&p)),
            "{name}: error does not name the file: {err}"
        );
        assert!(!out.exists(), "{name}: an engine was written");
    }
    let err = eb_fails(&["build", "/nonexistent/model.onnx", "-o", s(&out)]);
    assert!(err.contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn damaged_engines_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = build_tiny(dir.path());
    let bytes = std::fs::read(&engine).unwrap();
    let p = dir.path().join("bad.engine");
    for cut in [
        0,
        4,
        8,
        23,
        24,
        100,
        bytes.len() / 2,
        bytes.len() - 8,
        bytes.len() - 1,
    ] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = eb_fails(&["inspect", s(&p)]);
        assert!(
            err.contains(s(&p))
                && (err.contains("truncated") || err.contains("not a jetrt engine")),
            "cut {cut}: {err}"
        );
    }
    for at in [
        9,
        30,
        200,
        bytes.len() / 2,
        bytes.len() - 20,
        bytes.len() - 3,
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        std::fs::write(&p, &b).unwrap();
        let err = eb_fails(&[
            "run",
            s(&p),
            "--input",
            s(&tiny().join("test_data_set_0/input_0.pb")),
        ]);
        assert!(err.contains(s(&p)), "flip at {at}: {err}");
        assert!(
            err.contains("corrupt") || err.contains("newer") || err.contains("truncated"),
            "flip at {at}: {err}"
        );
    }
    let err = eb_fails(&["inspect", s(&tiny().join("model.onnx"))]);
    assert!(err.contains("not a jetrt engine file"), "{err}");
}

#[test]
fn engines_reject_every_truncation_and_sampled_bit_flips() {
    // In-process over the whole file: cheap, and covers every cut length.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(build_tiny(dir.path())).unwrap();
    for n in 0..bytes.len() {
        assert!(
            jetrt_engine::engine::Engine::from_bytes(&bytes[..n], "t.engine").is_err(),
            "cut {n} loaded"
        );
    }
    for i in (0..bytes.len()).step_by(61) {
        let mut b = bytes.clone();
        b[i] ^= 1 << (i % 8);
        assert!(
            jetrt_engine::engine::Engine::from_bytes(&b, "t.engine").is_err(),
            "flip at {i} loaded"
        );
    }
}

#[test]
fn wrong_inputs_at_run_time_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = build_tiny(dir.path());
    let write = |name: &str, t: Tensor| {
        let p = dir.path().join(name);
        write_pb(&p, &t, "input").unwrap();
        p
    };
    let shape = write("shape.pb", Tensor::zeros(DataType::F32, &[1, 3, 32, 32]));
    let err = eb_fails(&["run", s(&engine), "--input", s(&shape)]);
    assert!(
        err.contains("input 'input'") && err.contains("1x3x64x64") && err.contains("1x3x32x32"),
        "{err}"
    );
    let dtype = write("dtype.pb", Tensor::zeros(DataType::I64, &[1, 3, 64, 64]));
    let err = eb_fails(&["run", s(&engine), "--input", s(&dtype)]);
    assert!(
        err.contains("expected float32") && err.contains("int64"),
        "{err}"
    );
    let ok = write("ok.pb", Tensor::zeros(DataType::F32, &[1, 3, 64, 64]));
    let err = eb_fails(&["run", s(&engine), "--input", s(&ok), s(&ok)]);
    assert!(
        err.contains("takes 1 input(s) (input), 2 were given"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.pb");
    std::fs::write(&garbage, [0xffu8; 37]).unwrap();
    let err = eb_fails(&["run", s(&engine), "--input", s(&garbage)]);
    assert!(err.contains(s(&garbage)), "{err}");
    let err = eb_fails(&["run", s(&engine), "--image", s(&tiny().join("labels.txt"))]);
    assert!(err.contains("cannot read image"), "{err}");
}

/// Single-op cases with ONNX Runtime's outputs as references
/// (scripts/make_ort_cases.py): shapes and attributes the ONNX suite's few
/// GatherND cases leave out.
#[test]
fn onnx_runtime_reference_cases_pass() {
    let cases = repo().join("models/ort_cases");
    let (code, out, err) = eb(&["test", "--backend", "cpu", s(&cases)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 passed, 0 failed"), "{out}");
}

/// Recurrent models exported by PyTorch (a 2-layer batch-first LSTM with
/// a Linear after it, a bidirectional GRU) give PyTorch's outputs
/// (`scripts/make_torch_cases.py`).
#[test]
fn pytorch_recurrent_models_match_pytorch() {
    let cases = repo().join("models/torch_cases");
    let (code, out, err) = eb(&["test", "--backend", "cpu", s(&cases)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
}

/// Decomposed ops with absurd constants or attributes fail the build with
/// the node and the reason, instead of building a huge constant.
#[test]
fn absurd_one_hot_depths_and_lrn_sizes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    let e = dir.path().join("m.engine");
    let cases: [(&str, f32, i64, &str); 4] = [
        ("OneHot", 0.0, 3, "depth 0 is not a whole number"),
        ("OneHot", 2.5, 3, "depth 2.5 is not a whole number"),
        ("OneHot", 1e12, 3, "is not a whole number in 1..=16777216"),
        ("LRN", 4.0, 100, "size 100 is not in 1..=9"),
    ];
    for (op, depth, size, want) in cases {
        let (nodes, inputs, inits) = if op == "OneHot" {
            let n = node("OneHot", &["i", "depth", "values"], &["y"], vec![]);
            let inits = vec![
                f32_init("depth", &[], &[depth]),
                f32_init("values", &[2], &[0.0, 1.0]),
            ];
            (vec![n], vec![value_info("i", 7, &[D::N(3)])], inits)
        } else {
            let size = AttributeProto {
                name: "size".into(),
                r#type: 2,
                i: size,
                ..Default::default()
            };
            let n = node("LRN", &["x"], &["y"], vec![size]);
            let x = value_info("x", 1, &[D::N(1), D::N(4), D::N(2), D::N(2)]);
            (vec![n], vec![x], vec![])
        };
        let y = value_info("y", 1, &[]);
        std::fs::write(&p, model_bytes(nodes, inputs, vec![y], inits, 17)).unwrap();
        let err = eb_fails(&["build", s(&p), "-o", s(&e)]);
        assert!(
            err.contains(&format!("{op}_y")) && err.contains(want),
            "{err}"
        );
    }
}

/// Converters that build tables or unroll from constants refuse absurd
/// ones with the node and the reason.
#[test]
fn absurd_windows_lengths_crops_and_hidden_sizes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    let e = dir.path().join("m.engine");
    let i64_init = |name: &str, dims: &[i64], v: &[i64]| engine_builder::onnx::proto::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    };
    let int_attr = |name: &str, i: i64| AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    };
    let x = |dims: &[i64]| value_info("x", 1, &dims.iter().map(|&d| D::N(d)).collect::<Vec<_>>());
    let cases = vec![
        (
            node("HannWindow", &["n"], &["y"], vec![]),
            vec![],
            vec![i64_init("n", &[], &[1 << 40])],
            "a window of 1099511627776 values",
        ),
        (
            node("ReverseSequence", &["x", "lens"], &["y"], vec![]),
            vec![x(&[4, 2, 3])],
            vec![i64_init("lens", &[2], &[9, 1])],
            "a sequence length of 9 (the time axis has 4 steps)",
        ),
        (
            node("CenterCropPad", &["x", "shape"], &["y"], vec![]),
            vec![x(&[4, 4])],
            vec![i64_init("shape", &[2], &[-1, 4])],
            "a negative target size -1",
        ),
        (
            node(
                "LSTM",
                &["x", "w", "r"],
                &["y"],
                vec![int_attr("hidden_size", 0)],
            ),
            vec![x(&[5, 1, 3])],
            vec![
                f32_init("w", &[1, 4, 3], &[0.0; 12]),
                f32_init("r", &[1, 4, 1], &[0.0; 4]),
            ],
            "hidden_size must be positive",
        ),
    ];
    for (n, inputs, inits, want) in cases {
        let op = n.op_type.clone();
        let y = value_info("y", 1, &[]);
        std::fs::write(&p, model_bytes(vec![n], inputs, vec![y], inits, 18)).unwrap();
        let err = eb_fails(&["build", s(&p), "-o", s(&e)]);
        assert!(
            err.contains(&format!("{op}_y")) && err.contains(want),
            "{err}"
        );
    }
}

#[test]
fn unsupported_ops_are_listed_together() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    let x = || value_info("x", 1, &[D::N(1), D::N(4)]);
    let nodes = vec![
        node("Relu", &["x"], &["a"], vec![]),
        node("NonZero", &["a"], &["b"], vec![]),
        node("Unique", &["a"], &["c"], vec![]),
        node("DoesNotExist", &["a"], &["d"], vec![]),
    ];
    let outs = ["b", "c", "d"]
        .iter()
        .map(|n| value_info(n, 1, &[]))
        .collect();
    std::fs::write(&p, model_bytes(nodes, vec![x()], outs, vec![], 17)).unwrap();
    let err = eb_fails(&["build", s(&p), "-o", s(&dir.path().join("m.engine"))]);
    assert!(err.contains("3 node(s)"), "{err}");
    for want in [
        "NonZero (node 'NonZero_b', ai.onnx opset 17)",
        "Unique (node 'Unique_c'",
        "DoesNotExist (node",
    ] {
        assert!(err.contains(want), "missing '{want}' in {err}");
    }
}

#[test]
fn dynamic_dims_need_a_profile_or_shape() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    let e = dir.path().join("m.engine");
    let x = value_info("x", 1, &[D::P("n"), D::N(2), D::P("h"), D::N(3)]);
    let y = value_info("y", 1, &[D::P("n"), D::N(2), D::P("h"), D::N(3)]);
    std::fs::write(
        &p,
        model_bytes(
            vec![node("Relu", &["x"], &["y"], vec![])],
            vec![x],
            vec![y],
            vec![],
            17,
        ),
    )
    .unwrap();
    let err = eb_fails(&["build", s(&p), "-o", s(&e)]);
    assert!(
        err.contains("dynamic dim 2 ('h')") && err.contains("--shape x="),
        "{err}"
    );
    let (code, out, err) = eb(&["build", s(&p), "-o", s(&e), "--shape", "x=4x2x5x3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("x float32 4x2x5x3"), "{out}");
    let err = eb_fails(&["build", s(&p), "-o", s(&e), "--shape", "x=4x7x5x3"]);
    assert!(err.contains("fixes it at 2"), "{err}");
    let err = eb_fails(&["build", s(&p), "-o", s(&e), "--shape", "nosuch=1x2x3x4"]);
    assert!(
        err.contains("'nosuch'") && err.contains("inputs are: x"),
        "{err}"
    );
    // A batch profile with the other dim fixed.
    let (code, out, err) = eb(&[
        "build",
        s(&p),
        "-o",
        s(&e),
        "--batch",
        "1:2:8",
        "--shape",
        "x=4x2x5x3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4x2x5x3"), "{out}");
}

#[test]
fn dynamic_batch_profiles_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    let e = dir.path().join("m.engine");
    let dims = [D::P("batch"), D::N(3)];
    let (x, y) = (value_info("x", 1, &dims), value_info("y", 1, &dims));
    std::fs::write(
        &p,
        model_bytes(
            vec![node("Sigmoid", &["x"], &["y"], vec![])],
            vec![x],
            vec![y],
            vec![],
            13,
        ),
    )
    .unwrap();
    let (code, out, err) = eb(&["build", s(&p), "-o", s(&e), "--batch", "1:2:4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(batch 1..4)"), "{out}");
    let write = |n: usize| {
        let f = dir.path().join(format!("in{n}.pb"));
        write_pb(&f, &Tensor::zeros(DataType::F32, &[n, 3]), "x").unwrap();
        f
    };
    for n in [1, 4] {
        let (code, out, err) = eb(&["run", s(&e), "--input", s(&write(n)), "-o", s(dir.path())]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("float32 {n}x3: min 0.5000 max 0.5000")),
            "{out}"
        );
    }
    let err = eb_fails(&["run", s(&e), "--input", s(&write(5))]);
    assert!(
        err.contains("outside the engine's profile") && err.contains("--batch"),
        "{err}"
    );
    let (code, _, err) = eb(&["build", s(&p), "-o", s(&e), "--batch", "4:2:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MIN <= OPT <= MAX"), "{err}");
}

#[test]
fn fp16_on_the_cpu_backend_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("x.engine");
    let err = eb_fails(&[
        "build",
        s(&tiny().join("model.onnx")),
        "-o",
        s(&e),
        "--fp16",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("--fp16") && err.contains("cpu"), "{err}");
    let err = eb_fails(&[
        "build",
        s(&tiny().join("model.onnx")),
        "-o",
        s(&e),
        "--backend",
        "tensorrt",
    ]);
    assert!(err.contains("not compiled into this build"), "{err}");
    assert!(!e.exists());
}

/// On a machine without a usable GPU (CI's), every subcommand asked for
/// the cuda backend stops with a clear error saying what is missing, and
/// `auto` falls back to the cpu backend. On a GPU machine the test says it
/// skipped.
#[test]
fn the_cuda_backend_without_a_gpu_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("x.engine");
    let model = tiny().join("model.onnx");
    let (code, out, err) = eb(&["build", s(&model), "-o", s(&e), "--backend", "cuda"]);
    if code == 0 {
        println!("SKIPPED: this machine has a usable GPU ({out})");
        return;
    }
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("cuda backend needs") || err.contains("GPU") || err.contains("CUDA"),
        "{err}"
    );
    assert!(!e.exists());
    // auto picks the cpu backend here, and says so in the build line.
    let (code, out, err) = eb(&["build", s(&model), "-o", s(&e)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cpu backend"), "{out}");
    for sub in [
        vec![
            "run",
            s(&e),
            "--input",
            s(&tiny().join("test_data_set_0/input_0.pb")),
        ],
        vec!["bench", s(&e), "--runs", "1"],
    ] {
        let mut args = sub.clone();
        args.extend(["--backend", "cuda"]);
        let err = eb_fails(&args);
        assert!(err.contains("cannot run") && err.contains("cuda"), "{err}");
    }
    let err = eb_fails(&[
        "build",
        s(&model),
        "-o",
        s(&e),
        "--backend",
        "cuda",
        "--device",
        "3",
    ]);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_plugins_are_checked() {
    let (code, _, err) = eb(&["build"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = eb(&["frobnicate"]);
    assert_eq!(code, 2);
    let (code, _, _) = eb(&["build", "m.onnx", "-o", "x", "--batch", "zero"]);
    assert_eq!(code, 2);
    let err = eb_fails(&["test", "--plugin", "/nonexistent/libp.so", s(&tiny())]);
    assert!(
        err.contains("/nonexistent/libp.so") && err.contains("no such file"),
        "{err}"
    );
    let text = tiny().join("labels.txt");
    let err = eb_fails(&["bench", s(&text), "--plugin", s(&text)]);
    assert!(err.contains("cannot be loaded"), "{err}");
}

#[test]
fn ops_lists_every_default_domain_operator() {
    let (code, out, err) = eb(&["ops"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        engine_builder::onnx::ops_list::DEFAULT_DOMAIN_OPS.len()
    );
    let row = |op: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(op))
            .copied()
            .unwrap_or_default()
    };
    assert!(row("Conv").ends_with("opset 1-28"), "{}", row("Conv"));
    assert!(
        row("HardSwish").ends_with("opset 14-28"),
        "{}",
        row("HardSwish")
    );
    assert!(
        row("NonZero").ends_with("unsupported"),
        "{}",
        row("NonZero")
    );
    assert!(err.contains("operators supported"));
}

/// A crafted Conv whose pads are 2^62 (it used to build, then write through
/// a wild pointer at run time) and an input of 2^64 elements (whose volume
/// wrapped to 0) are build errors naming the node.
#[test]
fn absurd_sizes_in_a_model_are_build_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("m.engine");
    let p = dir.path().join("pads.onnx");
    let x = value_info("x", 1, &[D::N(1), D::N(1), D::N(4), D::N(4)]);
    let y = value_info("y", 1, &[]);
    let conv = node(
        "Conv",
        &["x", "w"],
        &["y"],
        vec![attr_ints("pads", &[1 << 62, 1 << 62, 1 << 62, 1 << 62])],
    );
    let w = f32_init("w", &[1, 1, 1, 1], &[1.0]);
    std::fs::write(
        &p,
        model_bytes(vec![conv], vec![x], vec![y.clone()], vec![w], 17),
    )
    .unwrap();
    let err = eb_fails(&["build", s(&p), "-o", s(&e)]);
    assert!(err.contains("at most") && err.contains("Conv"), "{err}");
    let p = dir.path().join("wide.onnx");
    let x = value_info("x", 1, &[D::N(1 << 32), D::N(1 << 32)]);
    let relu = node("Relu", &["x"], &["y"], vec![]);
    std::fs::write(&p, model_bytes(vec![relu], vec![x], vec![y], vec![], 17)).unwrap();
    let err = eb_fails(&["build", s(&p), "-o", s(&e)]);
    assert!(err.contains("Relu") && err.contains("exceed"), "{err}");
}

/// `engine-builder ops | head`: the reader goes away early and the tool
/// ends quietly (by SIGPIPE, as `cat` does), not with a panic's exit 101
/// and a backtrace on stderr.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_engine-builder"))
        .arg("ops")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end of the pipe before the tool writes (most of) its list.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let quiet = out.status.success() || out.status.signal() == Some(SIGPIPE);
    assert!(quiet, "{:?}: {err}", out.status);
}

/// SIGPIPE's number on Linux.
const SIGPIPE: i32 = 13;

/// A missing file's OS error is said once (it used to be repeated as the
/// error's cause by `{:#}`).
#[test]
fn a_missing_model_names_the_os_error_once() {
    let err = eb_fails(&[
        "build",
        "/nonexistent/model.onnx",
        "-o",
        "/tmp/never.engine",
    ]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/model.onnx"), "{err}");
}

/// `run` without `-o` prints its summary and writes no file.
#[test]
fn run_writes_outputs_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = build_tiny(dir.path());
    let cwd = tempfile::tempdir().unwrap();
    let img = tiny().join("images/circle.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine-builder"))
        .args(["run", s(&engine), "--image", s(&img)])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("circle"),
        "{stdout}"
    );
    assert!(!stdout.contains("wrote"), "{stdout}");
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}
