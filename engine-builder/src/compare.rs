//! Comparing outputs with reference outputs: the numbers `verify` and `test`
//! print, and the tolerance rules they judge by.

use jetrt_engine::shape::format_dims;
use jetrt_engine::{Tensor, TensorData};

/// How an output is judged against its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// `max|y-ref| <= ratio * max|ref|`, optionally with equal argmax.
    MaxRelative { ratio: f64, same_argmax: bool },
    /// `|y-ref| <= atol + rtol*|ref|` for every element.
    Elementwise { atol: f64, rtol: f64 },
}

impl Tolerance {
    /// The rule for fp32 engines in DESIGN.md.
    pub const FP32: Tolerance = Tolerance::MaxRelative {
        ratio: 1e-4,
        same_argmax: false,
    };
    pub const FP16: Tolerance = Tolerance::MaxRelative {
        ratio: 2e-2,
        same_argmax: true,
    };
    /// The default for cases without a meta.json.
    pub const ELEMENTWISE: Tolerance = Tolerance::Elementwise {
        atol: 1e-5,
        rtol: 1e-3,
    };

    /// Parses `max|y-ref| <= 1e-4 * max|ref|` (optionally `and same argmax`),
    /// the form meta.json files use.
    pub fn parse(s: &str) -> Option<Tolerance> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let rest = t.strip_prefix("max|y-ref|<=")?;
        let (num, tail) = rest.split_once("*max|ref|")?;
        let same_argmax = match tail {
            "" => false,
            "andsameargmax" => true,
            _ => return None,
        };
        Some(Tolerance::MaxRelative {
            ratio: num.parse().ok()?,
            same_argmax,
        })
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::MaxRelative { ratio, same_argmax } => {
                write!(f, "max|y-ref| <= {ratio:e} * max|ref|")?;
                if *same_argmax {
                    f.write_str(" and same argmax")?;
                }
                Ok(())
            }
            Tolerance::Elementwise { atol, rtol } => {
                write!(f, "|y-ref| <= {atol:e} + {rtol:e}*|ref|")
            }
        }
    }
}

/// How far an output is from its reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub max_abs: f64,
    pub max_ref: f64,
    /// `max_abs / max_ref` (0 when both are 0).
    pub rel: f64,
    /// `20 log10(max|ref| / rms error)`; infinite when exact.
    pub psnr: f64,
    /// Rows (along the last axis) whose argmax agrees, and the row count.
    pub argmax: (usize, usize),
    /// Elements outside the elementwise default tolerance.
    pub elementwise_misses: usize,
    /// Integer or bool outputs: whether every element is equal.
    pub exact: bool,
    pub is_float: bool,
    /// Positions where one side is NaN and the other is not.
    pub nan_mismatches: usize,
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// Compares an output with its reference; shapes and types must match.
pub fn compare(out: &Tensor, reference: &Tensor) -> Result<Metrics, String> {
    if out.shape() != reference.shape() {
        return Err(format!(
            "shape {} differs from the reference's {}",
            format_dims(out.shape()),
            format_dims(reference.shape())
        ));
    }
    if out.dtype() != reference.dtype() {
        return Err(format!(
            "type {} differs from the reference's {}",
            out.dtype(),
            reference.dtype()
        ));
    }
    let is_float = out.dtype().is_float();
    let y = out.to_f64_vec();
    let r = reference.to_f64_vec();
    let exact = match (out.data(), reference.data()) {
        (TensorData::I64(a), TensorData::I64(b)) => a == b,
        _ => y
            .iter()
            .zip(&r)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
    };
    let (mut max_abs, mut max_ref, mut sq) = (0f64, 0f64, 0f64);
    let (mut misses, mut nan_mismatches) = (0usize, 0usize);
    let Tolerance::Elementwise { atol, rtol } = Tolerance::ELEMENTWISE else {
        unreachable!()
    };
    for (&a, &b) in y.iter().zip(&r) {
        if a.is_nan() || b.is_nan() {
            if a.is_nan() != b.is_nan() {
                nan_mismatches += 1;
            }
            continue;
        }
        if a == b {
            // Equal infinities count as no error.
            max_ref = max_ref.max(if b.is_finite() { b.abs() } else { 0.0 });
            continue;
        }
        let d = (a - b).abs();
        max_abs = max_abs.max(d);
        max_ref = max_ref.max(b.abs());
        sq += d * d;
        if d.is_nan() || d > atol + rtol * b.abs() {
            misses += 1;
        }
    }
    let n = y.len().max(1) as f64;
    let rms = (sq / n).sqrt();
    let psnr = if rms == 0.0 {
        f64::INFINITY
    } else {
        20.0 * (max_ref.max(f64::MIN_POSITIVE) / rms).log10()
    };
    let rel = if max_abs == 0.0 {
        0.0
    } else {
        max_abs / max_ref
    };
    let last = out.shape().last().copied().unwrap_or(1).max(1);
    let rows = if y.is_empty() { 0 } else { y.len() / last };
    let agree = (0..rows)
        .filter(|&i| argmax(&y[i * last..(i + 1) * last]) == argmax(&r[i * last..(i + 1) * last]))
        .count();
    Ok(Metrics {
        max_abs,
        max_ref,
        rel,
        psnr,
        argmax: (agree, rows),
        elementwise_misses: misses,
        exact,
        is_float,
        nan_mismatches,
    })
}

impl Metrics {
    /// Whether the output passes: integers and bools exactly, floats by `tol`.
    pub fn passes(&self, tol: Tolerance) -> bool {
        if !self.is_float {
            return self.exact;
        }
        if self.nan_mismatches > 0 {
            return false;
        }
        match tol {
            Tolerance::MaxRelative { ratio, same_argmax } => {
                self.max_abs <= ratio * self.max_ref
                    && (!same_argmax || self.argmax.0 == self.argmax.1)
            }
            Tolerance::Elementwise { .. } => self.elementwise_misses == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_json_rules() {
        assert_eq!(
            Tolerance::parse("max|y-ref| <= 1e-4 * max|ref|"),
            Some(Tolerance::FP32)
        );
        assert_eq!(
            Tolerance::parse("max|y-ref| <= 2e-2 * max|ref| and same argmax"),
            Some(Tolerance::FP16)
        );
        assert_eq!(Tolerance::parse("whatever"), None);
    }

    #[test]
    fn metrics_and_verdicts() {
        let r = Tensor::from_f32(&[2, 3], vec![1.0, 5.0, 2.0, -4.0, 0.0, 1.0]).unwrap();
        let y = Tensor::from_f32(&[2, 3], vec![1.0, 5.0001, 2.0, -4.0, 0.0, 1.0]).unwrap();
        let m = compare(&y, &r).unwrap();
        assert!((m.max_abs - 1e-4).abs() < 1e-6);
        assert_eq!(m.max_ref, 5.0);
        assert_eq!(m.argmax, (2, 2));
        assert!(m.passes(Tolerance::FP32));
        let bad = Tensor::from_f32(&[2, 3], vec![1.0, 5.0, 2.0, -4.0, 9.0, 1.0]).unwrap();
        let m = compare(&bad, &r).unwrap();
        assert!(!m.passes(Tolerance::FP32));
        assert_eq!(m.argmax, (1, 2));
        assert!(!m.passes(Tolerance::ELEMENTWISE));
        assert!(compare(&Tensor::zeros(jetrt_engine::DataType::F32, &[3, 2]), &r).is_err());
    }

    #[test]
    fn integers_compare_exactly_and_nans_match() {
        let a = Tensor::from_i64(&[2], vec![1, 2]).unwrap();
        let b = Tensor::from_i64(&[2], vec![1, 3]).unwrap();
        assert!(compare(&a, &a).unwrap().passes(Tolerance::FP32));
        assert!(!compare(&a, &b).unwrap().passes(Tolerance::FP32));
        let n = Tensor::from_f32(&[2], vec![f32::NAN, 1.0]).unwrap();
        assert!(compare(&n, &n).unwrap().passes(Tolerance::ELEMENTWISE));
        let m = Tensor::from_f32(&[2], vec![0.0, 1.0]).unwrap();
        assert!(!compare(&m, &n).unwrap().passes(Tolerance::ELEMENTWISE));
    }
}
