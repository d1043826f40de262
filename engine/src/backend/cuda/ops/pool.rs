//! Pooling over 1 to 3 spatial dims (pool.cu), with the IR's ceil mode,
//! padding and average divisor rules, on channels-first tensors or, for a
//! plan's channels-last ones, on [N, spatial..., C] storage.

use super::{input_storage, Arg, Builder, Kernel, PlanCx, RunCx};
use crate::backend::cuda::launch::{grid_for, launch, typed, Func};
use crate::error::{Error, Result};
use crate::ir::{Layer, PoolKind, PoolParams};

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct KParams {
    out: u64,
    x: u64,
    n: i64,
    is_max: i32,
    exclude: i32,
    input: [i64; 3],
    out_d: [i64; 3],
    k: [i64; 3],
    s: [i64; 3],
    pre: [i64; 3],
    post: [i64; 3],
    /// The channel count when stored channels-last, else 0.
    channels: i64,
}
const _: () = assert!(std::mem::size_of::<KParams>() == 184);

pub struct Pool {
    f: Func,
    params: PoolParams,
    /// Dims arrive in storage order [N, spatial..., C].
    nhwc: bool,
    p: KParams,
}

impl Pool {
    pub fn new(b: &Builder<'_>, l: &Layer, p: &PoolParams, nhwc: bool) -> Result<Self> {
        let sr = p.window.len();
        if !(1..=3).contains(&sr) {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: format!("{sr}-D pooling (1-D to 3-D)"),
            });
        }
        Ok(Pool {
            f: b.func(&typed("pool", input_storage(b, l)[0]))?,
            params: p.clone(),
            nhwc,
            p: KParams::default(),
        })
    }
}

/// The last three entries of `v`, padded at the front with `fill`.
fn three(v: &[usize], fill: usize) -> [i64; 3] {
    let mut a = [fill as i64; 3];
    let off = 3 - v.len();
    for (i, &x) in v.iter().enumerate() {
        a[off + i] = x as i64;
    }
    a
}

impl Kernel for Pool {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let q = &self.params;
        let d = &ins[0].dims;
        let (spatial, out_spatial, channels) = if self.nhwc {
            let r = d.len();
            (&d[1..r - 1], &outs[0].dims[1..r - 1], d[r - 1] as i64)
        } else {
            (&d[2..], &outs[0].dims[2..], 0)
        };
        self.p = KParams {
            n: outs[0].len() as i64,
            is_max: (q.pool_type == PoolKind::Max) as i32,
            exclude: q.exclude_padding as i32,
            input: three(spatial, 1),
            out_d: three(out_spatial, 1),
            k: three(&q.window, 1),
            s: three(&q.stride, 1),
            pre: three(&q.pre_padding, 0),
            post: three(&q.post_padding, 0),
            channels,
            ..Default::default()
        };
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.n == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.x = ins[0].ptr;
        launch(rc.stream, self.f, grid_for(self.p.n as usize), &self.p)
    }
}
