//! Softmax and the top k classes, with labels: a classifier's answer.
//! `probs` lists every class's probability (default: for 64 classes or
//! fewer), which is what a JetBot reads P(blocked) from.

use super::{label, params, EngineInfo, Output, Postprocessor};
use jetrt_engine::Tensor;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    top: Option<i64>,
    output: Option<String>,
    /// Apply softmax (false: the model outputs probabilities already).
    softmax: Option<bool>,
    probs: Option<bool>,
}

fn parse(p: &toml::Table) -> Result<Params, String> {
    let p: Params = params(p)?;
    if let Some(t) = p.top {
        if !(1..=1000).contains(&t) {
            return Err(format!("top must be between 1 and 1000, not {t}"));
        }
    }
    Ok(p)
}

pub fn check(p: &toml::Table) -> Result<(), String> {
    parse(p).map(|_| ())
}

pub fn build(p: &toml::Table, info: &EngineInfo<'_>) -> Result<Box<dyn Postprocessor>, String> {
    let p = parse(p)?;
    let output = info.output(p.output.as_deref())?;
    Ok(Box::new(TopK {
        top: p.top.unwrap_or(5) as usize,
        output,
        softmax: p.softmax.unwrap_or(true),
        probs: p.probs,
        labels: info.labels.to_vec(),
    }))
}

pub struct TopK {
    top: usize,
    output: usize,
    softmax: bool,
    probs: Option<bool>,
    labels: Vec<String>,
}

/// Softmax in f64 (the max subtracted first, for range).
pub fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

impl Postprocessor for TopK {
    fn process(&mut self, outputs: &[Tensor]) -> Result<Output, String> {
        let t = outputs
            .get(self.output)
            .ok_or("the engine returned fewer outputs than it declares")?;
        let v = t.to_f64_vec();
        let classes = t.shape().last().copied().unwrap_or(0);
        if classes == 0 || v.len() != classes {
            return Err(format!(
                "topk needs one row of class scores (batch 1), the output is {:?}",
                t.shape()
            ));
        }
        let p = if self.softmax { softmax(&v) } else { v };
        let mut idx: Vec<usize> = (0..classes).collect();
        idx.sort_by(|&i, &j| p[j].total_cmp(&p[i]));
        let top: Vec<_> = idx
            .iter()
            .take(self.top)
            .map(|&i| json!({"index": i, "label": label(&self.labels, i), "score": p[i]}))
            .collect();
        let mut j = json!({"kind": "topk", "top": top});
        if self.probs.unwrap_or(classes <= 64) {
            j["probs"] = json!(p);
        }
        Ok(Output {
            json: j,
            binary: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetrt_engine::engine_file::IoDesc;

    #[test]
    fn ranks_with_labels_and_rejects_bad_params() {
        let labels = vec!["free".to_string(), "blocked".to_string()];
        let info = EngineInfo {
            outputs: &[] as &[IoDesc],
            labels: &labels,
        };
        assert!(build(&toml::Table::new(), &info).is_err(), "no outputs");
        let mut pp = TopK {
            top: 1,
            output: 0,
            softmax: true,
            probs: None,
            labels,
        };
        let t = Tensor::from_f32(&[1, 2], vec![0.0, 2.0f32.ln()]).unwrap();
        let out = pp.process(&[t]).unwrap().json;
        assert_eq!(out["top"][0]["label"], "blocked");
        let p1 = out["probs"][1].as_f64().unwrap();
        // ln 2 rounded to float32 moves the ratio by about 1e-8.
        assert!((p1 - 2.0 / 3.0).abs() < 1e-7, "{p1}");
        let bad: toml::Table = toml::from_str("tpo = 3").unwrap();
        let e = check(&bad).unwrap_err();
        assert!(e.contains("tpo"), "{e}");
        let bad: toml::Table = toml::from_str("top = 0").unwrap();
        assert!(check(&bad).is_err());
    }
}
