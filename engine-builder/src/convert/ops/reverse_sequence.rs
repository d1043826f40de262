//! ReverseSequence: the first `sequence_lens[b]` steps of each batch
//! element reversed along the time axis, the rest as they are. With the
//! lengths constant, that is one gather of rows: the two leading axes
//! (time and batch, in either order) flattened into one, and each row
//! taken from where the reversal puts it.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::GatherMode;
use jetrt_engine::Tensor;

type R = Result<(), ConvertError>;

/// The most rows (time x batch) the row map is built for.
const MAX_ROWS: usize = 1 << 24;

pub fn register(add: &mut Add<'_>) {
    add("ReverseSequence", 10, reverse_sequence);
}

fn reverse_sequence(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    if rank < 2 {
        return Err(ConvertError::new(format!(
            "the input must have rank 2 or more, not {rank}"
        )));
    }
    let time = ctx.attr_int("time_axis", 0)?;
    let batch = ctx.attr_int("batch_axis", 1)?;
    if !matches!((time, batch), (0, 1) | (1, 0)) {
        return Err(ConvertError::new(format!(
            "time_axis {time} and batch_axis {batch}: one must be 0 and the other 1"
        )));
    }
    let dims = ctx.known_dims(x, "ReverseSequence's input")?;
    let (t_len, b_len) = (dims[time as usize], dims[batch as usize]);
    let rows = t_len
        .checked_mul(b_len)
        .filter(|&r| r <= MAX_ROWS)
        .ok_or_else(|| ConvertError::new(format!("{t_len} x {b_len} rows (at most {MAX_ROWS})")))?;
    let lens = ctx.require_const(1, "the sequence lengths")?.to_i64_vec();
    if lens.len() != b_len {
        return Err(ConvertError::new(format!(
            "{} sequence lengths for a batch of {b_len}",
            lens.len()
        )));
    }
    if let Some(l) = lens.iter().find(|&&l| !(0..=t_len as i64).contains(&l)) {
        return Err(ConvertError::new(format!(
            "a sequence length of {l} (the time axis has {t_len} steps)"
        )));
    }
    // Row (i0, i1) of the flattened leading axes is i0 * d1 + i1.
    let d1 = dims[1];
    let map: Vec<i64> = (0..rows)
        .map(|r| {
            let (i0, i1) = (r / d1, r % d1);
            let (t, b) = if time == 0 { (i0, i1) } else { (i1, i0) };
            let len = lens[b] as usize;
            let src = if t < len { len - 1 - t } else { t };
            let (s0, s1) = if time == 0 { (src, b) } else { (b, src) };
            (s0 * d1 + s1) as i64
        })
        .collect();
    let mut flat = vec![rows as i64];
    flat.extend(dims[2..].iter().map(|&d| d as i64));
    let xf = ctx.reshape(x, flat)?;
    let idx = ctx.constant(Tensor::from_i64(&[rows], map)?);
    let y = ctx.gather(xf, idx, 0, GatherMode::Default)?;
    let y = ctx.reshape(y, dims.iter().map(|&d| d as i64).collect())?;
    ctx.set_output(0, y)
}
