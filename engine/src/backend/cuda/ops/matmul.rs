//! MatrixMultiply: one strided-batched product where the batch dims
//! broadcast as a whole (or not at all), else one product per batch
//! element, their offsets computed when the layer is planned. A single
//! product runs through cuBLASLt with its algorithm timed at build time
//! (`cublaslt.rs`), else through cuBLAS's `GemmEx`. A fused Linear
//! (`ir::fusion::bias_of`) adds its float32 bias over the product's
//! columns in cuBLASLt's epilogue when nothing else follows and cuBLASLt
//! takes a float32 bias for the product's type (float32 products; the
//! H200's offered no algorithm for float16 ones), else in one epilogue
//! kernel with the activation and any residual.

use super::elementwise::{ActCode, BiasAct};
use super::{broadcast, contiguous, Arg, Kernel, PlanCx, RunCx};
use crate::backend::cuda::cublas::Operand;
use crate::backend::cuda::cublaslt::{self, Gemm, GemmShape};
use crate::backend::cuda::device::DeviceBuf;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::matrix::{batch_folds_into_rows, matrix_dims};
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
    /// A bias over the columns (float32) and the activation after it.
    epilogue: Option<(BiasAct, DeviceBuf)>,
    plan: Option<Planned>,
    /// The single product through cuBLASLt, when it offers an algorithm.
    lt: Option<Gemm>,
    /// The step adds its third input, of the output's dims and storage
    /// (`linear_residual.rs`), in the epilogue kernel.
    pub residual: bool,
}

impl MatMul {
    pub fn new(op0: MatrixOp, op1: MatrixOp, epilogue: Option<(BiasAct, DeviceBuf)>) -> Self {
        MatMul {
            op0,
            op1,
            epilogue,
            plan: None,
            lt: None,
            residual: false,
        }
    }
}

/// The single stride over a linear batch index that `s` (per batch dim)
/// amounts to, if there is one. Only dims of more than one element count:
/// a broadcast operand's dims of 1 keep their contiguous strides.
fn linear(s: &[i64], batch: &[usize], size: i64) -> Option<i64> {
    let live: Vec<usize> = (0..s.len()).filter(|&i| batch[i] != 1).collect();
    if live.iter().all(|&i| s[i] == 0) {
        return Some(0);
    }
    let full: Vec<i64> = contiguous(batch).iter().map(|v| v * size).collect();
    live.iter().all(|&i| s[i] == full[i]).then_some(size)
}

/// (call offsets and strides) for one product.
type Call = ([i64; 3], [i64; 2], usize);

/// The cuBLAS calls for a product of operands with batch dims `ba` and
/// `bb` (equal ranks, broadcasting where one is 1), matrices of `asz` and
/// `bsz` elements, an `m` x `n` result each; and the rows each call's
/// matrices have.
fn schedule(
    ba: &[usize],
    bb: &[usize],
    (asz, bsz): (i64, i64),
    (m, n): (usize, usize),
    op0: MatrixOp,
) -> (usize, Vec<Call>) {
    let batch: Vec<usize> = ba
        .iter()
        .zip(bb)
        .map(|(&x, &y)| if x == 1 { y } else { x })
        .collect();
    let sa: Vec<i64> = broadcast(ba, &batch).iter().map(|s| s * asz).collect();
    let sb: Vec<i64> = broadcast(bb, &batch).iter().map(|s| s * bsz).collect();
    let count: usize = batch.iter().product();
    let csz = (m * n) as i64;
    // One B for every batch element: the batch is just more rows of A.
    if batch_folds_into_rows(ba, bb, op0) {
        return (m * count, vec![([0, 0, 0], [0, 0], 1)]);
    }
    match (linear(&sa, &batch, asz), linear(&sb, &batch, bsz)) {
        (Some(x), Some(y)) => (m, vec![([0, 0, 0], [x, y], count)]),
        _ => {
            let strides = contiguous(&batch);
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
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let g =
            matrix_dims(&ins[0].dims, self.op0, &ins[1].dims, self.op1).map_err(Error::Network)?;
        let ((ar, ac), (br, bc)) = (g.a, g.b);
        let (asz, bsz) = ((ar * ac) as i64, (br * bc) as i64);
        let (m, calls) = schedule(g.batch_a, g.batch_b, (asz, bsz), (g.m, g.n), self.op0);
        let (k, n) = (g.k, g.n);
        self.lt = None;
        if let ([(offsets, strides, batch)], true) = (calls.as_slice(), cublaslt::enabled()) {
            let dtype = ins[0].dtype;
            if *offsets == [0, 0, 0] && matches!(dtype, DataType::F16 | DataType::F32) {
                let shape = GemmShape {
                    dtype,
                    m,
                    n,
                    k,
                    a_transposed: self.op0 == MatrixOp::Transpose,
                    b_transposed: self.op1 == MatrixOp::Transpose,
                    strides: *strides,
                    batch: *batch,
                };
                // A bias alone rides in the product; with an activation
                // or a residual after it, all stay in our epilogue kernel.
                let bias = match &self.epilogue {
                    Some((e, b)) if e.code == ActCode::IDENTITY && !self.residual => Some(b.ptr),
                    _ => None,
                };
                let blas = pc.blas;
                let ws = blas.workspace();
                self.lt = match Gemm::plan(&blas.lt, blas.stream, &shape, bias, ws, pc.tactics)? {
                    // The bias type cuBLASLt refused: the product alone.
                    None if bias.is_some() => {
                        Gemm::plan(&blas.lt, blas.stream, &shape, None, ws, pc.tactics)?
                    }
                    g => g,
                };
            }
        }
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
        let residual = match (self.residual, ins.get(2)) {
            (false, _) => 0,
            (true, Some(r)) if r.len() == outs[0].len() && r.dtype == outs[0].dtype => r.ptr,
            (true, _) => {
                return Err(Error::Network(
                    "a matrix product's residual is not of its output's dims".into(),
                ))
            }
        };
        if let Some(g) = &self.lt {
            let ws = rc.blas.workspace();
            // SAFETY: the operands and output hold the planned dims and
            // type (the product was planned for them); the workspace is
            // the one planned with, alive with the handle.
            unsafe {
                g.run(
                    &rc.blas.lt,
                    rc.stream,
                    [ins[0].ptr, ins[1].ptr],
                    outs[0].ptr,
                    ws.0,
                )?
            };
            if let Some((e, bias)) = self.epilogue.as_ref().filter(|_| !g.bias) {
                e.enqueue(rc, &outs[0], (p.n, 1), outs[0].ptr, Some(bias), residual)?;
            }
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
        if let Some((e, bias)) = &self.epilogue {
            e.enqueue(rc, &outs[0], (p.n, 1), outs[0].ptr, Some(bias), residual)?;
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
        let (asz, bsz) = (56 * 96, 96 * 384);
        let g = (asz, bsz);
        // A Linear on [1, 56, 56, 96]: the weight [96, 384] broadcast as
        // [1, 1, 96, 384] (its dims of 1 keep nonzero strides).
        let folded = schedule(&[1, 56], &[1, 1], g, (56, 384), MatrixOp::None);
        assert_eq!(folded, (56 * 56, vec![([0, 0, 0], [0, 0], 1)]));
        let folded = schedule(&[2, 56], &[1, 1], g, (56, 384), MatrixOp::None);
        assert_eq!(folded, (2 * 56 * 56, vec![([0, 0, 0], [0, 0], 1)]));
        // A transposed: its matrices are not rows of one matrix.
        let t = schedule(&[1, 56], &[1, 1], g, (56, 384), MatrixOp::Transpose);
        assert_eq!(t, (56, vec![([0, 0, 0], [asz, 0], 56)]));
        // Both batched: one strided-batched call.
        let both = schedule(&[1, 56], &[1, 56], g, (56, 384), MatrixOp::None);
        assert_eq!(both, (56, vec![([0, 0, 0], [asz, bsz], 56)]));
        // A broadcast over B's batch: strided with A's stride 0.
        let a_shared = schedule(&[1, 1], &[1, 56], g, (56, 384), MatrixOp::None);
        assert_eq!(a_shared, (56, vec![([0, 0, 0], [0, bsz], 56)]));
        // A batch of one is left alone.
        let one = schedule(&[1, 1], &[1, 1], g, (56, 384), MatrixOp::None);
        assert_eq!(one, (56, vec![([0, 0, 0], [0, 0], 1)]));
        // Broadcast both ways ([2, 1] x [1, 3]): no single stride, one call
        // per element at its offsets.
        let cross = schedule(&[2, 1], &[1, 3], g, (56, 384), MatrixOp::None);
        let csz = 56 * 384;
        assert_eq!(cross.0, 56);
        let offsets: Vec<[i64; 3]> = cross.1.iter().map(|c| c.0).collect();
        assert_eq!(
            offsets,
            (0..6)
                .map(|i| [(i / 3) * asz, (i % 3) * bsz, i * csz])
                .collect::<Vec<_>>()
        );
    }
}
