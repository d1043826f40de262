//! Raw output tensors as JSON numbers: regression heads such as road
//! following's (x, y), or anything a client postprocesses itself. Values
//! are written so that they read back as the very float32 the engine gave.

use super::{params, EngineInfo, Output, Postprocessor};
use jetrt_engine::Tensor;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Output names to send; default every output.
    outputs: Option<Vec<String>>,
}

pub fn check(p: &toml::Table) -> Result<(), String> {
    params::<Params>(p).map(|_| ())
}

pub fn build(p: &toml::Table, info: &EngineInfo<'_>) -> Result<Box<dyn Postprocessor>, String> {
    let p: Params = params(p)?;
    let selected = match p.outputs {
        None => (0..info.outputs.len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| info.output(Some(n)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Box::new(Raw {
        selected,
        names: info.outputs.iter().map(|o| o.name.clone()).collect(),
    }))
}

pub struct Raw {
    selected: Vec<usize>,
    names: Vec<String>,
}

impl Postprocessor for Raw {
    fn process(&mut self, outputs: &[Tensor]) -> Result<Output, String> {
        let mut tensors = Vec::new();
        for &i in &self.selected {
            let t = outputs
                .get(i)
                .ok_or("the engine returned fewer outputs than it declares")?;
            let data = match t.as_f32() {
                Some(v) => json!(v),
                None => json!(t.to_f64_vec()),
            };
            tensors.push(json!({
                "name": self.names.get(i),
                "dtype": t.dtype().to_string(),
                "shape": t.shape(),
                "data": data,
            }));
        }
        Ok(Output {
            json: json!({"kind": "tensors", "tensors": tensors}),
            binary: None,
        })
    }
}
