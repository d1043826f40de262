//! Scatter (ScatterElements and ScatterND): the data copied to the output
//! on the stream, then `kernels/scatter.cu` writes or combines the
//! updates. An index out of range sets the layer's error word (the run
//! fails naming the layer) instead of writing outside the output.

use super::{contiguous, dims8, strides8, Arg, Builder, Dims, Kernel, PlanCx, RunCx, MAX_RANK};
use crate::backend::cuda::device::cu;
use crate::backend::cuda::launch::{grid_for, launch, sized, typed, Func};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{Layer, ScatterMode, ScatterReduction};
use cudarc::driver::result;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ScatterParams {
    out: u64,
    idx: u64,
    upd: u64,
    err: u64,
    n: i64,
    inner: i64,
    k: i32,
    axis: i32,
    idx_i64: i32,
    reduction: i32,
    nd: i32,
    pad: i32,
    udims: Dims,
    data_dims: [i64; MAX_RANK],
    data_strides: [i64; MAX_RANK],
}
const _: () = assert!(std::mem::size_of::<ScatterParams>() == 272);

pub struct Scatter {
    f: Func,
    /// Without a reduction the kernel runs a thread per update; with one,
    /// a single thread applies them in order.
    serial: bool,
    mode: ScatterMode,
    axis: usize,
    p: ScatterParams,
}

impl Scatter {
    pub fn new(
        b: &Builder<'_>,
        l: &Layer,
        mode: ScatterMode,
        axis: usize,
        reduction: ScatterReduction,
    ) -> Result<Self> {
        let dt = b.storage(b.net.info(l.inputs[0]).dtype);
        let code = match reduction {
            ScatterReduction::None => 0,
            ScatterReduction::Add => 1,
            ScatterReduction::Mul => 2,
            ScatterReduction::Max => 3,
            ScatterReduction::Min => 4,
        };
        let f = if code == 0 {
            b.func(&sized("scatter", dt))?
        } else if dt == DataType::Bool {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: "scatter reductions of bools".into(),
            });
        } else {
            b.func(&typed("scatter_reduce", dt))?
        };
        Ok(Scatter {
            f,
            serial: code != 0,
            mode,
            axis,
            p: ScatterParams {
                reduction: code,
                nd: i32::from(mode == ScatterMode::Nd),
                axis: axis as i32,
                ..Default::default()
            },
        })
    }
}

impl Kernel for Scatter {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let (x, idx, upd) = (&ins[0], &ins[1], &ins[2]);
        self.p.idx_i64 = match idx.dtype {
            DataType::I64 => 1,
            DataType::I32 => 0,
            other => return Err(Error::Network(format!("scatter indices of {other}"))),
        };
        let d = &x.dims;
        let mut data_dims = [0i64; MAX_RANK];
        for (k, &n) in d.iter().enumerate().take(MAX_RANK) {
            data_dims[k] = n as i64;
        }
        self.p.data_dims = data_dims;
        self.p.data_strides = strides8(&contiguous(d));
        self.p.n = upd.len() as i64;
        match self.mode {
            ScatterMode::Element => {
                if self.axis >= d.len() || idx.dims != upd.dims {
                    return Err(Error::Network("scatter indices and updates differ".into()));
                }
                self.p.udims = dims8(&upd.dims)?;
            }
            ScatterMode::Nd => {
                let k = *idx.dims.last().unwrap_or(&0);
                if k == 0 || k > d.len() {
                    return Err(Error::Network(format!("index tuples of {k}")));
                }
                self.p.k = k as i32;
                self.p.inner = d[k..].iter().product::<usize>().max(1) as i64;
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        let bytes = ins[0].len() * ins[0].dtype.size();
        if bytes > 0 && outs[0].ptr != ins[0].ptr {
            // SAFETY: both buffers hold `bytes` bytes of the data's dims
            // and type, alive until the stream has run; they are distinct
            // arena slots (or the same, skipped).
            cu("copying a scatter's data", unsafe {
                result::memcpy_dtod_async(outs[0].ptr, ins[0].ptr, bytes, rc.stream)
            })?;
        }
        if self.p.n == 0 {
            return Ok(());
        }
        (self.p.out, self.p.idx, self.p.upd, self.p.err) =
            (outs[0].ptr, ins[1].ptr, ins[2].ptr, rc.err);
        let grid = if self.serial {
            1
        } else {
            grid_for(self.p.n as usize)
        };
        launch(rc.stream, self.f, grid, &self.p)
    }
}
