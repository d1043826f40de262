//! The function a kernel applies to each result before storing it: an IR
//! activation, or HardSwish (x · HardSigmoid(x)), which the cpu plan fuses
//! from the HardSigmoid and Mul layers TensorRT networks express it with.

use crate::ir::Activation;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Ir(Activation),
    /// `x * clamp(alpha * x + beta, 0, 1)`.
    HardSwish {
        alpha: f32,
        beta: f32,
    },
}

impl Act {
    pub fn from_ir(a: Option<Activation>) -> Self {
        a.map_or(Act::Identity, Act::Ir)
    }

    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Identity => x,
            Act::Ir(a) => a.apply(x),
            Act::HardSwish { alpha, beta } => x * (alpha * x + beta).clamp(0.0, 1.0),
        }
    }
}

/// Runs `$body` with `$f` bound to a closure computing `$act`, one copy of
/// the body per common function so that per-element code is branch-free.
#[macro_export]
macro_rules! with_act {
    ($act:expr, |$f:ident| $body:expr) => {{
        use $crate::backend::cpu::act::Act;
        use $crate::ir::Activation;
        match $act {
            Act::Identity => {
                let $f = |v: f32| v;
                $body
            }
            Act::Ir(Activation::Relu) => {
                let $f = |v: f32| v.max(0.0);
                $body
            }
            Act::Ir(Activation::Clip { min, max }) => {
                let $f = move |v: f32| v.max(min).min(max);
                $body
            }
            Act::Ir(Activation::HardSigmoid { alpha, beta }) => {
                let $f = move |v: f32| (alpha * v + beta).clamp(0.0, 1.0);
                $body
            }
            Act::HardSwish { alpha, beta } => {
                let $f = move |v: f32| v * (alpha * v + beta).clamp(0.0, 1.0);
                $body
            }
            Act::Ir(Activation::GeluErf) => {
                let $f = $crate::backend::cpu::gelu::gelu_erf;
                $body
            }
            other => {
                let $f = move |v: f32| other.apply(v);
                $body
            }
        }
    }};
}
