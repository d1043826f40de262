//! RNN, GRU and LSTM, unrolled over their (fixed) sequence: the input's
//! projection for every step is one matrix product, then each step is a
//! product by the recurrent weights, the gates' slices, their activations
//! and the element-wise state update, as ONNX defines them (TensorRT's
//! parser builds a loop; an unrolled sequence has no loop to run). The
//! weights and biases must be constant; every sequence runs its full
//! length.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{Activation, ElementWiseOp as E, LayerKind, MatrixOp, SliceMode, TensorRef};
use jetrt_engine::{DataType, Tensor};

type R = Result<(), ConvertError>;
type T = Result<TensorRef, ConvertError>;

/// The longest sequence unrolled (each step adds a dozen layers).
const MAX_STEPS: usize = 4096;

pub fn register(add: &mut Add<'_>) {
    add("RNN", 7, recurrent);
    add("GRU", 7, recurrent);
    add("LSTM", 7, recurrent);
}

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Rnn,
    Gru { linear_before_reset: bool },
    Lstm { input_forget: bool },
}

impl Cell {
    /// Gates per step, in ONNX's weight order (RNN: one; GRU: z, r, h;
    /// LSTM: i, o, f, c).
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm { .. } => 4,
        }
    }

    /// Activations per direction and their defaults.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru { .. } => &["Sigmoid", "Tanh"],
            Cell::Lstm { .. } => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// One named activation, its alpha and beta taken from the lists in order
/// where it has them.
fn activation(
    name: &str,
    alphas: &mut impl Iterator<Item = f32>,
    betas: &mut impl Iterator<Item = f32>,
) -> Result<Activation, ConvertError> {
    let mut a = |d: f32| alphas.next().unwrap_or(d);
    Ok(match name.to_ascii_lowercase().as_str() {
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        "softsign" => Activation::Softsign,
        "softplus" => Activation::Softplus {
            alpha: 1.0,
            beta: 1.0,
        },
        "leakyrelu" => Activation::LeakyRelu { alpha: a(0.01) },
        "thresholdedrelu" => Activation::ThresholdedRelu { alpha: a(1.0) },
        "elu" => Activation::Elu { alpha: a(1.0) },
        "hardsigmoid" => {
            let alpha = a(0.2);
            Activation::HardSigmoid {
                alpha,
                beta: betas.next().unwrap_or(0.5),
            }
        }
        "scaledtanh" => {
            let alpha = a(1.0);
            Activation::ScaledTanh {
                alpha,
                beta: betas.next().unwrap_or(1.0),
            }
        }
        other => {
            return Err(ConvertError::new(format!(
                "activation '{other}' is not supported in a recurrent layer"
            )))
        }
    })
}

/// What every step of one direction uses.
struct Dir {
    /// Input weights transposed, [input, G*h], and the recurrent ones, [h, G*h].
    w: TensorRef,
    r: TensorRef,
    /// GRU: the h gate's columns of `r` ([h, h]), for `(r * H) R_h^T`.
    r_h: Option<TensorRef>,
    /// Both biases summed, [1, G*h] (absent: zeros).
    bias: Option<TensorRef>,
    /// GRU with linear_before_reset: the recurrent bias of the h gate,
    /// added inside the reset product ([1, h]).
    rb_h: Option<TensorRef>,
    /// LSTM peepholes i, o, f ([1, h] each).
    peep: Option<[TensorRef; 3]>,
    acts: Vec<Activation>,
}

struct Net<'n, 'c> {
    ctx: &'n mut NodeCtx<'c>,
    dtype: DataType,
    batch: usize,
    hidden: usize,
    clip: Option<f32>,
}

impl Net<'_, '_> {
    fn slice(&mut self, x: TensorRef, start: Vec<i64>, size: Vec<usize>) -> T {
        let rank = start.len();
        self.ctx
            .slice(x, start, size, vec![1; rank], SliceMode::StrictBounds)
    }

    fn matmul(&mut self, a: TensorRef, b: TensorRef) -> T {
        self.ctx.add(
            LayerKind::MatrixMultiply {
                op0: MatrixOp::None,
                op1: MatrixOp::None,
            },
            vec![a, b],
        )
    }

    fn act(&mut self, a: Activation, x: TensorRef) -> T {
        let x = match self.clip {
            Some(c) => self.ctx.add(
                LayerKind::Activation {
                    activation: Activation::Clip { min: -c, max: c },
                },
                vec![x],
            )?,
            None => x,
        };
        self.ctx
            .add(LayerKind::Activation { activation: a }, vec![x])
    }

    /// Gate `k` of a step's [batch, G*h] pre-activations.
    fn gate(&mut self, g: TensorRef, k: usize) -> T {
        let (b, h) = (self.batch, self.hidden);
        self.slice(g, vec![0, (k * h) as i64], vec![b, h])
    }

    fn constant(&mut self, dims: &[usize], v: Vec<f32>) -> T {
        let t = Tensor::from_f32(dims, v)?.cast(self.dtype);
        Ok(self.ctx.constant(t))
    }
}

/// Rows `rows` of direction `d` of a constant [dirs, N, cols] tensor, as a
/// [cols, rows.len()] constant (transposed) or [1, len] vector.
fn part(
    w: &Tensor,
    d: usize,
    rows: std::ops::Range<usize>,
    transpose: bool,
) -> (Vec<usize>, Vec<f32>) {
    let (n, cols) = (w.shape()[1], w.shape().get(2).copied().unwrap_or(1));
    let v = w.to_f64_vec();
    let base = d * n * cols;
    let len = rows.len();
    if transpose {
        let mut out = vec![0f32; cols * len];
        for (j, r) in rows.enumerate() {
            for c in 0..cols {
                out[c * len + j] = v[base + r * cols + c] as f32;
            }
        }
        (vec![cols, len], out)
    } else {
        let out = rows.map(|r| v[base + r] as f32).collect();
        (vec![1, len], out)
    }
}

fn recurrent(ctx: &mut NodeCtx<'_>) -> R {
    let cell = match ctx.node.op_type.as_str() {
        "RNN" => Cell::Rnn,
        "GRU" => Cell::Gru {
            linear_before_reset: ctx.attr_int("linear_before_reset", 0)? != 0,
        },
        _ => Cell::Lstm {
            input_forget: ctx.attr_int("input_forget", 0)? != 0,
        },
    };
    let x = ctx.float_input(0)?;
    let dtype = ctx.dtype(x);
    let layout = ctx.attr_int("layout", 0)?;
    let dims = ctx.known_dims(x, "the input sequence")?;
    let [a0, a1, input] = dims[..] else {
        return Err(ConvertError::new("the input sequence must be 3-D"));
    };
    let (seq, batch) = if layout == 0 { (a0, a1) } else { (a1, a0) };
    if seq == 0 || seq > MAX_STEPS {
        return Err(ConvertError::new(format!(
            "a sequence of {seq} steps (1..={MAX_STEPS} are unrolled)"
        )));
    }
    let hidden = usize::try_from(ctx.attr_int("hidden_size", 0)?)
        .ok()
        .filter(|&h| h > 0)
        .ok_or_else(|| ConvertError::new("hidden_size must be positive"))?;
    let dirs_named = ctx
        .attr_string("direction")?
        .unwrap_or_else(|| "forward".into());
    let reverse: &[bool] = match dirs_named.as_str() {
        "forward" => &[false],
        "reverse" => &[true],
        "bidirectional" => &[false, true],
        other => return Err(ConvertError::new(format!("unknown direction '{other}'"))),
    };
    let nd = reverse.len();
    let gates = cell.gates();
    let w = ctx.require_const(1, "the input weights")?;
    let r = ctx.require_const(2, "the recurrent weights")?;
    let b = ctx.opt_const(3, "the biases")?;
    if w.shape() != [nd, gates * hidden, input] || r.shape() != [nd, gates * hidden, hidden] {
        return Err(ConvertError::new(format!(
            "weights of {:?} and {:?} for {nd} direction(s), {gates} gate(s) of {hidden} over {input} inputs",
            w.shape(),
            r.shape()
        )));
    }
    if b.as_ref()
        .is_some_and(|b| b.shape() != [nd, 2 * gates * hidden])
    {
        return Err(ConvertError::new(
            "the biases are not [directions, 2 x gates x hidden]",
        ));
    }
    if let Some(lens) = ctx.opt_const(4, "the sequence lengths")? {
        if lens.to_i64_vec().iter().any(|&l| l != seq as i64) {
            return Err(ConvertError::new(
                "sequences shorter than the input's are not supported",
            ));
        }
    } else if ctx.opt_input(4)?.is_some() {
        return Err(ctx.needs_const(4, "the sequence lengths"));
    }
    let peep = match cell {
        Cell::Lstm { .. } => ctx.opt_const(7, "the peepholes")?,
        _ => None,
    };
    if peep.as_ref().is_some_and(|p| p.shape() != [nd, 3 * hidden]) {
        return Err(ConvertError::new(
            "the peepholes are not [directions, 3 x hidden]",
        ));
    }
    let names: Vec<String> = match ctx.attr_strings("activations")? {
        Some(v) => v,
        None => std::iter::repeat_n(cell.default_activations(), nd)
            .flatten()
            .map(|s| s.to_string())
            .collect(),
    };
    let per = cell.default_activations().len();
    if names.len() != per * nd {
        return Err(ConvertError::new(format!(
            "{} activations for {nd} direction(s) of {per}",
            names.len()
        )));
    }
    let mut alphas = ctx
        .attr_floats("activation_alpha")?
        .unwrap_or_default()
        .into_iter();
    let mut betas = ctx
        .attr_floats("activation_beta")?
        .unwrap_or_default()
        .into_iter();
    let clip = if ctx.has_attr("clip") {
        Some(ctx.attr_float("clip", 0.0)?)
    } else {
        None
    };
    let h0 = ctx.opt_input(5)?;
    let c0 = match cell {
        Cell::Lstm { .. } => ctx.opt_input(6)?,
        _ => None,
    };
    // The sequence time-major, as rows of [seq * batch, input].
    let xt = if layout == 0 {
        x
    } else {
        ctx.transpose(x, vec![1, 0, 2])?
    };
    let rows = ctx.reshape(xt, vec![(seq * batch) as i64, input as i64])?;
    let mut n = Net {
        ctx,
        dtype,
        batch,
        hidden,
        clip,
    };
    let gh = gates * hidden;
    let mut ys = Vec::new();
    let mut yh = Vec::new();
    let mut yc = Vec::new();
    for (d, &rev) in reverse.iter().enumerate() {
        let (wd, wv) = part(&w, d, 0..gh, true);
        let (rd, rv) = part(&r, d, 0..gh, true);
        let (wt, rt) = (n.constant(&wd, wv)?, n.constant(&rd, rv)?);
        let mut acts = Vec::with_capacity(per);
        for name in &names[d * per..(d + 1) * per] {
            acts.push(activation(name, &mut alphas, &mut betas)?);
        }
        let (bias, rb_h) = match &b {
            Some(b) => {
                let (_, wb) = part(b, d, 0..gh, false);
                let (_, rb) = part(b, d, gh..2 * gh, false);
                let lbr = matches!(
                    cell,
                    Cell::Gru {
                        linear_before_reset: true
                    }
                );
                // With linear_before_reset the h gate's recurrent bias is
                // added inside the reset product, not with the others.
                let sum: Vec<f32> = (0..gh)
                    .map(|i| wb[i] + if lbr && i >= 2 * hidden { 0.0 } else { rb[i] })
                    .collect();
                let rbh = if lbr {
                    Some(n.constant(&[1, hidden], rb[2 * hidden..].to_vec())?)
                } else {
                    None
                };
                (Some(n.constant(&[1, gh], sum)?), rbh)
            }
            None => (None, None),
        };
        let peep = match &peep {
            Some(p) => {
                let mut v = Vec::new();
                for k in 0..3 {
                    let (_, pv) = part(p, d, k * hidden..(k + 1) * hidden, false);
                    v.push(n.constant(&[1, hidden], pv)?);
                }
                Some([v[0], v[1], v[2]])
            }
            None => None,
        };
        let r_h = match cell {
            Cell::Gru { .. } => {
                let (hd, hv) = part(&r, d, 2 * hidden..3 * hidden, true);
                Some(n.constant(&hd, hv)?)
            }
            _ => None,
        };
        let dir = Dir {
            w: wt,
            r: rt,
            r_h,
            bias,
            rb_h,
            peep,
            acts,
        };
        // Every step's input projection at once: [seq, batch, G*h].
        let mut xw = n.matmul(rows, dir.w)?;
        if let Some(bias) = dir.bias {
            xw = n.ctx.ew(E::Sum, xw, bias)?;
        }
        let initial = |n: &mut Net<'_, '_>, t: Option<TensorRef>| -> T {
            match t {
                Some(t) => {
                    let s = n.slice(t, vec![d as i64, 0, 0], vec![1, batch, hidden])?;
                    n.ctx.reshape(s, vec![batch as i64, hidden as i64])
                }
                None => n.constant(&[batch, hidden], vec![0.0; batch * hidden]),
            }
        };
        let mut h = initial(&mut n, h0)?;
        let mut c = initial(&mut n, c0)?;
        let mut outs = vec![None; seq];
        for s in 0..seq {
            let t = if rev { seq - 1 - s } else { s };
            let xs = n.slice(xw, vec![(t * batch) as i64, 0], vec![batch, gh])?;
            (h, c) = step(&mut n, cell, &dir, xs, h, c)?;
            outs[t] = Some(h);
        }
        let mut steps = Vec::with_capacity(seq);
        for o in outs.into_iter().flatten() {
            steps.push(n.ctx.reshape(o, vec![1, 1, batch as i64, hidden as i64])?);
        }
        ys.push(concat(n.ctx, steps, 0)?);
        yh.push(n.ctx.reshape(h, vec![1, batch as i64, hidden as i64])?);
        yc.push(n.ctx.reshape(c, vec![1, batch as i64, hidden as i64])?);
    }
    let ctx = n.ctx;
    let mut y = concat(ctx, ys, 1)?;
    let mut y_h = concat(ctx, yh, 0)?;
    let mut y_c = concat(ctx, yc, 0)?;
    if layout != 0 {
        y = ctx.transpose(y, vec![2, 0, 1, 3])?;
        y_h = ctx.transpose(y_h, vec![1, 0, 2])?;
        y_c = ctx.transpose(y_c, vec![1, 0, 2])?;
    }
    ctx.set_output(0, y)?;
    ctx.set_output(1, y_h)?;
    if matches!(cell, Cell::Lstm { .. }) {
        ctx.set_output(2, y_c)?;
    }
    Ok(())
}

fn concat(ctx: &mut NodeCtx<'_>, parts: Vec<TensorRef>, axis: usize) -> T {
    if parts.len() == 1 {
        return Ok(parts[0]);
    }
    ctx.add(LayerKind::Concatenation { axis }, parts)
}

/// One step: the new hidden state (and, for LSTM, cell state) from the
/// step's input projection `xs` ([batch, G*h]) and the previous states.
fn step(
    n: &mut Net<'_, '_>,
    cell: Cell,
    dir: &Dir,
    xs: TensorRef,
    h: TensorRef,
    c: TensorRef,
) -> Result<(TensorRef, TensorRef), ConvertError> {
    let hr = n.matmul(h, dir.r)?;
    match cell {
        Cell::Rnn => {
            let g = n.ctx.ew(E::Sum, xs, hr)?;
            let h = n.act(dir.acts[0], g)?;
            Ok((h, c))
        }
        Cell::Gru {
            linear_before_reset,
        } => {
            let (f, g) = (dir.acts[0], dir.acts[1]);
            let xz = n.gate(xs, 0)?;
            let hz = n.gate(hr, 0)?;
            let xr = n.gate(xs, 1)?;
            let hrr = n.gate(hr, 1)?;
            let zs = n.ctx.ew(E::Sum, xz, hz)?;
            let z = n.act(f, zs)?;
            let rs = n.ctx.ew(E::Sum, xr, hrr)?;
            let r = n.act(f, rs)?;
            let xh = n.gate(xs, 2)?;
            let hh = if linear_before_reset {
                // r * (H R_h^T + Rb_h)
                let mut hh = n.gate(hr, 2)?;
                if let Some(rb) = dir.rb_h {
                    hh = n.ctx.ew(E::Sum, hh, rb)?;
                }
                n.ctx.ew(E::Prod, r, hh)?
            } else {
                // (r * H) R_h^T.
                let rh = n.ctx.ew(E::Prod, r, h)?;
                let rw = dir
                    .r_h
                    .ok_or_else(|| ConvertError::new("a GRU without its h weights"))?;
                n.matmul(rh, rw)?
            };
            let pre = n.ctx.ew(E::Sum, xh, hh)?;
            let cand = n.act(g, pre)?;
            // (1 - z) * cand + z * H = cand + z * (H - cand)
            let diff = n.ctx.ew(E::Sub, h, cand)?;
            let zd = n.ctx.ew(E::Prod, z, diff)?;
            let h = n.ctx.ew(E::Sum, cand, zd)?;
            Ok((h, c))
        }
        Cell::Lstm { input_forget } => {
            let (f, g, hact) = (dir.acts[0], dir.acts[1], dir.acts[2]);
            let pre = n.ctx.ew(E::Sum, xs, hr)?;
            let mut gi = n.gate(pre, 0)?;
            let mut go = n.gate(pre, 1)?;
            let mut gf = n.gate(pre, 2)?;
            let gc = n.gate(pre, 3)?;
            if let Some([pi, _, pf]) = dir.peep {
                let a = n.ctx.ew(E::Prod, pi, c)?;
                gi = n.ctx.ew(E::Sum, gi, a)?;
                let b = n.ctx.ew(E::Prod, pf, c)?;
                gf = n.ctx.ew(E::Sum, gf, b)?;
            }
            let i = n.act(f, gi)?;
            let fg = if input_forget {
                let one = n.constant(&[1, 1], vec![1.0])?;
                n.ctx.ew(E::Sub, one, i)?
            } else {
                n.act(f, gf)?
            };
            let cc = n.act(g, gc)?;
            let keep = n.ctx.ew(E::Prod, fg, c)?;
            let add = n.ctx.ew(E::Prod, i, cc)?;
            let c = n.ctx.ew(E::Sum, keep, add)?;
            if let Some([_, po, _]) = dir.peep {
                let a = n.ctx.ew(E::Prod, po, c)?;
                go = n.ctx.ew(E::Sum, go, a)?;
            }
            let o = n.act(f, go)?;
            let hc = n
                .ctx
                .add(LayerKind::Activation { activation: hact }, vec![c])?;
            let h = n.ctx.ew(E::Prod, o, hc)?;
            Ok((h, c))
        }
    }
}
