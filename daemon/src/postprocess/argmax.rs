//! The argmax over classes of a segmentation output (N=1, C, H, W): a
//! class map sent as a binary frame (one byte per pixel for up to 256
//! classes, else two, little-endian), plus each class's pixel share.

use super::{label, params, EngineInfo, Output, Postprocessor};
use jetrt_engine::Tensor;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    output: Option<String>,
}

pub fn check(p: &toml::Table) -> Result<(), String> {
    params::<Params>(p).map(|_| ())
}

pub fn build(p: &toml::Table, info: &EngineInfo<'_>) -> Result<Box<dyn Postprocessor>, String> {
    let p: Params = params(p)?;
    Ok(Box::new(Argmax {
        output: info.output(p.output.as_deref())?,
        labels: info.labels.to_vec(),
    }))
}

pub struct Argmax {
    output: usize,
    labels: Vec<String>,
}

/// Class index per pixel of a C×H×W score volume.
pub fn argmax_map(v: &[f64], c: usize, plane: usize) -> Vec<u16> {
    (0..plane)
        .map(|p| {
            let mut best = 0;
            for k in 1..c {
                if v[k * plane + p] > v[best * plane + p] {
                    best = k;
                }
            }
            best as u16
        })
        .collect()
}

impl Postprocessor for Argmax {
    fn process(&mut self, outputs: &[Tensor]) -> Result<Output, String> {
        let t = outputs
            .get(self.output)
            .ok_or("the engine returned fewer outputs than it declares")?;
        let (c, h, w) = match t.shape() {
            [1, c, h, w] if *c >= 1 && *c <= 65536 => (*c, *h, *w),
            s => return Err(format!("argmax needs a 1xCxHxW output, it is {s:?}")),
        };
        let map = argmax_map(&t.to_f64_vec(), c, h * w);
        let mut counts = vec![0usize; c];
        for &k in &map {
            counts[k as usize] += 1;
        }
        let classes: Vec<_> = (0..c)
            .filter(|&k| counts[k] > 0)
            .map(|k| {
                json!({"index": k, "label": label(&self.labels, k),
                       "share": counts[k] as f64 / (h * w).max(1) as f64})
            })
            .collect();
        let (dtype, binary) = if c <= 256 {
            ("uint8", map.iter().map(|&k| k as u8).collect())
        } else {
            ("uint16", map.iter().flat_map(|k| k.to_le_bytes()).collect())
        };
        Ok(Output {
            json: json!({"kind": "argmax", "width": w, "height": h, "dtype": dtype, "classes": classes}),
            binary: Some(binary),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_best_class_per_pixel() {
        // 2 classes, 1x2 image: pixel 0 -> class 1, pixel 1 -> class 0.
        let t = Tensor::from_f32(&[1, 2, 1, 2], vec![0.0, 5.0, 1.0, -1.0]).unwrap();
        let mut a = Argmax {
            output: 0,
            labels: vec![],
        };
        let out = a.process(&[t]).unwrap();
        assert_eq!(out.binary.unwrap(), vec![1, 0]);
        assert_eq!(out.json["classes"][0]["share"], 0.5);
    }
}
