//! The torchvision models in $JETRT_MODELS (ONNX backend-test layout,
//! PyTorch's outputs as references) through `engine-builder`.

use jetrt_tests::{bin, cases, data_dir, run};

#[test]
#[cfg_attr(
    no_jetrt_models,
    ignore = "JETRT_MODELS is not set to a folder: no models to test (see README)"
)]
fn every_model_passes_engine_builder_test() {
    let Some(dir) = data_dir("JETRT_MODELS", "the model zoo test") else {
        return;
    };
    let cases = cases(&dir);
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut args = vec!["test"];
    args.extend(cases.iter().map(|c| c.to_str().expect("utf-8 path")));
    let (code, out, err) = run(&bin("engine-builder"), &args);
    println!("{out}");
    assert_eq!(code, 0, "{out}\n{err}");
    for c in &cases {
        let name = c.file_name().unwrap().to_string_lossy();
        let row = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&*name))
            .unwrap_or_else(|| panic!("no row for {name}"));
        assert!(row.starts_with("PASS"), "{row}");
        // Every data set counts: a dynamic-batch case checks each batch size.
        let sets = std::fs::read_dir(c)
            .unwrap()
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("test_data_set_")
                })
            })
            .count();
        assert!(
            row.contains(&format!(" {sets} set")),
            "{row} (expected {sets} data sets)"
        );
    }
    assert_eq!(
        out.lines().last(),
        Some(format!("{} passed, 0 failed", cases.len()).as_str())
    );
}

#[test]
#[cfg_attr(
    no_jetrt_models,
    ignore = "JETRT_MODELS is not set to a folder: no models to test (see README)"
)]
fn an_engine_file_verifies_against_every_data_set() {
    let Some(dir) = data_dir("JETRT_MODELS", "the engine file round trip") else {
        return;
    };
    // The smallest model keeps this quick; any will do.
    let case = cases(&dir)
        .into_iter()
        .min_by_key(|c| {
            std::fs::metadata(c.join("model.onnx"))
                .map(|m| m.len())
                .unwrap_or(u64::MAX)
        })
        .expect("a case");
    let tmp = tempfile::tempdir().unwrap();
    let engine = tmp.path().join("m.engine");
    let eb = bin("engine-builder");
    let model = case.join("model.onnx");
    let (code, out, err) = run(
        &eb,
        &[
            "build",
            model.to_str().unwrap(),
            "-o",
            engine.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&eb, &["inspect", engine.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("precision  fp32"), "{out}");
    for set in std::fs::read_dir(&case)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
    {
        if !set
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("test_data_set_")
        {
            continue;
        }
        let (code, out, err) = run(
            &eb,
            &["verify", engine.to_str().unwrap(), set.to_str().unwrap()],
        );
        if code != 0 && out.is_empty() {
            // A fixed-batch engine cannot take another batch's data set.
            assert!(err.contains("expected dims"), "{err}");
            continue;
        }
        assert_eq!(code, 0, "{}: {out}{err}", set.display());
        assert!(out.contains("verify: PASS"), "{out}");
    }
}
