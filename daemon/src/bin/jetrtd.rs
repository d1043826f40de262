//! jetrtd: serves jetrt engines on camera frames over a Unix socket.
//!
//!     jetrtd --config /etc/jetrtd/jetrtd.toml
//!     jetrtd --check-config /etc/jetrtd/jetrtd.toml

use anyhow::Context;
use clap::Parser;
use jetrt_daemon::config;
use jetrt_daemon::postprocess::Registry;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jetrtd",
    version,
    about = "Serves jetrt engines on camera frames over a Unix socket"
)]
struct Args {
    /// Run with this config file
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "check_config",
        required_unless_present = "check_config"
    )]
    config: Option<PathBuf>,
    /// Check a config file (syntax, values, cross-references; missing files
    /// and devices as warnings) and exit: 0 valid, 1 invalid
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn init_logging(level: log::LevelFilter) {
    // RUST_LOG, when set, overrides the config's log_level.
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if let Ok(s) = std::env::var("RUST_LOG") {
        b.parse_filters(&s);
    }
    // Under systemd the journal adds its own timestamps.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        b.format_timestamp(None);
    }
    let _ = b.try_init();
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path, &Registry::with_defaults()) {
        Ok(c) => {
            let warnings = config::check(&c);
            for w in &warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            println!(
                "{}: valid ({} engine(s), {} source(s), {} pipeline(s), {} warning(s))",
                path.display(),
                c.engines.len(),
                c.sources.len(),
                c.pipelines.len(),
                warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let registry = Registry::with_defaults();
    let cfg = config::load(path, &registry)?;
    init_logging(cfg.daemon.log_level);
    for w in config::check(&cfg) {
        log::warn!("{}: {w}", path.display());
    }
    log::info!(
        "jetrtd {} starting with {}",
        jetrt_daemon::VERSION,
        path.display()
    );
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // systemd sets INVOCATION_ID for the services it starts; the unit runs
    // jetrtd as its own user with the sandboxing that makes root moot.
    if root && std::env::var_os("INVOCATION_ID").is_none() {
        log::warn!(
            "running as root outside the systemd unit: every model, plugin and labels file it reads and every client it serves gets root's reach; run it as an unprivileged user (the unit's 'jetrtd')"
        );
    }
    jetrt_daemon::runtime::serve(path, cfg, registry)
        .with_context(|| format!("jetrtd with {} stopped", path.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(p) = &args.check_config {
        return check(p);
    }
    let Some(path) = &args.config else {
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            init_logging(log::LevelFilter::Error);
            log::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
