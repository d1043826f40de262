//! The command line: one module per subcommand.

mod bench;
mod build;
mod common;
mod inspect;
mod ops;
mod run;
mod test;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "engine-builder",
    version,
    about = "Converts ONNX models exported from PyTorch into jetrt engines, and runs, verifies and benchmarks them",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an engine from an ONNX model
    Build(build::Args),
    /// Show an engine's inputs, outputs, layers, metadata and plans
    Inspect(inspect::Args),
    /// Run an engine on .pb tensors or an image
    Run(run::Args),
    /// Run an engine on a test data set and compare with its reference outputs
    Verify(verify::Args),
    /// Build and check cases in the ONNX backend-test layout
    Test(test::Args),
    /// Measure an engine's latency at batch 1
    Bench(bench::Args),
    /// List every ONNX operator with the opsets supported
    Ops(ops::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(a) => build::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Run(a) => run::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Test(a) => test::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Ops(a) => ops::run(a),
    }
}
