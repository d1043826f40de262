//! Constant tables of spectral analysis, computed when the model is
//! converted from their constant inputs (they depend on nothing else):
//! HannWindow, HammingWindow, BlackmanWindow (a window of `size` values)
//! and MelWeightMatrix (triangular mel filters over a DFT's bins).

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use crate::onnx::dtype_from_onnx;
use jetrt_engine::{DataType, Tensor};

type R = Result<(), ConvertError>;

/// The longest window built (a spectrogram's is a few thousand values).
const MAX_SIZE: i64 = 1 << 24;

pub fn register(add: &mut Add<'_>) {
    add("HannWindow", 17, window);
    add("HammingWindow", 17, window);
    add("BlackmanWindow", 17, window);
    add("MelWeightMatrix", 17, mel_weight_matrix);
}

/// `sum_k (-1)^k a_k cos(2 pi k n / N)` for n in 0..size, where N is the
/// size (periodic, the default) or size - 1 (symmetric).
fn window(ctx: &mut NodeCtx<'_>) -> R {
    let coeffs: &[f64] = match ctx.node.op_type.as_str() {
        "HannWindow" => &[0.5, 0.5],
        "HammingWindow" => &[25.0 / 46.0, 21.0 / 46.0],
        _ => &[0.42, 0.5, 0.08],
    };
    let size = ctx.require_const(0, "the window size")?.to_i64_vec();
    let size = match size.as_slice() {
        [s] => *s,
        _ => return Err(ConvertError::new("the window size is not a scalar")),
    };
    if !(0..=MAX_SIZE).contains(&size) {
        return Err(ConvertError::new(format!(
            "a window of {size} values (at most {MAX_SIZE})"
        )));
    }
    let periodic = ctx.attr_int("periodic", 1)? != 0;
    let dtype =
        dtype_from_onnx(ctx.attr_int("output_datatype", 1)? as i32).map_err(ConvertError::new)?;
    let n = size as usize;
    let denom = if periodic { n as f64 } else { n as f64 - 1.0 };
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let x = 2.0 * std::f64::consts::PI * i as f64 / denom;
            coeffs
                .iter()
                .enumerate()
                .map(|(k, a)| if k % 2 == 0 { 1.0 } else { -1.0 } * a * (k as f64 * x).cos())
                .sum::<f64>() as f32
        })
        .collect();
    let t = Tensor::from_f32(&[n], values)?;
    let t = if dtype == DataType::F32 {
        t
    } else {
        t.cast(dtype)
    };
    let y = ctx.constant(t);
    ctx.set_output(0, y)
}

/// One scalar constant input as an integer.
fn scalar_int(ctx: &mut NodeCtx<'_>, i: usize, what: &str) -> Result<i64, ConvertError> {
    match ctx.require_const(i, what)?.to_i64_vec().as_slice() {
        [v] => Ok(*v),
        _ => Err(ConvertError::new(format!("{what} is not a scalar"))),
    }
}

fn scalar_f64(ctx: &mut NodeCtx<'_>, i: usize, what: &str) -> Result<f64, ConvertError> {
    match ctx.require_const(i, what)?.to_f64_vec().as_slice() {
        [v] => Ok(*v),
        _ => Err(ConvertError::new(format!("{what} is not a scalar"))),
    }
}

/// `[dft_length / 2 + 1, num_mel_bins]`: filter i rises linearly from bin
/// f(i) to f(i + 1) and falls to f(i + 2), the f evenly spaced in mels
/// between the edges (ONNX's reference, bin for bin).
fn mel_weight_matrix(ctx: &mut NodeCtx<'_>) -> R {
    let mels = scalar_int(ctx, 0, "num_mel_bins")?;
    let dft = scalar_int(ctx, 1, "dft_length")?;
    let rate = scalar_int(ctx, 2, "sample_rate")?;
    let lo = scalar_f64(ctx, 3, "lower_edge_hertz")?;
    let hi = scalar_f64(ctx, 4, "upper_edge_hertz")?;
    if !(1..=MAX_SIZE).contains(&mels) || !(1..=MAX_SIZE).contains(&dft) || rate <= 0 {
        return Err(ConvertError::new(format!(
            "{mels} mel bins over a DFT of {dft} at {rate} Hz"
        )));
    }
    let (mels, bins) = (mels as usize, dft as usize / 2 + 1);
    if mels.checked_mul(bins).is_none_or(|n| n > MAX_SIZE as usize) {
        return Err(ConvertError::new(format!(
            "{bins} x {mels} weights is too many"
        )));
    }
    let to_mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / 10f64.ln();
    let (lm, hm) = (to_mel(lo), to_mel(hi));
    let step = (hm - lm) / (mels + 2) as f64;
    let f: Vec<i64> = (0..mels + 2)
        .map(|i| {
            let m = i as f64 * step + lm;
            let hz = 700.0 * (m / 2595.0 * 10f64.ln()).exp_m1();
            ((dft + 1) as f64 * hz / rate as f64).floor() as i64
        })
        .collect();
    let mut w = vec![0f32; bins * mels];
    let mut put = |j: i64, i: usize, v: f64| -> Result<(), ConvertError> {
        let j = usize::try_from(j)
            .ok()
            .filter(|&j| j < bins)
            .ok_or_else(|| {
                ConvertError::new(format!("mel filter {i} reaches bin {j} of {bins}"))
            })?;
        w[j * mels + i] = v as f32;
        Ok(())
    };
    for i in 0..mels {
        let (l, c, h) = (f[i], f[i + 1], f[i + 2]);
        if c == l {
            put(c, i, 1.0)?;
        } else {
            for j in l..=c {
                put(j, i, (j - l) as f64 / (c - l) as f64)?;
            }
        }
        if h > c {
            for j in c..h {
                put(j, i, (h - j) as f64 / (h - c) as f64)?;
            }
        }
    }
    let dtype =
        dtype_from_onnx(ctx.attr_int("output_datatype", 1)? as i32).map_err(ConvertError::new)?;
    let t = Tensor::from_f32(&[bins, mels], w)?;
    let t = if dtype == DataType::F32 {
        t
    } else {
        t.cast(dtype)
    };
    let y = ctx.constant(t);
    ctx.set_output(0, y)
}
