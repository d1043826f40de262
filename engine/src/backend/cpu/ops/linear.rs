//! A Linear layer: a product of activations [..., M, K] by constant weights
//! (K×N, or N×K transposed), with the bias over its columns and the
//! activation after it (`ir::fusion::bias_of`) in the GEMM's store.
//!
//! The generic MatrixMultiply packs both operands on every run; here the
//! weights are packed once, when the plan loads, as the A operand of the
//! packed GEMM (their transpose, N×K), the activations are read as B (their
//! transpose, K×rows) and the result is stored transposed back through C's
//! layout, so that the bias is per row of the GEMM, as a convolution's is.

use super::activation::map_in_place;
use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::act::Act;
use crate::backend::cpu::sgemm::{gemm, Epilogue, Layout, PackedA, RowsB};
use crate::ir::{Activation, MatrixOp};
use crate::tensor::Tensor;

pub struct Linear {
    /// The weights' transpose, N×K.
    w: PackedA,
    bias: Option<Vec<f32>>,
    act: Act,
}

impl Linear {
    /// For weights `w` of dims [K, N] (`op1` None) or [N, K] (Transpose),
    /// after any leading dims of 1, an optional bias of N values and the
    /// activation after it.
    pub fn new(w: &Tensor, op1: MatrixOp, bias: Option<&Tensor>, act: Act) -> Result<Self, String> {
        let s = w.shape();
        let [lead @ .., r, c] = s else {
            return Err(format!("Linear weights of dims {s:?}, not a matrix"));
        };
        if lead.iter().any(|&d| d != 1) {
            return Err(format!("Linear weights of dims {s:?}, not a matrix"));
        }
        let (r, c) = (*r, *c);
        let wv = f32_data(w)?;
        let w = match op1 {
            MatrixOp::None => PackedA::from_fn(c, r, |n, k| wv[k * c + n]),
            MatrixOp::Transpose => PackedA::pack(&wv, r, c),
            MatrixOp::Vector => return Err("Linear weights cannot be a vector".into()),
        };
        let bias = match bias {
            Some(b) => {
                let v = f32_data(b)?.into_owned();
                if v.len() != w.m {
                    return Err(format!("bias of {} values for {} columns", v.len(), w.m));
                }
                Some(v)
            }
            None => None,
        };
        Ok(Linear { w, bias, act })
    }
}

impl Op for Linear {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (n, k) = (self.w.m, self.w.k);
        let Some((&kx, lead)) = x.shape().split_last() else {
            return Err("a Linear layer's input has no dims".into());
        };
        if kx != k || lead.is_empty() {
            return Err(format!(
                "input of dims {:?} for weights of {k} inputs",
                x.shape()
            ));
        }
        let rows: usize = lead.iter().product();
        let xv = f32_data(x)?;
        let mut out = ctx.take_f32(rows * n);
        let b = RowsB {
            data: &xv,
            k,
            n: rows,
        };
        // C = W^T · X^T is N×rows; element (j, r) is the output's [r][j].
        let layout = Layout { rs: 1, cs: n };
        // GELU is worth a pass of its own over the contiguous output, where
        // it vectorizes; in the transposed store it runs element by element.
        let (in_store, after) = match self.act {
            a @ Act::Ir(Activation::GeluErf) => (Act::Identity, Some(a)),
            a => (a, None),
        };
        let epi = Epilogue {
            bias: self.bias.as_deref(),
            residual: None,
            act: in_store,
        };
        if rows > 0 && n > 0 {
            gemm(&self.w, &b, &mut out, layout, &epi, ctx.threads);
        }
        if let Some(a) = after {
            crate::with_act!(a, |f| map_in_place(ctx, &mut out, f));
        }
        let mut shape = lead.to_vec();
        shape.push(n);
        Ok(vec![float_tensor(x.dtype(), shape, out)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::buffers::Buffers;
    use crate::ir::Activation;

    /// Against the definition: both weight layouts, with and without a
    /// bias and an activation, one row (a matrix-vector product) and many,
    /// sizes that fill no kernel tile exactly.
    #[test]
    fn linear_layers_match_the_definition() {
        let buffers = Buffers::default();
        let ctx = Ctx::new(2, &buffers);
        for (lead, k, n) in [
            (vec![1usize], 7usize, 5usize),
            (vec![1, 7, 7], 96, 37),
            (vec![3, 2], 33, 130),
        ] {
            let rows: usize = lead.iter().product();
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.2).collect();
            let mut xs = lead.clone();
            xs.push(k);
            let xt = Tensor::from_f32(&xs, x.clone()).unwrap();
            for op1 in [MatrixOp::None, MatrixOp::Transpose] {
                // W[k][j] as [K, N], or as its transpose [N, K].
                let (wt, at): (Tensor, Box<dyn Fn(usize, usize) -> f32>) = match op1 {
                    MatrixOp::None => (
                        Tensor::from_f32(&[k, n], w.clone()).unwrap(),
                        Box::new(|kk, j| w[kk * n + j]),
                    ),
                    _ => (
                        Tensor::from_f32(&[n, k], w.clone()).unwrap(),
                        Box::new(|kk, j| w[j * k + kk]),
                    ),
                };
                for (with_bias, act) in
                    [(false, Act::Identity), (true, Act::Ir(Activation::GeluErf))]
                {
                    let bt = Tensor::from_f32(&[n], bias.clone()).unwrap();
                    let op = Linear::new(&wt, op1, with_bias.then_some(&bt), act).unwrap();
                    let y = op.run(&ctx, &[&xt]).unwrap().remove(0);
                    let mut ys = lead.clone();
                    ys.push(n);
                    assert_eq!(y.shape(), ys.as_slice());
                    let got = y.as_f32().unwrap();
                    for r in 0..rows {
                        for j in 0..n {
                            let mut v: f32 = (0..k).map(|kk| x[r * k + kk] * at(kk, j)).sum();
                            if with_bias {
                                v += bias[j];
                            }
                            let want = act.apply(v);
                            let g = got[r * n + j];
                            assert!(
                                (g - want).abs() <= 1e-5 * want.abs().max(1.0),
                                "{lead:?}x{k} -> {n} {op1:?} bias {with_bias}: [{r}][{j}] {g} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
