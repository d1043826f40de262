//! `engine-builder`: build, inspect, run, verify, test and benchmark jetrt
//! engines. User errors exit 1, usage errors 2.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    engine_builder::pipe::die_quietly_on_closed_pipe();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
