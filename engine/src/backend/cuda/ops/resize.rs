//! Resize (resize.cu): the host computes each axis's taps with the IR's
//! coordinate rules (`ir::axis_map`, the cpu backend's own), uploads them
//! as a table when the layer is planned, and the kernel mixes them.

use super::{
    contiguous, dims8, input_storage, strides8, Arg, Builder, Dims, Kernel, PlanCx, RunCx, MAX_RANK,
};
use crate::backend::cuda::launch::{self, grid_for, launch, sized, typed, Func};
use crate::error::{Error, Result};
use crate::ir::axis_map::{resize_axis_map, resize_plan};
use crate::ir::{CoordinateTransform, Layer, ResizeMode, ResizeParams};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Tap {
    idx: [i64; 4],
    w: [f32; 4],
    n: i32,
    outside: i32,
}
const _: () = assert!(std::mem::size_of::<Tap>() == 56);

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct KParams {
    out: u64,
    x: u64,
    taps: u64,
    n: i64,
    dims: Dims,
    x_strides: [i64; MAX_RANK],
    tap_offset: [i64; MAX_RANK],
    extrapolation: f32,
    use_extrapolation: i32,
}
const _: () = assert!(std::mem::size_of::<KParams>() == 240);

pub struct Resize {
    params: ResizeParams,
    mix: Option<Func>,
    nearest: Func,
    use_nearest: bool,
    offset: usize,
    p: KParams,
}

impl Resize {
    pub fn new(b: &Builder<'_>, l: &Layer, p: &ResizeParams) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        let mix = if dt.is_float() {
            Some(launch::function(b.gpu, &typed("resize", dt))?)
        } else {
            None
        };
        Ok(Resize {
            params: p.clone(),
            mix,
            nearest: b.func(&sized("resize_nearest", dt))?,
            use_nearest: true,
            offset: 0,
            p: KParams::default(),
        })
    }
}

impl Kernel for Resize {
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let p = &self.params;
        let in_dims = &ins[0].dims;
        let sizes = pc
            .host_inputs
            .get(1)
            .and_then(|v| v.as_ref())
            .map(|t| t.to_i64_vec());
        let (out_dims, scales) =
            resize_plan(p, in_dims, sizes.as_deref()).map_err(Error::Network)?;
        if out_dims != outs[0].dims {
            return Err(Error::Network(format!(
                "resize planned to {out_dims:?}, the output is {:?}",
                outs[0].dims
            )));
        }
        let r = in_dims.len();
        let mut taps: Vec<Tap> = Vec::new();
        let mut offsets = [0i64; MAX_RANK];
        let mut outside_any = false;
        for a in 0..r {
            offsets[a.min(MAX_RANK - 1)] = taps.len() as i64;
            let identity = in_dims[a] == out_dims[a]
                && scales[a] == 1.0
                && p.coordinate_transform != CoordinateTransform::TfCropAndResize;
            if identity {
                taps.extend((0..out_dims[a]).map(|j| Tap {
                    idx: [j as i64, 0, 0, 0],
                    w: [1.0, 0.0, 0.0, 0.0],
                    n: 1,
                    outside: 0,
                }));
                continue;
            }
            if in_dims[a] == 0 && out_dims[a] > 0 {
                return Err(Error::Network(format!(
                    "cannot resize an empty dim {a} to {}",
                    out_dims[a]
                )));
            }
            let m = resize_axis_map(p, a, r, in_dims[a], out_dims[a], scales[a]);
            for (t, &out) in m.taps.iter().zip(&m.outside) {
                let mut tap = Tap {
                    n: t.len() as i32,
                    outside: out as i32,
                    ..Default::default()
                };
                for (j, &(i, w)) in t.iter().take(4).enumerate() {
                    tap.idx[j] = i as i64;
                    tap.w[j] = w;
                }
                outside_any |= out;
                taps.push(tap);
            }
        }
        self.use_nearest = p.mode == ResizeMode::Nearest && (self.mix.is_none() || !outside_any);
        self.offset = pc.params.push(bytemuck::cast_slice(&taps));
        self.p = KParams {
            n: outs[0].len() as i64,
            dims: dims8(&out_dims)?,
            x_strides: strides8(&contiguous(in_dims)),
            tap_offset: offsets,
            extrapolation: p.extrapolation_value,
            use_extrapolation: outside_any as i32,
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
        self.p.taps = rc.params + self.offset as u64;
        let f = match (self.use_nearest, self.mix) {
            (true, _) | (false, None) => self.nearest,
            (false, Some(f)) => f,
        };
        launch(rc.stream, f, grid_for(self.p.n as usize), &self.p)
    }
}
