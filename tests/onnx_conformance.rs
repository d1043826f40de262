//! The ONNX project's node test suite (generated from the pinned onnx
//! package by scripts/gen_onnx_cases.py) through `engine-builder test`:
//! every case not excluded by tests/onnx_allowlist.txt must pass.

use engine_builder::onnx::proto::{type_proto, ModelProto};
use jetrt_tests::{bin, data_dir, run};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug)]
struct Rule {
    kind: String,
    pattern: String,
    reason: String,
    line: usize,
}

fn allowlist() -> Vec<Rule> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx_allowlist.txt");
    let text = std::fs::read_to_string(&path).expect("allow-list readable");
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let kind = parts.next().unwrap_or_default().to_string();
        let pattern = parts.next().unwrap_or_default().to_string();
        let reason = parts.next().unwrap_or_default().trim().to_string();
        assert!(
            ["op", "domain", "dtype", "case"].contains(&kind.as_str()),
            "allow-list line {}: unknown rule '{kind}'",
            i + 1
        );
        assert!(
            !pattern.is_empty() && !reason.is_empty(),
            "allow-list line {}: a rule needs a reason",
            i + 1
        );
        rules.push(Rule {
            kind,
            pattern,
            reason,
            line: i + 1,
        });
    }
    rules
}

/// `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

const ELEM_TYPES: [&str; 29] = [
    "undefined",
    "float32",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "int32",
    "int64",
    "string",
    "bool",
    "float16",
    "float64",
    "uint32",
    "uint64",
    "complex64",
    "complex128",
    "bfloat16",
    "float8e4m3fn",
    "float8e4m3fnuz",
    "float8e5m2",
    "float8e5m2fnuz",
    "uint4",
    "int4",
    "float4e2m1",
    "float8e8m0",
    "uint2",
    "int2",
    "float6e2m3",
    "float6e3m2",
];

/// What a case uses: (domain, op) pairs and graph input/output types.
struct CaseInfo {
    name: String,
    ops: BTreeSet<(String, String)>,
    types: BTreeSet<String>,
}

fn case_info(dir: &Path) -> CaseInfo {
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model readable");
    let m = ModelProto::decode(bytes.as_slice()).expect("case model decodes");
    let g = m.graph.unwrap_or_default();
    let ops = g
        .node
        .iter()
        .map(|n| {
            (
                engine_builder::onnx::normalize_domain(&n.domain).to_string(),
                n.op_type.clone(),
            )
        })
        .collect();
    let types = g
        .input
        .iter()
        .chain(&g.output)
        .map(|v| match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => ELEM_TYPES
                .get(t.elem_type as usize)
                .copied()
                .unwrap_or("unknown")
                .to_string(),
            Some(type_proto::Value::SequenceType(_)) => "sequence".into(),
            Some(type_proto::Value::OptionalType(_)) => "optional".into(),
            Some(type_proto::Value::MapType(_)) => "map".into(),
            _ => "unknown".into(),
        })
        .collect();
    CaseInfo {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        ops,
        types,
    }
}

fn matches(r: &Rule, c: &CaseInfo) -> bool {
    match r.kind.as_str() {
        "op" => c.ops.contains(&(String::new(), r.pattern.clone())),
        "domain" => c.ops.iter().any(|(d, _)| *d == r.pattern),
        "dtype" => c.types.contains(&r.pattern),
        _ => glob(&r.pattern, &c.name),
    }
}

/// The first rule excluding a case (the reason it is counted under).
fn exclusion<'a>(c: &CaseInfo, rules: &'a [Rule]) -> Option<&'a Rule> {
    rules.iter().find(|r| matches(r, c))
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
        .map(|c| case_info(c))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[test]
fn every_allowed_node_case_passes() {
    let Some(dir) = cases_dir() else { return };
    let rules = allowlist();
    let cases = all_cases(&dir);
    assert!(
        cases.len() > 1000,
        "only {} cases in {}",
        cases.len(),
        dir.display()
    );
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    let mut used = vec![false; rules.len()];
    let mut allowed = Vec::new();
    for c in &cases {
        for (u, r) in used.iter_mut().zip(&rules) {
            *u |= matches(r, c);
        }
        match exclusion(c, &rules) {
            Some(r) => *by_reason.entry(&r.reason).or_default() += 1,
            None => allowed.push(dir.join(&c.name)),
        }
    }
    let stale: Vec<String> = rules
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| format!("line {}: {} {}", r.line, r.kind, r.pattern))
        .collect();
    assert!(
        stale.is_empty(),
        "allow-list rules that exclude nothing (remove them): {stale:#?}"
    );

    let mut args = vec!["test".to_string()];
    args.extend(allowed.iter().map(|p| p.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(&bin("engine-builder"), &args);
    let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    let passed = out.lines().filter(|l| l.starts_with("PASS")).count();

    println!(
        "ONNX node cases: {} total, {} allowed, {passed} passed",
        cases.len(),
        allowed.len()
    );
    println!("excluded, by reason:");
    let mut reasons: Vec<_> = by_reason.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (reason, n) in reasons {
        println!("  {n:>5}  {reason}");
    }
    assert!(
        failures.is_empty(),
        "{} allowed cases fail:\n{}\n{err}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(passed, allowed.len());
}

#[test]
fn op_exclusions_agree_with_engine_builder_ops() {
    let rules = allowlist();
    let (code, out, _) = run(&bin("engine-builder"), &["ops"]);
    assert_eq!(code, 0);
    let unsupported: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.ends_with("unsupported"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for r in rules.iter().filter(|r| r.kind == "op") {
        assert!(
            unsupported.contains(r.pattern.as_str()),
            "allow-list line {} excludes {} wholesale, but engine-builder ops lists it as supported",
            r.line,
            r.pattern
        );
    }
    // Every unsupported op some case uses must be excluded by name.
    let Some(dir) = cases_dir() else { return };
    let listed: BTreeSet<&str> = rules
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

#[test]
fn globs_match_as_documented() {
    assert!(glob(
        "test_maxpool_*dilations*",
        "test_maxpool_2d_dilations"
    ));
    assert!(glob("test_a*b*c", "test_aXbYc"));
    assert!(!glob("test_a*b*c", "test_aXbYcd"));
    assert!(glob("exact", "exact") && !glob("exact", "exactly"));
}
