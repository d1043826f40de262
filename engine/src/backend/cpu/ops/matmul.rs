//! MatrixMultiply: batched GEMM with broadcast over the leading dims.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::gemm::{sgemm, MatRef};
use crate::backend::cpu::util::{broadcast_dims, broadcast_strides, for_each_offset};
use crate::ir::matrix::{batch_folds_into_rows, matrix_dims};
use crate::ir::MatrixOp;
use crate::tensor::Tensor;
use rayon::prelude::*;

pub struct MatMul {
    pub op0: MatrixOp,
    pub op1: MatrixOp,
}

impl Op for MatMul {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (a, b) = (inputs[0], inputs[1]);
        let g = matrix_dims(a.shape(), self.op0, b.shape(), self.op1)?;
        let (ba, bb, (ar, ac), (br, bc)) = (g.batch_a, g.batch_b, g.a, g.b);
        let (m, k, n) = (g.m, g.k, g.n);
        let batch = broadcast_dims(ba, bb)?;
        let (av, bv) = (f32_data(a)?, f32_data(b)?);
        let (asz, bsz) = (ar * ac, br * bc);
        let sa: Vec<usize> = broadcast_strides(ba, &batch)
            .iter()
            .map(|s| s * asz)
            .collect();
        let sb: Vec<usize> = broadcast_strides(bb, &batch)
            .iter()
            .map(|s| s * bsz)
            .collect();
        let count: usize = batch.iter().product();
        if count == 1 && m == 1 && self.op0 != MatrixOp::Transpose {
            // A single row (a fully connected layer at batch 1): a matrix-vector
            // product, which reads the weights once, straight from memory.
            let mut out = ctx.take_f32(n);
            let x = &av[..k];
            match self.op1 {
                MatrixOp::None => xw(x, &bv[..k * n], &mut out),
                MatrixOp::Transpose | MatrixOp::Vector => wx(&bv[..k * n], x, &mut out),
            }
            let shape = out_shape(batch, self.op0, self.op1, m, n);
            return Ok(vec![float_tensor(a.dtype(), shape, out)?]);
        }
        let mut out = vec![0f32; count * m * n];
        if batch_folds_into_rows(ba, bb, self.op0) {
            // One weight for the whole batch: one product with the batch
            // as rows (`count` small products read the weights `count` times).
            let am = MatRef::row_major(&av[..count * asz], count * ar, ac);
            let bm = match self.op1 {
                MatrixOp::None => MatRef::row_major(&bv[..bsz], br, bc),
                MatrixOp::Transpose | MatrixOp::Vector => MatRef::row_major(&bv[..bsz], br, bc).t(),
            };
            sgemm(am, bm, &mut out, false, ctx.threads);
            return Ok(vec![float_tensor(
                a.dtype(),
                out_shape(batch, self.op0, self.op1, m, n),
                out,
            )?]);
        }
        let mut views = Vec::with_capacity(count);
        for_each_offset(&batch, [&sa, &sb], |i, [oa, ob]| views.push((i, oa, ob)));
        for (i, oa, ob) in views {
            let mut am = MatRef::row_major(&av[oa..oa + asz], ar, ac);
            if self.op0 == MatrixOp::Transpose {
                am = am.t();
            }
            let bm = match self.op1 {
                MatrixOp::None => MatRef::row_major(&bv[ob..ob + bsz], br, bc),
                // A stored [N, K] (or a K-vector as [1, K]) read as K×N.
                MatrixOp::Transpose | MatrixOp::Vector => {
                    MatRef::row_major(&bv[ob..ob + bsz], br, bc).t()
                }
            };
            sgemm(
                am,
                bm,
                &mut out[i * m * n..(i + 1) * m * n],
                false,
                ctx.threads,
            );
        }
        Ok(vec![float_tensor(
            a.dtype(),
            out_shape(batch, self.op0, self.op1, m, n),
            out,
        )?])
    }
}

/// The product's dims: the batch, then m and n unless that side is a vector.
fn out_shape(
    mut shape: Vec<usize>,
    op0: MatrixOp,
    op1: MatrixOp,
    m: usize,
    n: usize,
) -> Vec<usize> {
    if op0 != MatrixOp::Vector {
        shape.push(m);
    }
    if op1 != MatrixOp::Vector {
        shape.push(n);
    }
    shape
}

/// Outputs per task of the matrix-vector products: enough work to pay for
/// the task, few enough that every thread gets some.
const GEMV_CHUNK: usize = 64;

/// `out[j] = sum_i w[j][i] * x[i]`, `w` stored [n][k]: a dot product per
/// output, each kept in 16 independent lanes so that it vectorizes.
fn wx(w: &[f32], x: &[f32], out: &mut [f32]) {
    let k = x.len();
    out.par_chunks_mut(GEMV_CHUNK)
        .enumerate()
        .for_each(|(c, outs)| {
            crate::fast!({
                for (j, o) in outs.iter_mut().enumerate() {
                    let row = &w[(c * GEMV_CHUNK + j) * k..][..k];
                    let mut acc = [0f32; 16];
                    let (xs, xt) = x.split_at(k - k % 16);
                    let (rs, rt) = row.split_at(k - k % 16);
                    for (xc, rc) in xs.chunks_exact(16).zip(rs.chunks_exact(16)) {
                        for l in 0..16 {
                            acc[l] = xc[l].mul_add(rc[l], acc[l]);
                        }
                    }
                    let mut sum: f32 = acc.iter().sum();
                    for (a, b) in xt.iter().zip(rt) {
                        sum += a * b;
                    }
                    *o = sum;
                }
            })
        });
}

/// `out[j] = sum_i x[i] * w[i][j]`, `w` stored [k][n]: rows of `w` scaled
/// and added, over a band of columns per task.
fn xw(x: &[f32], w: &[f32], out: &mut [f32]) {
    let n = out.len();
    out.par_chunks_mut(GEMV_CHUNK)
        .enumerate()
        .for_each(|(c, outs)| {
            crate::fast!({
                let j0 = c * GEMV_CHUNK;
                outs.fill(0.0);
                for (i, &xi) in x.iter().enumerate() {
                    let row = &w[i * n + j0..][..outs.len()];
                    for (o, &wv) in outs.iter_mut().zip(row) {
                        *o = xi.mul_add(wv, *o);
                    }
                }
            })
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{LayerKind, Network};
    use crate::shape::Dim;
    use crate::DataType;
    use std::sync::Arc;

    /// A weight shared by the batch (folded into one product) and one
    /// batched with it (a product per element) both give the definition.
    #[test]
    fn batched_products_match_the_definition() {
        let val = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7 + seed) % 17) as f32 * 0.1 - 0.8)
                .collect()
        };
        let (k, n) = (5, 6);
        for (a_dims, b_dims) in [
            (vec![2, 3, 4, k], vec![1, 1, k, n]),
            (vec![1, 3, 4, k], vec![1, 1, k, n]),
            (vec![2, 3, 4, k], vec![2, 3, k, n]),
        ] {
            let mut net = Network::new("mm");
            let known = |d: &[usize]| d.iter().map(|&v| Dim::Known(v)).collect();
            let a = net.add_input("a", DataType::F32, known(&a_dims), None);
            let b = net.add_input("b", DataType::F32, known(&b_dims), None);
            let kind = LayerKind::MatrixMultiply {
                op0: MatrixOp::None,
                op1: MatrixOp::None,
            };
            let y = net.add("mm", kind, vec![a, b]).unwrap();
            net.mark_output("y", y);
            let (na, nb): (usize, usize) = (a_dims.iter().product(), b_dims.iter().product());
            let (av, bv) = (val(na, 1), val(nb, 3));
            let ta = Tensor::from_f32(&a_dims, av.clone()).unwrap();
            let tb = Tensor::from_f32(&b_dims, bv.clone()).unwrap();
            let out = crate::eval::eval_network(Arc::new(net), vec![ta, tb], Some(2)).unwrap();
            let got = out[0].as_f32().unwrap();
            let (count, m) = (a_dims[0] * a_dims[1], a_dims[2]);
            let b_batched = b_dims[0] * b_dims[1] > 1;
            for e in 0..count {
                let bo = if b_batched { e * k * n } else { 0 };
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|t| av[e * m * k + i * k + t] as f64 * bv[bo + t * n + j] as f64)
                            .sum();
                        let g = got[e * m * n + i * n + j] as f64;
                        assert!(
                            (g - want).abs() <= 1e-5,
                            "{a_dims:?} x {b_dims:?} [{e},{i},{j}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn matrix_vector_products_match_the_definition() {
        for (k, n) in [(1, 1), (15, 3), (16, 64), (37, 130), (1024, 200)] {
            let x: Vec<f32> = (0..k).map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6).collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5)
                .collect();
            // w as [n][k] for wx, and its transpose [k][n] for xw.
            let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let want: Vec<f32> = (0..n)
                .map(|j| {
                    (0..k)
                        .map(|i| w[j * k + i] as f64 * x[i] as f64)
                        .sum::<f64>() as f32
                })
                .collect();
            let mut a = vec![f32::NAN; n];
            wx(&w, &x, &mut a);
            let mut b = vec![f32::NAN; n];
            xw(&x, &wt, &mut b);
            for j in 0..n {
                let tol = 1e-5 * want[j].abs().max(1.0);
                assert!((a[j] - want[j]).abs() <= tol, "wx k={k} n={n} j={j}");
                assert!((b[j] - want[j]).abs() <= tol, "xw k={k} n={n} j={j}");
            }
        }
    }
}
