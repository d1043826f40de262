//! `engine-builder ops`.

use anyhow::Result;
use engine_builder::convert::Registry;
use engine_builder::onnx::ops_list::DEFAULT_DOMAIN_OPS;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Only list supported operators
    #[arg(long)]
    supported: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let registry = Registry::with_defaults();
    let mut supported = 0;
    for op in DEFAULT_DOMAIN_OPS {
        let ranges = registry.opsets("", op);
        if ranges.is_empty() {
            if !a.supported {
                println!("{op:<28} unsupported");
            }
            continue;
        }
        supported += 1;
        let text: Vec<String> = ranges
            .iter()
            .map(|r| {
                if r.start() == r.end() {
                    r.start().to_string()
                } else {
                    format!("{}-{}", r.start(), r.end())
                }
            })
            .collect();
        println!("{op:<28} opset {}", text.join(", "));
    }
    eprintln!(
        "{supported} of {} ai.onnx operators supported",
        DEFAULT_DOMAIN_OPS.len()
    );
    Ok(ExitCode::SUCCESS)
}
