//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A workspace binary, from the target directory the running test was built
/// into (build the binaries of the same profile first, as `scripts/test.sh` does).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (cargo build --bins with this test's profile)",
        p.display()
    );
    p
}

/// Runs a binary; returns (exit code, stdout, stderr).
pub fn run(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The directory named by an environment variable, for tests that need
/// external data. Unset: the test fails under CI=true, else it is skipped
/// with a note (returns `None`).
pub fn data_dir(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) => {
            let p = PathBuf::from(v);
            assert!(p.is_dir(), "{var}={} is not a directory", p.display());
            Some(p)
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set, and CI=true: {what} cannot be skipped in CI")
        }
        None => {
            eprintln!("skipped: {what} ({var} is not set)");
            None
        }
    }
}

/// Sub-directories of `dir` holding a `model.onnx`, sorted.
pub fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    v
}
