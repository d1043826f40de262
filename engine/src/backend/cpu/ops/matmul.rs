//! MatrixMultiply: batched GEMM with broadcast over the leading dims.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::gemm::{sgemm, MatRef};
use crate::backend::cpu::util::{broadcast_dims, broadcast_strides, for_each_offset};
use crate::ir::MatrixOp;
use crate::tensor::Tensor;

pub struct MatMul {
    pub op0: MatrixOp,
    pub op1: MatrixOp,
}

/// (batch dims, rows, cols) of an operand as stored, before its op.
fn split(dims: &[usize], op: MatrixOp) -> Result<(&[usize], usize, usize), String> {
    match op {
        MatrixOp::Vector => dims
            .split_last()
            .map(|(&k, b)| (b, 1, k))
            .ok_or_else(|| "vector operand of rank 0".to_string()),
        _ if dims.len() < 2 => Err("matrix operand of rank < 2".into()),
        _ => {
            let r = dims.len();
            Ok((&dims[..r - 2], dims[r - 2], dims[r - 1]))
        }
    }
}

impl Op for MatMul {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (a, b) = (inputs[0], inputs[1]);
        let (ba, ar, ac) = split(a.shape(), self.op0)?;
        let (bb, br, bc) = split(b.shape(), self.op1)?;
        // Left operand: Vector is a 1×K row; right operand: Vector is a K×1 column.
        let (m, k) = if self.op0 == MatrixOp::Transpose {
            (ac, ar)
        } else {
            (ar, ac)
        };
        let (k2, n) = match self.op1 {
            MatrixOp::None => (br, bc),
            MatrixOp::Transpose => (bc, br),
            MatrixOp::Vector => (bc, 1),
        };
        if k != k2 {
            return Err(format!("inner dims differ: {k} and {k2}"));
        }
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
        let mut out = vec![0f32; count * m * n];
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
        let mut shape = batch;
        if self.op0 != MatrixOp::Vector {
            shape.push(m);
        }
        if self.op1 != MatrixOp::Vector {
            shape.push(n);
        }
        Ok(vec![float_tensor(a.dtype(), shape, out)?])
    }
}
