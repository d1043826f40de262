//! MatrixMultiply through cuBLAS: one strided-batched product where the
//! batch dims broadcast as a whole (or not at all), else one product per
//! batch element, their offsets computed when the layer is planned.

use super::{broadcast, contiguous, Arg, Kernel, PlanCx, RunCx};
use crate::backend::cuda::cublas::Operand;
use crate::error::{Error, Result};
use crate::ir::MatrixOp;

struct Planned {
    m: usize,
    n: usize,
    k: usize,
    /// (A, B, C) element offsets and strides of each call, and its batch.
    calls: Vec<([i64; 3], [i64; 2], usize)>,
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

/// (batch dims, rows, cols) of an operand as stored, before its op.
fn split(dims: &[usize], op: MatrixOp) -> Result<(&[usize], usize, usize)> {
    match op {
        MatrixOp::Vector => dims
            .split_last()
            .map(|(&k, b)| (b, 1, k))
            .ok_or_else(|| Error::Network("a vector operand of rank 0".into())),
        _ if dims.len() < 2 => Err(Error::Network("a matrix operand of rank < 2".into())),
        _ => {
            let r = dims.len();
            Ok((&dims[..r - 2], dims[r - 2], dims[r - 1]))
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

impl Kernel for MatMul {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let (ba, ar, ac) = split(&ins[0].dims, self.op0)?;
        let (bb, br, bc) = split(&ins[1].dims, self.op1)?;
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
            return Err(Error::Network(format!("inner dims differ: {k} and {k2}")));
        }
        let batch: Vec<usize> = ba
            .iter()
            .zip(bb)
            .map(|(&x, &y)| if x == 1 { y } else { x })
            .collect();
        let (asz, bsz) = ((ar * ac) as i64, (br * bc) as i64);
        let sa: Vec<i64> = broadcast(ba, &batch).iter().map(|s| s * asz).collect();
        let sb: Vec<i64> = broadcast(bb, &batch).iter().map(|s| s * bsz).collect();
        let count: usize = batch.iter().product();
        let csz = (m * n) as i64;
        let calls = match (linear(&sa, &batch, asz), linear(&sb, &batch, bsz)) {
            (Some(x), Some(y)) => vec![([0, 0, 0], [x, y], count)],
            _ => {
                let strides = contiguous(&batch);
                (0..count)
                    .map(|i| {
                        let (mut oa, mut ob) = (0i64, 0i64);
                        for (d, &st) in strides.iter().enumerate() {
                            let c = (i as i64 / st) % batch[d] as i64;
                            oa += c * sa[d];
                            ob += c * sb[d];
                        }
                        ([oa, ob, i as i64 * csz], [0, 0], 1)
                    })
                    .collect()
            }
        };
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
