//! ElementWise layers: two operands of equal rank with NumPy broadcasting.

use super::{f32_data, float_tensor, Ctx, Op, OpResult, PAR_CHUNK};
use crate::backend::cpu::util::broadcast_dims;
use crate::ir::ElementWiseOp as E;
use crate::tensor::{Tensor, TensorData};
use rayon::prelude::*;

pub struct ElementWise(pub E);

/// Broadcast dims collapsed into runs: dims where each operand either
/// steps or stays (broadcast) merge, so the innermost loop is one long run.
struct Plan {
    out: Vec<usize>,
    /// Collapsed outer dims (all but the innermost run) and each operand's
    /// stride in them.
    outer: Vec<usize>,
    sa: Vec<usize>,
    sb: Vec<usize>,
    /// The innermost run: its length and whether each operand steps along it.
    len: usize,
    step_a: bool,
    step_b: bool,
}

fn plan(ad: &[usize], bd: &[usize]) -> Result<Plan, String> {
    let out = broadcast_dims(ad, bd)?;
    // (length, a steps, b steps) per dim, merged with the previous one when alike.
    let mut dims: Vec<(usize, bool, bool)> = Vec::new();
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        let d = (out[i], ad[i] != 1, bd[i] != 1);
        match dims.last_mut() {
            Some(last) if last.1 == d.1 && last.2 == d.2 => last.0 *= d.0,
            _ => dims.push(d),
        }
    }
    let (len, step_a, step_b) = dims.pop().unwrap_or((1, true, true));
    // Strides of the outer dims in each operand: what the inner run spans,
    // times the dims inside them that the operand steps along.
    let (mut ra, mut rb) = (if step_a { len } else { 1 }, if step_b { len } else { 1 });
    let mut sa = vec![0; dims.len()];
    let mut sb = vec![0; dims.len()];
    for (k, &(n, a, b)) in dims.iter().enumerate().rev() {
        if a {
            sa[k] = ra;
            ra *= n;
        }
        if b {
            sb[k] = rb;
            rb *= n;
        }
    }
    Ok(Plan {
        out,
        outer: dims.iter().map(|d| d.0).collect(),
        sa,
        sb,
        len,
        step_a,
        step_b,
    })
}

/// `f(a, b)` over the broadcast of `a` (dims `ad`) and `b` (dims `bd`),
/// written into `out` (which must hold the broadcast's volume); rows of the
/// innermost run go to the thread pool when there is enough work.
pub fn broadcast_write<A, B, O>(
    a: &[A],
    ad: &[usize],
    b: &[B],
    bd: &[usize],
    out: &mut [O],
    f: impl Fn(A, B) -> O + Sync,
) -> Result<Vec<usize>, String>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Send,
{
    let p = plan(ad, bd)?;
    let n: usize = p.out.iter().product();
    if out.len() != n {
        return Err(format!(
            "output holds {} elements, the broadcast {n}",
            out.len()
        ));
    }
    if n == 0 {
        return Ok(p.out);
    }
    let row = |r: usize, dst: &mut [O]| {
        // Outer coordinates of row r, and the operands' offsets there.
        let (mut oa, mut ob, mut rem) = (0, 0, r);
        for k in (0..p.outer.len()).rev() {
            let c = rem % p.outer[k];
            rem /= p.outer[k];
            oa += c * p.sa[k];
            ob += c * p.sb[k];
        }
        match (p.step_a, p.step_b) {
            (true, true) => {
                let (x, y) = (&a[oa..oa + p.len], &b[ob..ob + p.len]);
                dst.iter_mut()
                    .zip(x.iter().zip(y))
                    .for_each(|(d, (&x, &y))| *d = f(x, y));
            }
            (true, false) => {
                let y = b[ob];
                dst.iter_mut()
                    .zip(&a[oa..oa + p.len])
                    .for_each(|(d, &x)| *d = f(x, y));
            }
            (false, true) => {
                let x = a[oa];
                dst.iter_mut()
                    .zip(&b[ob..ob + p.len])
                    .for_each(|(d, &y)| *d = f(x, y));
            }
            (false, false) => {
                let (x, y) = (a[oa], b[ob]);
                dst.iter_mut().for_each(|d| *d = f(x, y));
            }
        }
    };
    if n >= 2 * PAR_CHUNK && p.len >= 16 {
        out.par_chunks_mut(p.len)
            .enumerate()
            .for_each(|(r, dst)| row(r, dst));
    } else {
        out.chunks_mut(p.len)
            .enumerate()
            .for_each(|(r, dst)| row(r, dst));
    }
    Ok(p.out)
}

/// As [`broadcast_write`], into a new vector.
pub fn broadcast_map<A, B, O>(
    a: &[A],
    ad: &[usize],
    b: &[B],
    bd: &[usize],
    f: impl Fn(A, B) -> O + Sync,
) -> Result<(Vec<usize>, Vec<O>), String>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Send + Default + Clone,
{
    let n: usize = broadcast_dims(ad, bd)?.iter().product();
    let mut out = vec![O::default(); n];
    let dims = broadcast_write(a, ad, b, bd, &mut out, f)?;
    Ok((dims, out))
}

fn float_op(op: E, x: f32, y: f32) -> f32 {
    match op {
        E::Sum => x + y,
        E::Prod => x * y,
        E::Max => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                x.max(y)
            }
        }
        E::Min => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                x.min(y)
            }
        }
        E::Sub => x - y,
        E::Div => x / y,
        E::Pow => x.powf(y),
        E::FloorDiv => (x / y).floor(),
        _ => unreachable!("not an arithmetic op"),
    }
}

/// Integer arithmetic on values of a `bits`-bit type held in an i64;
/// division by zero gives 0 instead of trapping.
fn int_op(op: E, x: i64, y: i64, bits: u32) -> i64 {
    let in_range = (0..bits as i64).contains(&y);
    match op {
        E::And => x & y,
        E::Or => x | y,
        E::Xor => x ^ y,
        E::ShiftLeft if in_range => ((x as u64) << y) as i64,
        E::ShiftLeft => 0,
        // Arithmetic for signed types (held sign-extended), logical for
        // unsigned ones (held zero-extended); past the width, the sign.
        E::ShiftRight => x >> if in_range { y } else { 63 },
        E::Sum => x.wrapping_add(y),
        E::Prod => x.wrapping_mul(y),
        E::Max => x.max(y),
        E::Min => x.min(y),
        E::Sub => x.wrapping_sub(y),
        E::Div => x.checked_div(y).unwrap_or(0),
        E::FloorDiv => match x.checked_div(y) {
            Some(q) if (x % y != 0) && ((x < 0) != (y < 0)) => q - 1,
            Some(q) => q,
            None => 0,
        },
        E::Pow => {
            if y < 0 {
                match x {
                    1 => 1,
                    -1 => {
                        if y % 2 == 0 {
                            1
                        } else {
                            -1
                        }
                    }
                    _ => 0,
                }
            } else {
                x.wrapping_pow(y.min(u32::MAX as i64) as u32)
            }
        }
        _ => unreachable!("not an arithmetic op"),
    }
}

fn compare<T: PartialOrd>(op: E, x: T, y: T) -> bool {
    match op {
        E::Equal => x == y,
        E::Greater => x > y,
        E::Less => x < y,
        _ => unreachable!("not a comparison"),
    }
}

macro_rules! int_case {
    ($op:expr, $a:expr, $ad:expr, $b:expr, $bd:expr, $variant:ident, $t:ty) => {{
        let op = $op;
        if op.is_comparison() {
            let (d, v) = broadcast_map($a, $ad, $b, $bd, |x: $t, y: $t| compare(op, x, y))?;
            (d, TensorData::Bool(v))
        } else {
            let (d, v) = broadcast_map($a, $ad, $b, $bd, |x: $t, y: $t| {
                int_op(op, x as i64, y as i64, <$t>::BITS) as $t
            })?;
            (d, TensorData::$variant(v))
        }
    }};
}

impl Op for ElementWise {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (a, b) = (inputs[0], inputs[1]);
        let (ad, bd) = (a.shape(), b.shape());
        let op = self.0;
        let (dims, data) = match (a.data(), b.data()) {
            (TensorData::F32(_) | TensorData::F16(_), TensorData::F32(_) | TensorData::F16(_)) => {
                let (x, y) = (f32_data(a)?, f32_data(b)?);
                if op.is_comparison() {
                    let (d, v) = broadcast_map(&x, ad, &y, bd, |p, q| compare(op, p, q))?;
                    (d, TensorData::Bool(v))
                } else {
                    let mut out = ctx.take_f32(broadcast_dims(ad, bd)?.iter().product());
                    let d = match op {
                        E::Sum => broadcast_write(&x, ad, &y, bd, &mut out, |p, q| p + q)?,
                        E::Prod => broadcast_write(&x, ad, &y, bd, &mut out, |p, q| p * q)?,
                        E::Sub => broadcast_write(&x, ad, &y, bd, &mut out, |p, q| p - q)?,
                        E::Div => broadcast_write(&x, ad, &y, bd, &mut out, |p, q| p / q)?,
                        _ => broadcast_write(&x, ad, &y, bd, &mut out, |p, q| float_op(op, p, q))?,
                    };
                    return Ok(vec![float_tensor(a.dtype(), d, out)?]);
                }
            }
            (TensorData::I32(x), TensorData::I32(y)) => int_case!(op, x, ad, y, bd, I32, i32),
            (TensorData::I64(x), TensorData::I64(y)) => int_case!(op, x, ad, y, bd, I64, i64),
            (TensorData::U8(x), TensorData::U8(y)) => int_case!(op, x, ad, y, bd, U8, u8),
            (TensorData::Bool(x), TensorData::Bool(y)) => {
                let f: fn(bool, bool) -> bool = match op {
                    E::And => |p, q| p && q,
                    E::Or => |p, q| p || q,
                    E::Xor => |p, q| p != q,
                    E::Equal => |p, q| p == q,
                    E::Greater => |p, q| p && !q,
                    E::Less => |p, q| !p && q,
                    _ => return Err(format!("{op:?} does not take bool operands")),
                };
                let (d, v) = broadcast_map(x, ad, y, bd, f)?;
                (d, TensorData::Bool(v))
            }
            _ => {
                return Err(format!(
                    "operands have different types: {} and {}",
                    a.dtype(),
                    b.dtype()
                ))
            }
        };
        Ok(vec![Tensor::new(dims, data).map_err(|e| e.to_string())?])
    }
}

/// `x >= 0 ? x : slope * x`, the slope broadcast onto x.
pub struct ParametricRelu;

impl Op for ParametricRelu {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (x, s) = (inputs[0], inputs[1]);
        let (xv, sv) = (f32_data(x)?, f32_data(s)?);
        let (d, v) = broadcast_map(&xv, x.shape(), &sv, s.shape(), |a, b| {
            if a >= 0.0 {
                a
            } else {
                a * b
            }
        })?;
        Ok(vec![float_tensor(x.dtype(), d, v)?])
    }
}
