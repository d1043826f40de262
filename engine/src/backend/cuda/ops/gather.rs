//! Gather in its default (ONNX Gather) and element (GatherElements)
//! modes. Indices may be negative; one out of range sets the layer's error
//! word (the run then fails naming the layer) instead of reading outside
//! the data.

use super::{contiguous, dims8, strides8, Arg, Builder, Dims, Kernel, PlanCx, RunCx, MAX_RANK};
use crate::backend::cuda::launch::{grid_for, launch, sized, Func};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{GatherMode, Layer};

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct GatherParams {
    out: u64,
    data: u64,
    idx: u64,
    err: u64,
    n: i64,
    outer: i64,
    axis_len: i64,
    inner: i64,
    n_idx: i64,
    idx_i64: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<GatherParams>() == 80);

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ElementsParams {
    out: u64,
    data: u64,
    idx: u64,
    err: u64,
    n: i64,
    dims: Dims,
    data_dims: [i64; MAX_RANK],
    data_strides: [i64; MAX_RANK],
    axis: i32,
    idx_i64: i32,
}
const _: () = assert!(std::mem::size_of::<ElementsParams>() == 248);

enum Plan {
    Default(GatherParams),
    Elements(ElementsParams),
}

pub struct Gather {
    f: Func,
    axis: usize,
    mode: GatherMode,
    plan: Option<Plan>,
}

impl Gather {
    pub fn new(b: &Builder<'_>, l: &Layer, axis: usize, mode: GatherMode) -> Result<Self> {
        let dt = b.storage(b.net.info(l.inputs[0]).dtype);
        let name = match mode {
            GatherMode::Default => sized("gather", dt),
            GatherMode::Element => sized("gather_elements", dt),
        };
        Ok(Gather {
            f: b.func(&name)?,
            axis,
            mode,
            plan: None,
        })
    }
}

impl Kernel for Gather {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let (x, idx) = (&ins[0], &ins[1]);
        let idx_i64 = match idx.dtype {
            DataType::I64 => 1,
            DataType::I32 => 0,
            other => return Err(Error::Network(format!("gather indices of {other}"))),
        };
        let d = &x.dims;
        let a = self.axis;
        self.plan = Some(match self.mode {
            GatherMode::Default => Plan::Default(GatherParams {
                n: outs[0].len() as i64,
                outer: d[..a].iter().product::<usize>() as i64,
                axis_len: d[a] as i64,
                inner: d[a + 1..].iter().product::<usize>().max(1) as i64,
                n_idx: idx.len().max(1) as i64,
                idx_i64,
                ..Default::default()
            }),
            GatherMode::Element => {
                let mut data_dims = [0i64; MAX_RANK];
                for (k, &n) in d.iter().enumerate().take(MAX_RANK) {
                    data_dims[k] = n as i64;
                }
                Plan::Elements(ElementsParams {
                    n: outs[0].len() as i64,
                    dims: dims8(&idx.dims)?,
                    data_dims,
                    data_strides: strides8(&contiguous(d)),
                    axis: a as i32,
                    idx_i64,
                    ..Default::default()
                })
            }
        });
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        match &mut self.plan {
            None => Err(Error::Network("a Gather ran before it was planned".into())),
            Some(Plan::Default(p)) => {
                if p.n == 0 {
                    return Ok(());
                }
                (p.out, p.data, p.idx, p.err) = (outs[0].ptr, ins[0].ptr, ins[1].ptr, rc.err);
                launch(rc.stream, self.f, grid_for(p.n as usize), p)
            }
            Some(Plan::Elements(p)) => {
                if p.n == 0 {
                    return Ok(());
                }
                (p.out, p.data, p.idx, p.err) = (outs[0].ptr, ins[0].ptr, ins[1].ptr, rc.err);
                launch(rc.stream, self.f, grid_for(p.n as usize), p)
            }
        }
    }
}
