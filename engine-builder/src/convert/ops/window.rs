//! HannWindow, HammingWindow, BlackmanWindow: a window of `size` values
//! from the constant size, computed when the model is converted (the
//! window depends on nothing else).

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
