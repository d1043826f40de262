//! Allow-lists of test cases: which cases of a suite a backend is held to,
//! and why each of the others is not. `engine-builder test --allow-list`
//! applies them; the conformance test and the GPU check script use that.
//!
//! One rule per line, `#` comments:
//!
//! ```text
//! op OPTYPE      REASON   every case using the ai.onnx op
//! domain NAME    REASON   every case using an op of that domain
//! dtype TYPE     REASON   every case with a graph input or output of that
//!                         element type (or sequence, optional, map)
//! case GLOB      REASON   cases whose name matches (* matches anything)
//! ```

use crate::onnx::proto::{type_proto, ModelProto};
use prost::Message;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub kind: String,
    pub pattern: String,
    pub reason: String,
    /// The file and line it came from, for messages.
    pub file: PathBuf,
    pub line: usize,
}

/// Reads the rules of an allow-list file.
pub fn read(path: &Path) -> Result<Vec<Rule>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read allow-list {}: {e}", path.display()))?;
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
        let at = format!("{}:{}", path.display(), i + 1);
        if !["op", "domain", "dtype", "case"].contains(&kind.as_str()) {
            return Err(format!(
                "{at}: unknown rule '{kind}' (op, domain, dtype or case)"
            ));
        }
        if pattern.is_empty() || reason.is_empty() {
            return Err(format!("{at}: a rule needs a pattern and a reason"));
        }
        rules.push(Rule {
            kind,
            pattern,
            reason,
            file: path.to_path_buf(),
            line: i + 1,
        });
    }
    Ok(rules)
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
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

/// ONNX's element type numbers, by name.
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
#[derive(Clone, Debug)]
pub struct CaseInfo {
    pub name: String,
    pub ops: BTreeSet<(String, String)>,
    pub types: BTreeSet<String>,
}

/// Reads what a case folder's model uses.
pub fn case_info(dir: &Path) -> Result<CaseInfo, String> {
    let path = dir.join("model.onnx");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m = ModelProto::decode(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))?;
    let g = m.graph.unwrap_or_default();
    let ops = g
        .node
        .iter()
        .map(|n| {
            (
                crate::onnx::normalize_domain(&n.domain).to_string(),
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
    Ok(CaseInfo {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ops,
        types,
    })
}

/// Whether `r` excludes case `c`.
pub fn matches(r: &Rule, c: &CaseInfo) -> bool {
    match r.kind.as_str() {
        "op" => c.ops.contains(&(String::new(), r.pattern.clone())),
        "domain" => c.ops.iter().any(|(d, _)| *d == r.pattern),
        "dtype" => c.types.contains(&r.pattern),
        _ => glob(&r.pattern, &c.name),
    }
}

/// The first rule excluding a case (the reason it is counted under).
pub fn exclusion<'a>(c: &CaseInfo, rules: &'a [Rule]) -> Option<&'a Rule> {
    rules.iter().find(|r| matches(r, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        assert!(glob(
            "test_maxpool_*dilations*",
            "test_maxpool_2d_dilations"
        ));
        assert!(glob("test_a*b*c", "test_aXbYc"));
        assert!(!glob("test_a*b*c", "test_aXbYcd"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        // A prefix and suffix that would overlap do not match.
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn bad_rules_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("list.txt");
        std::fs::write(&p, "# c\nop Foo   because\nwhat Foo  x\n").unwrap();
        let e = read(&p).unwrap_err();
        assert!(
            e.contains("list.txt:3") && e.contains("unknown rule"),
            "{e}"
        );
        std::fs::write(&p, "case test_x\n").unwrap();
        assert!(read(&p)
            .unwrap_err()
            .contains("needs a pattern and a reason"));
    }
}
