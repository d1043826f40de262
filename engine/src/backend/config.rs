//! What a plan is built with, what a context runs with, and what a backend
//! can do.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The arithmetic a plan stores its float tensors in. Layers whose results
/// need more (softmax sums, normalization statistics, reductions)
/// accumulate in float32 whatever the storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Precision::Fp32, Precision::Fp16]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a GPU build picks each layer's algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tactics {
    /// Time the candidates on the build GPU and record the fastest.
    #[default]
    Timed,
    /// Take the libraries' heuristics' first choice (a quicker build).
    Heuristic,
}

impl Tactics {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "timed" => Some(Tactics::Timed),
            "heuristic" => Some(Tactics::Heuristic),
            _ => None,
        }
    }
}

/// Options for building a plan; an engine records them (its header's
/// build record) so that a plan rebuilt for another device gets the same.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildConfig {
    pub precision: Precision,
    /// The most scratch memory, in bytes, one layer may use on a device
    /// (convolution algorithms trade memory for speed); `None` takes the
    /// backend's default.
    pub workspace: Option<usize>,
    /// Which GPU to build for (an index among the machine's GPUs).
    pub device: usize,
    pub tactics: Tactics,
    /// A timing cache file the build reads its choices from and writes
    /// them back to (GPU backends).
    pub timing_cache: Option<std::path::PathBuf>,
}

/// Options for running a plan.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// Worker threads (cpu backend); `None` uses every core.
    pub threads: Option<usize>,
    /// Record the time each layer takes (see [`super::Executor::layer_times`]).
    pub profile: bool,
    /// Which GPU to run on.
    pub device: usize,
}

/// What a backend can do, declared instead of callers testing its kind.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// The precisions its plans can store float tensors in.
    pub precisions: &'static [Precision],
    /// The most dims a tensor may have.
    pub max_rank: usize,
    /// Whether contexts can read inputs from and write outputs to device
    /// memory the caller owns.
    pub device_io: bool,
}

impl Capabilities {
    /// An error naming the backend when `precision` is not one of its own.
    pub fn check_precision(&self, backend: &'static str, precision: Precision) -> Result<()> {
        if self.precisions.contains(&precision) {
            return Ok(());
        }
        let have: Vec<&str> = self.precisions.iter().map(|p| p.name()).collect();
        Err(Error::Unsupported {
            backend,
            what: format!(
                "{precision} plans (it builds {}); build without --fp16, or for a GPU backend",
                have.join(", ")
            ),
        })
    }
}
