//! MatrixMultiply through cuBLAS: one strided-batched product where the
//! batch dims broadcast as a whole (or not at all), else one product per
//! batch element, their offsets computed when the layer is planned.

use super::{broadcast, contiguous, Arg, Kernel, PlanCx, RunCx};
use crate::backend::cuda::cublas::Operand;
use crate::error::{Error, Result};
use crate::ir::matrix::matrix_dims;
use crate::ir::MatrixOp;

struct Planned {
    m: usize,
    n: usize,
    k: usize,
    /// (A, B, C) element offsets and strides of each call, and its batch.
    calls: Vec<Call>,
}

pub struct MatMul {
    op0: MatrixOp,
    op1: MatrixOp,
    plan: Option<Planned>,
}

impl MatMul {
    pub fn new(op0: MatrixOp, op1: MatrixOp) -> Self {
        MatMul {
            op0,
            op1,
            plan: None,
        }
    }
}

/// The single stride over a linear batch index that `s` (per batch dim)
/// amounts to, if there is one.
fn linear(s: &[i64], batch: &[usize], size: i64) -> Option<i64> {
    if s.iter().all(|&v| v == 0) {
        return Some(0);
    }
    let full: Vec<i64> = contiguous(batch).iter().map(|v| v * size).collect();
    let live = |i: usize| batch[i] != 1;
    (0..s.len())
        .filter(|&i| live(i))
        .all(|i| s[i] == full[i])
        .then_some(size)
}

/// (call offsets and strides) for one product.
type Call = ([i64; 3], [i64; 2], usize);

/// The cuBLAS calls for a product over `batch` (operand batch strides
/// `sa` and `sb`, in elements, matrices of `asz` and `bsz` elements, an
/// `m` x `n` result each), and the rows each call's matrices have.
fn schedule(
    batch: &[usize],
    sa: &[i64],
    sb: &[i64],
    (asz, bsz): (i64, i64),
    (m, n): (usize, usize),
    op0: MatrixOp,
) -> (usize, Vec<Call>) {
    let count: usize = batch.iter().product();
    let csz = (m * n) as i64;
    match (linear(sa, batch, asz), linear(sb, batch, bsz)) {
        // One B for every batch element, and A's matrices back to back
        // untransposed: the batch is just more rows of A, so one large
        // product replaces `count` small ones (a Linear layer on a 4-D
        // activation, as in ConvNeXt and transformers).
        (Some(x), Some(0)) if count > 1 && x == asz && op0 != MatrixOp::Transpose => {
            (m * count, vec![([0, 0, 0], [0, 0], 1)])
        }
        (Some(x), Some(y)) => (m, vec![([0, 0, 0], [x, y], count)]),
        _ => {
            let strides = contiguous(batch);
            let calls = (0..count)
                .map(|i| {
                    let (mut oa, mut ob) = (0i64, 0i64);
                    for (d, &st) in strides.iter().enumerate() {
                        let c = (i as i64 / st) % batch[d] as i64;
                        oa += c * sa[d];
                        ob += c * sb[d];
                    }
                    ([oa, ob, i as i64 * csz], [0, 0], 1)
                })
                .collect();
            (m, calls)
        }
    }
}

impl Kernel for MatMul {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let g =
            matrix_dims(&ins[0].dims, self.op0, &ins[1].dims, self.op1).map_err(Error::Network)?;
        let (ba, bb, (ar, ac), (br, bc)) = (g.batch_a, g.batch_b, g.a, g.b);
        let (m, k, n) = (g.m, g.k, g.n);
        let batch: Vec<usize> = ba
            .iter()
            .zip(bb)
            .map(|(&x, &y)| if x == 1 { y } else { x })
            .collect();
        let (asz, bsz) = ((ar * ac) as i64, (br * bc) as i64);
        let sa: Vec<i64> = broadcast(ba, &batch).iter().map(|s| s * asz).collect();
        let sb: Vec<i64> = broadcast(bb, &batch).iter().map(|s| s * bsz).collect();
        let (m, calls) = schedule(&batch, &sa, &sb, (asz, bsz), (m, n), self.op0);
        self.plan = Some(Planned { m, n, k, calls });
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        let Some(p) = &self.plan else {
            return Err(Error::Network(
                "a matrix product ran before it was planned".into(),
            ));
        };
        if outs[0].len() == 0 {
            return Ok(());
        }
        let es = ins[0].dtype.size() as u64;
        for &([oa, ob, oc], [sa, sb], batch) in &p.calls {
            if batch == 0 {
                continue;
            }
            let a = Operand {
                ptr: ins[0].ptr + oa as u64 * es,
                transposed: self.op0 == MatrixOp::Transpose,
                stride: sa,
            };
            let b = Operand {
                ptr: ins[1].ptr + ob as u64 * es,
                transposed: self.op1 == MatrixOp::Transpose,
                stride: sb,
            };
            // SAFETY: the operands and output hold the planned dims and
            // type; the offsets stay inside them (computed from those dims).
            unsafe {
                rc.blas.gemm(
                    ins[0].dtype,
                    p.m,
                    p.n,
                    p.k,
                    a,
                    b,
                    outs[0].ptr + oc as u64 * es,
                    batch,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weight shared by every batch element folds into one product with
    /// the batch as rows; anything else keeps its batch.
    #[test]
    fn a_shared_weight_folds_the_batch_into_rows() {
        let (batch, asz, bsz) = (vec![1, 56], 56 * 96, 96 * 384);
        let sa = [0, asz];
        let folded = schedule(&batch, &sa, &[0, 0], (asz, bsz), (56, 384), MatrixOp::None);
        assert_eq!(folded, (56 * 56, vec![([0, 0, 0], [0, 0], 1)]));
        // A transposed: its matrices are not rows of one matrix.
        let t = schedule(
            &batch,
            &sa,
            &[0, 0],
            (asz, bsz),
            (56, 384),
            MatrixOp::Transpose,
        );
        assert_eq!(t, (56, vec![([0, 0, 0], [asz, 0], 56)]));
        // Both batched: one strided-batched call.
        let both = schedule(
            &batch,
            &sa,
            &[0, bsz],
            (asz, bsz),
            (56, 384),
            MatrixOp::None,
        );
        assert_eq!(both, (56, vec![([0, 0, 0], [asz, bsz], 56)]));
        // A broadcast over B's batch: strided with A's stride 0.
        let a_shared = schedule(
            &batch,
            &[0, 0],
            &[0, bsz],
            (asz, bsz),
            (56, 384),
            MatrixOp::None,
        );
        assert_eq!(a_shared, (56, vec![([0, 0, 0], [0, bsz], 56)]));
        // A batch of one is left alone.
        let one = schedule(
            &[1, 1],
            &[0, 0],
            &[0, 0],
            (asz, bsz),
            (56, 384),
            MatrixOp::None,
        );
        assert_eq!(one, (56, vec![([0, 0, 0], [0, 0], 1)]));
    }
}
