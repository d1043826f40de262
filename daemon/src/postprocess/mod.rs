//! Postprocessors turn an engine's output tensors into what a client wants:
//! [`topk`] (softmax + top-k with labels: collision avoidance's P(blocked)),
//! [`raw`] (the tensors themselves: road following's x, y), [`argmax`] (a
//! segmentation map). More can be added to a [`Registry`] by name; a
//! pipeline picks one with `postprocess = { kind = "NAME", ... }`.

pub mod argmax;
pub mod raw;
pub mod topk;

use jetrt_engine::engine_file::IoDesc;
use jetrt_engine::Tensor;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// What a postprocessor knows of its engine.
pub struct EngineInfo<'a> {
    pub outputs: &'a [IoDesc],
    pub labels: &'a [String],
}

impl EngineInfo<'_> {
    /// The index of the output named `name`, or the first output.
    pub fn output(&self, name: Option<&str>) -> Result<usize, String> {
        match name {
            None if self.outputs.is_empty() => Err("the engine has no outputs".into()),
            None => Ok(0),
            Some(n) => self
                .outputs
                .iter()
                .position(|o| o.name == n)
                .ok_or_else(|| {
                    let names: Vec<&str> = self.outputs.iter().map(|o| o.name.as_str()).collect();
                    format!(
                        "the engine has no output '{n}' (outputs: {})",
                        names.join(", ")
                    )
                }),
        }
    }
}

/// A postprocessed result: JSON for the client, and optionally a binary
/// payload sent as the frame after it (a segmentation map).
pub struct Output {
    pub json: serde_json::Value,
    pub binary: Option<Vec<u8>>,
}

pub trait Postprocessor: Send {
    /// Turns the engine's outputs (in its output order) into a result.
    fn process(&mut self, outputs: &[Tensor]) -> Result<Output, String>;
}

/// Checks a postprocessor's parameters without an engine (config checks).
pub type CheckFn = fn(&toml::Table) -> Result<(), String>;
/// Makes a postprocessor for an engine.
pub type BuildFn = fn(&toml::Table, &EngineInfo<'_>) -> Result<Box<dyn Postprocessor>, String>;

/// Postprocessors by name. A value, not a global: a program embedding the
/// daemon registers its own before loading the config.
#[derive(Clone)]
pub struct Registry {
    entries: BTreeMap<String, (CheckFn, BuildFn)>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry {
            entries: BTreeMap::new(),
        }
    }

    /// `topk`, `raw` and `argmax`.
    pub fn with_defaults() -> Self {
        let mut r = Self::empty();
        r.register("topk", topk::check, topk::build);
        r.register("raw", raw::check, raw::build);
        r.register("argmax", argmax::check, argmax::build);
        r
    }

    /// Adds or replaces the postprocessor `name`.
    pub fn register(&mut self, name: &str, check: CheckFn, build: BuildFn) {
        self.entries.insert(name.to_string(), (check, build));
    }

    fn entry(&self, kind: &str) -> Result<&(CheckFn, BuildFn), String> {
        self.entries.get(kind).ok_or_else(|| {
            let names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            format!(
                "unknown postprocessor \"{kind}\" (known: {})",
                names.join(", ")
            )
        })
    }

    pub fn check(&self, kind: &str, params: &toml::Table) -> Result<(), String> {
        (self.entry(kind)?.0)(params)
    }

    pub fn build(
        &self,
        kind: &str,
        params: &toml::Table,
        info: &EngineInfo<'_>,
    ) -> Result<Box<dyn Postprocessor>, String> {
        (self.entry(kind)?.1)(params, info)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_defaults()
    }
}

/// Parameters into a typed struct; with `deny_unknown_fields` on `T`, a
/// misspelt parameter is an error naming it.
pub fn params<T: DeserializeOwned>(p: &toml::Table) -> Result<T, String> {
    toml::Value::Table(p.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())
}

/// Labels for class `i`, when the engine has them.
pub fn label(labels: &[String], i: usize) -> Option<&str> {
    labels.get(i).map(String::as_str)
}
