//! The ONNX project's node test suite (generated from the pinned onnx
//! package by scripts/gen_onnx_cases.py) through `engine-builder test
//! --allow-list tests/onnx_allowlist.txt`: every case the allow-list does
//! not exclude must pass, and every rule of the list must exclude something.
//! (scripts/check_cuda.py runs the same command with --backend cuda on a
//! GPU machine, adding tests/onnx_allowlist_cuda.txt.)

use engine_builder::allowlist::{self, CaseInfo, Rule};
use jetrt_tests::{bin, data_dir, run};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn list_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn rules(name: &str) -> Vec<Rule> {
    allowlist::read(&list_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn cases_dir() -> Option<PathBuf> {
    if std::env::var_os("JETRT_ONNX_CASES").is_none() {
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/onnx-cases");
        if default.is_dir() {
            return Some(default);
        }
    }
    data_dir(
        "JETRT_ONNX_CASES",
        "the ONNX node conformance suite (scripts/gen_onnx_cases.py writes it)",
    )
}

fn all_cases(dir: &Path) -> Vec<CaseInfo> {
    let mut v: Vec<CaseInfo> = jetrt_tests::cases(dir)
        .iter()
        .map(|c| allowlist::case_info(c).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Rules of `list` that exclude none of `cases`, as `file:line rule`.
fn stale(list: &[Rule], cases: &[CaseInfo]) -> Vec<String> {
    list.iter()
        .filter(|r| !cases.iter().any(|c| allowlist::matches(r, c)))
        .map(|r| format!("{}:{}: {} {}", r.file.display(), r.line, r.kind, r.pattern))
        .collect()
}

#[test]
#[cfg_attr(
    no_onnx_cases,
    ignore = "no ONNX node cases: set JETRT_ONNX_CASES or run scripts/gen_onnx_cases.py"
)]
fn every_allowed_node_case_passes() {
    let Some(dir) = cases_dir() else { return };
    let list = rules("onnx_allowlist.txt");
    let cases = all_cases(&dir);
    assert!(
        cases.len() > 1000,
        "only {} cases in {}",
        cases.len(),
        dir.display()
    );
    let stale = stale(&list, &cases);
    assert!(
        stale.is_empty(),
        "allow-list rules that exclude nothing (remove them): {stale:#?}"
    );
    let allowed = cases
        .iter()
        .filter(|c| allowlist::exclusion(c, &list).is_none())
        .count();
    let list_file = list_path("onnx_allowlist.txt");
    let (code, out, err) = run(
        &bin("engine-builder"),
        &[
            "test",
            "--backend",
            "cpu",
            "--allow-list",
            list_file.to_str().expect("utf-8 path"),
            dir.to_str().expect("utf-8 path"),
        ],
    );
    let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    let passed = out.lines().filter(|l| l.starts_with("PASS")).count();
    println!(
        "ONNX node cases: {} total, {allowed} allowed, {passed} passed",
        cases.len()
    );
    for l in out.lines().skip_while(|l| !l.starts_with("excluded by")) {
        println!("{l}");
    }
    assert!(
        failures.is_empty(),
        "{} allowed cases fail:\n{}\n{err}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(passed, allowed);
}

/// The cuda backend's own list is checked here too, though its cases run
/// only on a GPU machine: its rules must be well formed and each must
/// exclude some case the cpu list allows.
#[test]
fn the_cuda_allow_list_is_well_formed_and_not_stale() {
    let cuda = rules("onnx_allowlist_cuda.txt");
    let Some(dir) = cases_dir() else { return };
    let cpu = rules("onnx_allowlist.txt");
    let allowed: Vec<CaseInfo> = all_cases(&dir)
        .into_iter()
        .filter(|c| allowlist::exclusion(c, &cpu).is_none())
        .collect();
    let stale = stale(&cuda, &allowed);
    assert!(
        stale.is_empty(),
        "cuda allow-list rules that exclude no case the cpu list allows: {stale:#?}"
    );
}

#[test]
fn op_exclusions_agree_with_engine_builder_ops() {
    let list = rules("onnx_allowlist.txt");
    let (code, out, _) = run(&bin("engine-builder"), &["ops"]);
    assert_eq!(code, 0);
    let unsupported: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.ends_with("unsupported"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for r in list.iter().filter(|r| r.kind == "op") {
        assert!(
            unsupported.contains(r.pattern.as_str()),
            "allow-list line {} excludes {} wholesale, but engine-builder ops lists it as supported",
            r.line,
            r.pattern
        );
    }
    // Every unsupported op some case uses must be excluded by name.
    let Some(dir) = cases_dir() else { return };
    let listed: BTreeSet<&str> = list
        .iter()
        .filter(|r| r.kind == "op")
        .map(|r| r.pattern.as_str())
        .collect();
    let mut missing = BTreeSet::new();
    for c in all_cases(&dir) {
        for (d, op) in &c.ops {
            if d.is_empty() && unsupported.contains(op.as_str()) && !listed.contains(op.as_str()) {
                missing.insert(op.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "unsupported ops with cases but no `op` line: {missing:?}"
    );
}
