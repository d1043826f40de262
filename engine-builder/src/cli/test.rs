//! `engine-builder test`.

use super::common::{PluginArgs, TargetArgs, ThreadArgs};
use anyhow::Result;
use engine_builder::allowlist;
use engine_builder::convert::Registry;
use engine_builder::testcase::{run_case, CaseOptions};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Case folders (model.onnx + test_data_set_K/), or folders of them
    #[arg(required = true, value_name = "CASE_DIR")]
    cases: Vec<PathBuf>,
    /// Skip the cases this allow-list excludes (one rule per line: op,
    /// domain, dtype or case, each with its reason); repeatable
    #[arg(long = "allow-list", value_name = "FILE")]
    allow_lists: Vec<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    threads: ThreadArgs,
    #[command(flatten)]
    plugins: PluginArgs,
}

/// A case folder, or the case folders directly inside a folder.
fn expand(dir: &Path) -> Vec<PathBuf> {
    if dir.join("model.onnx").exists() || !dir.is_dir() {
        return vec![dir.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("model.onnx").exists())
                .collect()
        })
        .unwrap_or_default();
    if v.is_empty() {
        return vec![dir.to_path_buf()];
    }
    v.sort();
    v
}

pub fn run(a: Args) -> Result<ExitCode> {
    a.plugins.load()?;
    let color = std::io::stdout().is_terminal();
    let paint = |s: &str, code: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let registry = Registry::with_defaults();
    let opts = CaseOptions {
        plugins: a.plugins.plugins.clone(),
        threads: a.threads.config().threads,
        backend: a.target.backend(),
        precision: a.target.precision(),
        workspace: a.target.workspace_bytes(),
        tactics: a.target.tactics(),
        timing_cache: a.target.timing_cache.clone(),
        device: a.target.device,
    };
    let mut rules = Vec::new();
    for f in &a.allow_lists {
        rules.extend(allowlist::read(f).map_err(anyhow::Error::msg)?);
    }
    let mut excluded: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cases: Vec<PathBuf> = Vec::new();
    for c in a.cases.iter().flat_map(|c| expand(c)) {
        if !rules.is_empty() {
            // A case that cannot be read is not excluded: it fails below.
            if let Ok(info) = allowlist::case_info(&c) {
                if let Some(r) = allowlist::exclusion(&info, &rules) {
                    *excluded.entry(&r.reason).or_default() += 1;
                    continue;
                }
            }
        }
        cases.push(c);
    }
    let width = cases
        .iter()
        .map(|c| c.file_name().map_or(0, |n| n.len()))
        .max()
        .unwrap_or(0)
        .min(60);
    let (mut passed, mut failed) = (0, 0);
    for dir in &cases {
        let r = run_case(dir, &registry, &opts);
        if r.passed {
            passed += 1;
            let w = r.worst.as_ref();
            println!(
                "{}  {:<width$}  {} set{}  max|err| {:.1e}  rel {:.1e}  build {:.0} ms  run {:.1} ms{}",
                paint("PASS", "32"),
                r.name,
                r.data_sets,
                if r.data_sets == 1 { " " } else { "s" },
                w.map_or(0.0, |m| m.max_abs),
                w.map_or(0.0, |m| m.rel),
                r.build_ms,
                r.run_ms,
                if r.bound.is_empty() { String::new() } else { format!("  bound: {}", r.bound.join(", ")) },
            );
        } else {
            failed += 1;
            println!("{}  {:<width$}  {}", paint("FAIL", "31"), r.name, r.detail);
        }
    }
    if !rules.is_empty() {
        println!(
            "excluded by the allow-list: {}",
            excluded.values().sum::<usize>()
        );
        let mut reasons: Vec<_> = excluded.into_iter().collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        for (reason, n) in reasons {
            println!("  {n:>5}  {reason}");
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
