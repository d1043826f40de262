//! Cases in the ONNX backend-test layout: `model.onnx`, optional
//! `meta.json`, and `test_data_set_K/` folders of `input_J.pb` and
//! `output_J.pb`; reading them, building them, and judging the outputs.

use crate::build::{self, BuildOptions};
use crate::compare::{compare, Metrics, Tolerance};
use crate::convert::{BatchProfile, Registry};
use crate::error::{Error, Result};
use crate::onnx::{read_pb, OnnxModel};
use jetrt_engine::backend::{BackendKind, Precision, RunConfig, Tactics};
use jetrt_engine::engine::Engine;
use jetrt_engine::shape::Dim;
use jetrt_engine::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One `test_data_set_K` folder.
#[derive(Clone, Debug)]
pub struct DataSet {
    pub dir: PathBuf,
    /// (name recorded in the file, tensor), in J order.
    pub inputs: Vec<(String, Tensor)>,
    pub outputs: Vec<(String, Tensor)>,
}

fn numbered(dir: &Path, stem: &str) -> Result<Vec<(String, Tensor)>> {
    let mut v = Vec::new();
    loop {
        let p = dir.join(format!("{stem}_{}.pb", v.len()));
        if !p.exists() {
            return Ok(v);
        }
        let (t, name) = read_pb(&p)?;
        v.push((name, t));
    }
}

/// Reads `input_J.pb` and `output_J.pb` (J = 0, 1, ...) from a folder.
pub fn read_data_set(dir: &Path) -> Result<DataSet> {
    if !dir.is_dir() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            msg: "not a directory".into(),
        });
    }
    Ok(DataSet {
        dir: dir.to_path_buf(),
        inputs: numbered(dir, "input")?,
        outputs: numbered(dir, "output")?,
    })
}

/// The `test_data_set_K` folders of a case, in K order.
pub fn data_set_dirs(case: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(case)
        .map_err(|e| Error::io(case, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let k = name.strip_prefix("test_data_set_")?.parse().ok()?;
            e.path().is_dir().then_some((k, e.path()))
        })
        .collect();
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// Tolerances from a case's `meta.json`, when it has one.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub fp32: Option<Tolerance>,
    pub fp16: Option<Tolerance>,
}

pub fn read_meta(case: &Path) -> Result<Option<Meta>> {
    let p = case.join("meta.json");
    if !p.exists() {
        return Ok(None);
    }
    let bad = |msg: String| Error::Data {
        path: p.clone(),
        msg,
    };
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let rule = |key: &str| -> Result<Option<Tolerance>> {
        match v.get("tolerance").and_then(|t| t.get(key)) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Tolerance::parse(s)
                .map(Some)
                .ok_or_else(|| bad(format!("unrecognized {key} tolerance '{s}'"))),
            Some(other) => Err(bad(format!(
                "{key} tolerance should be a string, found {other}"
            ))),
        }
    };
    Ok(Some(Meta {
        fp32: rule("fp32")?,
        fp16: rule("fp16")?,
    }))
}

/// Orders data-set tensors as the engine's inputs: by the names stored in
/// the files when they all match, else by position.
pub fn order_inputs(names: &[String], given: &[(String, Tensor)]) -> Result<Vec<Tensor>, String> {
    if given.len() != names.len() {
        return Err(format!(
            "the engine takes {} input(s) ({}), {} were given",
            names.len(),
            names.join(", "),
            given.len()
        ));
    }
    let by_name: HashMap<&str, &Tensor> = given.iter().map(|(n, t)| (n.as_str(), t)).collect();
    if names.iter().all(|n| by_name.contains_key(n.as_str())) && by_name.len() == names.len() {
        return Ok(names.iter().map(|n| by_name[n.as_str()].clone()).collect());
    }
    Ok(given.iter().map(|(_, t)| t.clone()).collect())
}

/// Judges every output of one run against its reference.
pub fn judge(
    outputs: &[Tensor],
    refs: &[(String, Tensor)],
    tol: Tolerance,
) -> Result<Vec<(Metrics, bool)>, String> {
    if outputs.len() != refs.len() {
        return Err(format!(
            "{} outputs, {} references",
            outputs.len(),
            refs.len()
        ));
    }
    outputs
        .iter()
        .zip(refs)
        .enumerate()
        .map(|(j, (y, (_, r)))| {
            let m = compare(y, r).map_err(|e| format!("output {j}: {e}"))?;
            let ok = m.passes(tol);
            Ok((m, ok))
        })
        .collect()
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// Why it failed (build error, run error, or which output missed).
    pub detail: String,
    pub data_sets: usize,
    /// The worst output over all data sets (by relative error).
    pub worst: Option<Metrics>,
    pub build_ms: f64,
    pub run_ms: f64,
    /// Graph inputs bound to their data-set values at build time.
    pub bound: Vec<String>,
}

/// Options for running cases.
#[derive(Clone, Debug)]
pub struct CaseOptions {
    pub plugins: Vec<PathBuf>,
    pub threads: Option<usize>,
    /// What each case is built for and run on.
    pub backend: build::BackendChoice,
    pub precision: Precision,
    pub workspace: Option<usize>,
    pub device: usize,
    pub tactics: Tactics,
    pub timing_cache: Option<PathBuf>,
}

impl Default for CaseOptions {
    /// The cpu backend in fp32: the reference every other run is held to.
    fn default() -> Self {
        CaseOptions {
            plugins: Vec::new(),
            threads: None,
            backend: build::BackendChoice::Kind(BackendKind::Cpu),
            precision: Precision::Fp32,
            workspace: None,
            device: 0,
            tactics: Tactics::default(),
            timing_cache: None,
        }
    }
}

/// The graph's inputs that are not initializers, in order.
fn graph_input_names(model: &OnnxModel) -> Vec<String> {
    let g = model.graph();
    let init: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    g.input
        .iter()
        .filter(|i| !init.contains(i.name.as_str()))
        .map(|i| i.name.clone())
        .collect()
}

/// Graph inputs (not initializers) that `value` is computed from.
fn graph_inputs_feeding(model: &OnnxModel, value: &str) -> Vec<String> {
    let g = model.graph();
    let inputs = graph_input_names(model);
    let mut found = Vec::new();
    let mut todo = vec![value.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = todo.pop() {
        if !seen.insert(v.clone()) {
            continue;
        }
        if inputs.contains(&v) {
            found.push(v);
            continue;
        }
        if let Some(n) = g.node.iter().find(|n| n.output.contains(&v)) {
            todo.extend(n.input.iter().filter(|i| !i.is_empty()).cloned());
        }
    }
    found.sort();
    found
}

/// Dims fixed per input name (`None`: as the model declares).
type DimOverrides = HashMap<String, Vec<Option<usize>>>;

/// Dims overrides and batch profile that fit every data set.
fn shapes_for(model: &OnnxModel, sets: &[DataSet]) -> Result<(DimOverrides, BatchProfile), String> {
    let g = model.graph();
    let initializers: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let mut shapes = HashMap::new();
    let (mut bmin, mut bmax) = (usize::MAX, 0usize);
    for (j, input) in inputs.iter().enumerate() {
        let declared = declared_dims(input);
        let seen: Vec<&[usize]> = sets
            .iter()
            .filter_map(|s| s.inputs.get(j).map(|(_, t)| t.shape()))
            .collect();
        let Some(first) = seen.first() else { continue };
        if seen.iter().any(|d| d.len() != first.len()) {
            return Err(format!("data sets give input {j} different ranks"));
        }
        let mut fixed = vec![None; first.len()];
        for i in 0..first.len() {
            let dynamic = declared
                .as_ref()
                .is_none_or(|d| d.get(i).is_none_or(|x| x.is_none()));
            if !dynamic {
                continue;
            }
            let all_same = seen.iter().all(|d| d[i] == first[i]);
            if i == 0 && !all_same {
                for d in &seen {
                    bmin = bmin.min(d[0]);
                    bmax = bmax.max(d[0]);
                }
            } else if all_same {
                fixed[i] = Some(first[i]);
            } else {
                return Err(format!("data sets disagree on dim {i} of input {j}"));
            }
        }
        if fixed.iter().any(Option::is_some) {
            shapes.insert(input.name.clone(), fixed);
        }
    }
    let batch = if bmax == 0 {
        BatchProfile::default()
    } else {
        BatchProfile {
            min: bmin,
            opt: bmin,
            max: bmax,
        }
    };
    Ok((shapes, batch))
}

/// The dims a graph input declares: `Some(n)` fixed, `None` dynamic.
fn declared_dims(input: &crate::onnx::proto::ValueInfoProto) -> Option<Vec<Option<usize>>> {
    use crate::onnx::proto::tensor_shape_proto::dimension::Value as V;
    use crate::onnx::proto::type_proto::Value as T;
    let Some(T::TensorType(t)) = input.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    Some(
        t.shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(V::DimValue(v)) if v >= 0 => Some(v as usize),
                _ => None,
            })
            .collect(),
    )
}

/// Builds a case's model for the backend the options name and checks
/// every data set.
pub fn run_case(dir: &Path, registry: &Registry, opts: &CaseOptions) -> CaseResult {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut result = CaseResult {
        name,
        passed: false,
        detail: String::new(),
        data_sets: 0,
        worst: None,
        build_ms: 0.0,
        run_ms: 0.0,
        bound: Vec::new(),
    };
    if let Err(e) = run_case_inner(dir, registry, opts, &mut result) {
        result.passed = false;
        result.detail = e;
    }
    result
}

fn run_case_inner(
    dir: &Path,
    registry: &Registry,
    opts: &CaseOptions,
    res: &mut CaseResult,
) -> Result<(), String> {
    let model = OnnxModel::load(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let dirs = data_set_dirs(dir).map_err(|e| e.to_string())?;
    if dirs.is_empty() {
        return Err("no test_data_set_K folders".into());
    }
    let sets: Vec<DataSet> = dirs
        .iter()
        .map(|d| read_data_set(d))
        .collect::<Result<_>>()
        .map_err(|e| e.to_string())?;
    res.data_sets = sets.len();
    let meta = read_meta(dir).map_err(|e| e.to_string())?;
    let tol = match opts.precision {
        Precision::Fp32 => meta.and_then(|m| m.fp32).unwrap_or(Tolerance::ELEMENTWISE),
        Precision::Fp16 => meta.and_then(|m| m.fp16).unwrap_or(Tolerance::FP16),
    };
    let (shapes, batch) = shapes_for(&model, &sets)?;
    let mut bo = BuildOptions {
        backend: opts.backend,
        precision: opts.precision,
        workspace: opts.workspace,
        device: opts.device,
        tactics: opts.tactics,
        timing_cache: opts.timing_cache.clone(),
        plugins: opts.plugins.clone(),
        ..Default::default()
    };
    bo.convert.shapes = shapes;
    bo.convert.batch = batch;
    let graph_inputs = graph_input_names(&model);
    let t0 = Instant::now();
    // Inputs that feed a shape operand (Reshape's shape, reduce axes, ...) are
    // bound to their data-set values and the build retried, as tract's
    // harness does; runtime shape tensors proper are a TensorRT matter.
    let engine = loop {
        match build::build_engine(&model, registry, &bo, &mut |_| {}) {
            Ok(e) => break e,
            Err(Error::Convert {
                needs_const: Some(value),
                ref msg,
                ref node,
                ..
            }) => {
                let feeding: Vec<String> = graph_inputs_feeding(&model, &value)
                    .into_iter()
                    .filter(|n| !bo.convert.bind.contains_key(n))
                    .collect();
                if feeding.is_empty() {
                    return Err(format!("build: node '{node}': {msg}"));
                }
                for name in feeding {
                    let j = graph_inputs
                        .iter()
                        .position(|n| *n == name)
                        .expect("a graph input");
                    let first = sets[0]
                        .inputs
                        .get(j)
                        .map(|(_, t)| t.clone())
                        .ok_or("data set lacks an input")?;
                    if sets
                        .iter()
                        .any(|s| s.inputs.get(j).map(|(_, t)| t) != Some(&first))
                    {
                        return Err(format!("build: '{name}' must be bound at build time, but data sets disagree on it"));
                    }
                    res.bound.push(name.clone());
                    bo.convert.bind.insert(name, first);
                }
            }
            Err(e) => return Err(format!("build: {e}")),
        }
    };
    // A round trip through the file format, as a user's engine takes.
    let engine = Engine::from_bytes(&engine.to_bytes(), dir.join("model.engine"))
        .map_err(|e| e.to_string())?;
    let backend = BackendKind::parse(&engine.header().build.backend);
    let mut ctx = engine
        .context(
            backend,
            &RunConfig {
                threads: opts.threads,
                device: opts.device,
                ..Default::default()
            },
        )
        .map_err(|e| format!("load: {e}"))?;
    res.build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut failures = Vec::new();
    for set in &sets {
        // Data-set inputs follow the graph's inputs by position; bound ones are baked in.
        if set.inputs.len() != graph_inputs.len() {
            return Err(format!(
                "{} has {} inputs, the model takes {}",
                set_name(set),
                set.inputs.len(),
                graph_inputs.len()
            ));
        }
        let inputs: Vec<Tensor> = graph_inputs
            .iter()
            .zip(&set.inputs)
            .filter(|(n, _)| !bo.convert.bind.contains_key(*n))
            .map(|(_, (_, t))| t.clone())
            .collect();
        let t = Instant::now();
        let outputs = ctx
            .run(inputs)
            .map_err(|e| format!("run {}: {e}", set_name(set)))?;
        res.run_ms += t.elapsed().as_secs_f64() * 1e3;
        let verdicts =
            judge(&outputs, &set.outputs, tol).map_err(|e| format!("{}: {e}", set_name(set)))?;
        for (j, (m, ok)) in verdicts.into_iter().enumerate() {
            if !ok {
                failures.push(format!(
                    "{} output {j}: max|err| {:.3e}, max|ref| {:.3e} ({}){}",
                    set_name(set),
                    m.max_abs,
                    m.max_ref,
                    tol,
                    if m.is_float { "" } else { ", integers differ" }
                ));
            }
            if res.worst.as_ref().is_none_or(|w| m.rel > w.rel) {
                res.worst = Some(m);
            }
        }
    }
    res.passed = failures.is_empty();
    res.detail = failures.join("; ");
    Ok(())
}

fn set_name(set: &DataSet) -> String {
    set.dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The dims of a graph input as the engine fixes them, for messages.
pub fn describe(dims: &[Dim]) -> String {
    jetrt_engine::shape::format_shape(dims)
}
