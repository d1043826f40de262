//! Tactic selection: which cuDNN algorithm each convolution runs, and
//! which cuBLASLt algorithm each matrix product (`cublaslt.rs`).
//!
//! cuDNN's heuristics rank the algorithms for a geometry without running
//! them, and on fp16 their first choice can be far from the fastest (a
//! 2x2 stride-2 ConvNeXt downsample ran 0.8 ms under it on an H200). A
//! build therefore times every candidate the heuristics offer within the
//! workspace limit on the build GPU (`gate::Timer`) and keeps the fastest;
//! the plan records the winners by geometry, so loading an engine does no
//! search. A geometry a plan has no record of (input dims set at run time
//! other than the build's) takes the heuristics' first choice.
//!
//! A timing cache file carries the winners across builds, as TensorRT's
//! does: a build reads it (when it was written on the same GPU with the
//! same cuDNN) and writes it back with what it timed.

use super::device::Gpu;
use super::gate::Timer;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// The winners: an algorithm number (cuDNN's enum value) per geometry key.
pub type Choices = BTreeMap<String, i32>;

/// What planning a convolution consults and, at build time, adds to.
pub struct Tactics {
    timer: Option<Timer>,
    choices: Choices,
    /// The keys this context's plans looked up or added.
    used: BTreeSet<String>,
    /// Geometries timed by this context.
    pub timed: usize,
}

/// Where a context's choices come from.
pub enum Search {
    /// A loaded plan's record; what it lacks takes the heuristics' first.
    Recorded(Choices),
    /// A build: what these choices lack is timed.
    Timed(Choices),
}

impl Tactics {
    pub fn new(gpu: &Arc<Gpu>, search: Search) -> Result<Self> {
        let (timer, choices) = match search {
            Search::Recorded(c) => (None, c),
            Search::Timed(c) => (Some(Timer::new(gpu)?), c),
        };
        Ok(Tactics {
            timer,
            choices,
            used: BTreeSet::new(),
            timed: 0,
        })
    }

    pub fn choice(&mut self, key: &str) -> Option<i32> {
        let c = self.choices.get(key).copied();
        if c.is_some() {
            self.used.insert(key.to_string());
        }
        c
    }

    pub fn timer(&self) -> Option<&Timer> {
        self.timer.as_ref()
    }

    pub fn record(&mut self, key: String, algo: i32) {
        self.used.insert(key.clone());
        self.choices.insert(key, algo);
    }

    /// Every choice known: what was given and what was timed.
    pub fn choices(&self) -> &Choices {
        &self.choices
    }

    /// The choices this context's plans use (what a plan records).
    pub fn used(&self) -> Choices {
        self.used
            .iter()
            .filter_map(|k| self.choices.get(k).map(|&v| (k.clone(), v)))
            .collect()
    }
}

/// A timing cache file's contents.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    /// The GPU and cuDNN the choices were timed with.
    device: String,
    cudnn: usize,
    choices: Choices,
}

const CACHE_FORMAT: u32 = 1;
/// A timing cache holds a line per geometry; anything larger than this is
/// not one.
const MAX_CACHE_BYTES: u64 = 64 << 20;

/// What the device a cache belongs to is called in it.
pub fn device_id(gpu: &Gpu) -> String {
    format!("{} ({})", gpu.name, gpu.arch_name())
}

/// The choices in the timing cache at `path` that apply to `device` (see
/// [`device_id`]) with cuDNN `cudnn`: none if the file does not exist or
/// was written for another device or cuDNN (said in the log); an error
/// naming the file if it cannot be read or parsed.
pub fn read_cache(path: &Path, device: &str, cudnn: usize) -> Result<Choices> {
    let cache_err = |msg: String| Error::TimingCache {
        path: path.to_path_buf(),
        msg,
    };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Choices::new()),
        Err(e) => return Err(cache_err(e.to_string())),
    };
    if len > MAX_CACHE_BYTES {
        return Err(cache_err(format!(
            "a timing cache of {len} bytes is larger than any this writes ({MAX_CACHE_BYTES})"
        )));
    }
    let text = std::fs::read(path).map_err(|e| cache_err(e.to_string()))?;
    let c: CacheFile = serde_json::from_slice(&text)
        .map_err(|e| cache_err(format!("not a jetrt timing cache: {e}")))?;
    if c.format != CACHE_FORMAT {
        return Err(cache_err(format!(
            "timing cache format {} is not {CACHE_FORMAT}; delete the file",
            c.format
        )));
    }
    let here = device;
    if c.device != here || c.cudnn != cudnn {
        log::info!(
            "timing cache {}: written on {} with cuDNN {}, this is {here} with cuDNN {cudnn}; timing afresh",
            path.display(),
            c.device,
            c.cudnn
        );
        return Ok(Choices::new());
    }
    Ok(c.choices)
}

/// Writes `choices` to `path` through a temporary file and a rename, so a
/// crash leaves the old cache or the new one, never half of one.
pub fn write_cache(path: &Path, device: &str, cudnn: usize, choices: &Choices) -> Result<()> {
    let cache_err = |msg: String| Error::TimingCache {
        path: path.to_path_buf(),
        msg,
    };
    let c = CacheFile {
        format: CACHE_FORMAT,
        device: device.to_string(),
        cudnn,
        choices: choices.clone(),
    };
    let text = serde_json::to_vec_pretty(&c).map_err(|e| cache_err(e.to_string()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, &text).map_err(|e| cache_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cache_err(e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary folder")
    }

    /// A cache written is read back on the same device and cuDNN, and
    /// ignored on another; a missing file is an empty cache.
    #[test]
    fn a_timing_cache_round_trips_for_its_own_device_only() {
        let d = dir();
        let path = d.path().join("timing.json");
        assert!(read_cache(&path, "GPU (sm_90)", 91400).unwrap().is_empty());
        let mut c = Choices::new();
        c.insert("fwd float16 x[1, 3, 8, 8]".into(), 1);
        c.insert("bwd float32 x[1, 3, 8, 8]".into(), 4);
        write_cache(&path, "GPU (sm_90)", 91400, &c).unwrap();
        assert_eq!(read_cache(&path, "GPU (sm_90)", 91400).unwrap(), c);
        assert!(read_cache(&path, "GPU (sm_87)", 91400).unwrap().is_empty());
        assert!(read_cache(&path, "GPU (sm_90)", 90300).unwrap().is_empty());
        // Written through a temporary name: nothing else is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// A file that is not a cache, or far too large to be one, is an error
    /// naming it, and nothing is allocated for its claimed size.
    #[test]
    fn a_damaged_timing_cache_is_an_error_naming_the_file() {
        let d = dir();
        let path = d.path().join("bad.json");
        std::fs::write(&path, b"{\"format\": 1, \"device\": ").unwrap();
        let e = read_cache(&path, "GPU", 1).unwrap_err().to_string();
        assert!(
            e.contains("bad.json") && e.contains("not a jetrt timing cache"),
            "{e}"
        );
        std::fs::write(
            &path,
            br#"{"format": 9, "device": "GPU", "cudnn": 1, "choices": {}}"#,
        )
        .unwrap();
        let e = read_cache(&path, "GPU", 1).unwrap_err().to_string();
        assert!(e.contains("format 9"), "{e}");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_CACHE_BYTES + 1).unwrap(); // sparse: no disk used
        let e = read_cache(&path, "GPU", 1).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }
}
