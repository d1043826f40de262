//! Activations (IActivationLayer), Clip, HardSwish and unary math (IUnaryLayer).

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{Activation as A, ElementWiseOp, LayerKind, UnaryOp};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Relu", 1, relu);
    add("Sigmoid", 1, sigmoid);
    add("Tanh", 1, tanh);
    add("LeakyRelu", 1, leaky_relu);
    add("Elu", 1, elu);
    add("Selu", 1, selu);
    add("Softsign", 1, softsign);
    add("Softplus", 1, softplus);
    add("ThresholdedRelu", 10, thresholded_relu);
    add("HardSigmoid", 1, hard_sigmoid);
    add("HardSwish", 14, hard_swish);
    add("Clip", 1, clip);
    add("Mish", 18, mish);
    add("Gelu", 20, gelu);
    add("Celu", 12, celu);
    add("Swish", 24, swish);
    add("IsInf", 10, is_inf);
    add("Shrink", 9, shrink);
    for (op, since) in [
        ("Exp", 1),
        ("Log", 1),
        ("Sqrt", 1),
        ("Reciprocal", 1),
        ("Abs", 1),
        ("Neg", 1),
        ("Sin", 7),
        ("Cos", 7),
        ("Tan", 7),
        ("Sinh", 9),
        ("Cosh", 9),
        ("Asin", 7),
        ("Acos", 7),
        ("Atan", 7),
        ("Asinh", 9),
        ("Acosh", 9),
        ("Atanh", 9),
        ("Ceil", 1),
        ("Floor", 1),
        ("Erf", 9),
        ("Not", 1),
        ("Sign", 9),
        ("Round", 11),
        ("IsNaN", 9),
    ] {
        add(op, since, unary);
    }
}

fn activation(ctx: &mut NodeCtx<'_>, a: A) -> R {
    let x = ctx.input(0)?;
    let y = ctx.add(LayerKind::Activation { activation: a }, vec![x])?;
    ctx.set_output(0, y)
}

fn relu(ctx: &mut NodeCtx<'_>) -> R {
    activation(ctx, A::Relu)
}

fn sigmoid(ctx: &mut NodeCtx<'_>) -> R {
    activation(ctx, A::Sigmoid)
}

fn tanh(ctx: &mut NodeCtx<'_>) -> R {
    activation(ctx, A::Tanh)
}

fn leaky_relu(ctx: &mut NodeCtx<'_>) -> R {
    let alpha = ctx.attr_float("alpha", 0.01)?;
    activation(ctx, A::LeakyRelu { alpha })
}

fn elu(ctx: &mut NodeCtx<'_>) -> R {
    let alpha = ctx.attr_float("alpha", 1.0)?;
    activation(ctx, A::Elu { alpha })
}

fn selu(ctx: &mut NodeCtx<'_>) -> R {
    let alpha = ctx.attr_float("alpha", 1.673_263_2)?;
    let gamma = ctx.attr_float("gamma", 1.050_701)?;
    activation(ctx, A::Selu { alpha, gamma })
}

fn softsign(ctx: &mut NodeCtx<'_>) -> R {
    activation(ctx, A::Softsign)
}

fn softplus(ctx: &mut NodeCtx<'_>) -> R {
    activation(
        ctx,
        A::Softplus {
            alpha: 1.0,
            beta: 1.0,
        },
    )
}

fn thresholded_relu(ctx: &mut NodeCtx<'_>) -> R {
    let alpha = ctx.attr_float("alpha", 1.0)?;
    activation(ctx, A::ThresholdedRelu { alpha })
}

fn hard_sigmoid(ctx: &mut NodeCtx<'_>) -> R {
    let alpha = ctx.attr_float("alpha", 0.2)?;
    let beta = ctx.attr_float("beta", 0.5)?;
    activation(ctx, A::HardSigmoid { alpha, beta })
}

/// x * HardSigmoid(x; 1/6, 1/2), as TensorRT has no HardSwish activation.
fn hard_swish(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let hs = ctx.add(
        LayerKind::Activation {
            activation: A::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            },
        },
        vec![x],
    )?;
    let y = ctx.add(
        LayerKind::ElementWise {
            op: ElementWiseOp::Prod,
        },
        vec![x, hs],
    )?;
    ctx.set_output(0, y)
}

/// Clip: bounds from attributes (opset < 11) or inputs; constant float bounds
/// give one Clip activation, anything else Max/Min layers.
fn clip(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dtype = ctx.dtype(x);
    let (lo, hi) = if ctx.opset < 11 {
        (
            Some(ctx.attr_float("min", f32::NEG_INFINITY)? as f64),
            Some(ctx.attr_float("max", f32::INFINITY)? as f64),
        )
    } else {
        let lo = ctx
            .const_input(1)?
            .map(|t| t.to_f64_vec().first().copied().unwrap_or(f64::NEG_INFINITY));
        let hi = ctx
            .const_input(2)?
            .map(|t| t.to_f64_vec().first().copied().unwrap_or(f64::INFINITY));
        (lo, hi)
    };
    let lo_dynamic = ctx.opset >= 11 && ctx.opt_input(1)?.is_some() && lo.is_none();
    let hi_dynamic = ctx.opset >= 11 && ctx.opt_input(2)?.is_some() && hi.is_none();
    if dtype.is_float() && !lo_dynamic && !hi_dynamic {
        let min = lo.unwrap_or(f64::NEG_INFINITY) as f32;
        let max = hi.unwrap_or(f64::INFINITY) as f32;
        return activation(ctx, A::Clip { min, max });
    }
    let rank = ctx.rank(x);
    let mut y = x;
    for (i, bound, op) in [(1, lo, ElementWiseOp::Max), (2, hi, ElementWiseOp::Min)] {
        let b = match bound {
            Some(v) if v.is_finite() => ctx.scalar(dtype, v, rank)?,
            Some(_) => continue,
            None => match ctx.opt_input(i)? {
                Some(t) => ctx.unsqueeze_front(t, rank.saturating_sub(ctx.rank(t)))?,
                None => continue,
            },
        };
        y = ctx.add(LayerKind::ElementWise { op }, vec![y, b])?;
    }
    if y == x {
        y = ctx.add(LayerKind::Identity, vec![x])?;
    }
    ctx.set_output(0, y)
}

fn gelu(ctx: &mut NodeCtx<'_>) -> R {
    let a = match ctx.attr_string("approximate")?.as_deref() {
        None | Some("none") => A::GeluErf,
        Some("tanh") => A::GeluTanh,
        Some(other) => {
            return Err(ConvertError::new(format!(
                "unknown approximation '{other}'"
            )))
        }
    };
    activation(ctx, a)
}

/// max(0, x) + min(0, alpha * (exp(x / alpha) - 1)): an ELU on x / alpha,
/// scaled by alpha.
fn celu(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let alpha = ctx.attr_float("alpha", 1.0)?;
    let rank = ctx.rank(x);
    let s = ctx.scalar(ctx.dtype(x), 1.0 / alpha as f64, rank)?;
    let xs = ctx.add(
        LayerKind::ElementWise {
            op: ElementWiseOp::Prod,
        },
        vec![x, s],
    )?;
    let e = ctx.add(
        LayerKind::Activation {
            activation: A::Elu { alpha: 1.0 },
        },
        vec![xs],
    )?;
    let a = ctx.scalar(ctx.dtype(x), alpha as f64, rank)?;
    let y = ctx.add(
        LayerKind::ElementWise {
            op: ElementWiseOp::Prod,
        },
        vec![e, a],
    )?;
    ctx.set_output(0, y)
}

/// x * sigmoid(alpha * x).
fn swish(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let alpha = ctx.attr_float("alpha", 1.0)?;
    let ax = if alpha == 1.0 {
        x
    } else {
        let a = ctx.scalar(ctx.dtype(x), alpha as f64, ctx.rank(x))?;
        ctx.add(
            LayerKind::ElementWise {
                op: ElementWiseOp::Prod,
            },
            vec![x, a],
        )?
    };
    let s = ctx.add(
        LayerKind::Activation {
            activation: A::Sigmoid,
        },
        vec![ax],
    )?;
    let y = ctx.add(
        LayerKind::ElementWise {
            op: ElementWiseOp::Prod,
        },
        vec![x, s],
    )?;
    ctx.set_output(0, y)
}

/// IsInf, narrowed to one sign by comparing with zero when asked.
fn is_inf(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let pos = ctx.attr_int("detect_positive", 1)? != 0;
    let neg = ctx.attr_int("detect_negative", 1)? != 0;
    let inf = ctx.add(LayerKind::Unary { op: UnaryOp::IsInf }, vec![x])?;
    let y = match (pos, neg) {
        (true, true) => inf,
        (false, false) => {
            // Nothing to detect: every element is false.
            let f = ctx.scalar(jetrt_engine::DataType::Bool, 0.0, ctx.rank(x))?;
            ctx.add(
                LayerKind::ElementWise {
                    op: ElementWiseOp::And,
                },
                vec![inf, f],
            )?
        }
        (p, _) => {
            let z = ctx.scalar(ctx.dtype(x), 0.0, ctx.rank(x))?;
            let op = if p {
                ElementWiseOp::Greater
            } else {
                ElementWiseOp::Less
            };
            let side = ctx.add(LayerKind::ElementWise { op }, vec![x, z])?;
            ctx.add(
                LayerKind::ElementWise {
                    op: ElementWiseOp::And,
                },
                vec![inf, side],
            )?
        }
    };
    ctx.set_output(0, y)
}

/// Shrink: `x + bias` below `-lambd`, `x - bias` above `lambd`, 0 between.
fn shrink(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dt = ctx.dtype(x);
    if !dt.is_float() {
        return Err(ConvertError::new(format!(
            "Shrink of {dt} is not supported (float tensors only)"
        )));
    }
    let rank = ctx.rank(x);
    let lambd = ctx.attr_float("lambd", 0.5)? as f64;
    let bias = ctx.attr_float("bias", 0.0)? as f64;
    let lo = ctx.scalar(dt, -lambd, rank)?;
    let hi = ctx.scalar(dt, lambd, rank)?;
    let b = ctx.scalar(dt, bias, rank)?;
    let zero = ctx.scalar(dt, 0.0, rank)?;
    let below = ctx.ew(ElementWiseOp::Less, x, lo)?;
    let above = ctx.ew(ElementWiseOp::Greater, x, hi)?;
    let up = ctx.ew(ElementWiseOp::Sum, x, b)?;
    let down = ctx.ew(ElementWiseOp::Sub, x, b)?;
    let upper = ctx.add(LayerKind::Select, vec![above, down, zero])?;
    let y = ctx.add(LayerKind::Select, vec![below, up, upper])?;
    ctx.set_output(0, y)
}

/// x * tanh(softplus(x)).
fn mish(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let sp = ctx.add(
        LayerKind::Activation {
            activation: A::Softplus {
                alpha: 1.0,
                beta: 1.0,
            },
        },
        vec![x],
    )?;
    let t = ctx.add(
        LayerKind::Activation {
            activation: A::Tanh,
        },
        vec![sp],
    )?;
    let y = ctx.add(
        LayerKind::ElementWise {
            op: ElementWiseOp::Prod,
        },
        vec![x, t],
    )?;
    ctx.set_output(0, y)
}

fn unary(ctx: &mut NodeCtx<'_>) -> R {
    let op = match ctx.node.op_type.as_str() {
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Sqrt" => UnaryOp::Sqrt,
        "Reciprocal" => UnaryOp::Recip,
        "Abs" => UnaryOp::Abs,
        "Neg" => UnaryOp::Neg,
        "Sin" => UnaryOp::Sin,
        "Cos" => UnaryOp::Cos,
        "Tan" => UnaryOp::Tan,
        "Sinh" => UnaryOp::Sinh,
        "Cosh" => UnaryOp::Cosh,
        "Asin" => UnaryOp::Asin,
        "Acos" => UnaryOp::Acos,
        "Atan" => UnaryOp::Atan,
        "Asinh" => UnaryOp::Asinh,
        "Acosh" => UnaryOp::Acosh,
        "Atanh" => UnaryOp::Atanh,
        "Ceil" => UnaryOp::Ceil,
        "Floor" => UnaryOp::Floor,
        "Erf" => UnaryOp::Erf,
        "Not" => UnaryOp::Not,
        "Sign" => UnaryOp::Sign,
        "Round" => UnaryOp::Round,
        "IsNaN" => UnaryOp::IsNan,
        other => return Err(ConvertError::new(format!("{other} is not a unary op"))),
    };
    let x = ctx.input(0)?;
    let y = ctx.add(LayerKind::Unary { op }, vec![x])?;
    ctx.set_output(0, y)
}
