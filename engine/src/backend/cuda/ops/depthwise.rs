//! Depthwise convolutions (one filter per channel) by our own kernel
//! (`depthwise.cu`), with the bias, a fused residual and the activation in
//! the same launch: cuDNN's grouped kernels were several times slower for
//! these layers (ConvNeXt's 7x7, MobileNet's 3x3) than the arithmetic and
//! memory traffic they do. `JETRT_CUDA_DEPTHWISE=cudnn` keeps cuDNN's.
//!
//! Our kernel reads its input in either layout and writes the layout its
//! step runs in (`layout.rs`), so a float16 plan keeps MobileNet's and
//! ConvNeXt's activations channels-last through their depthwise layers
//! instead of changing layout around each one.

use super::conv::Layout;
use super::elementwise::ActCode;
use super::{Builder, RunCx};
use crate::backend::cuda::device::DeviceBuf;
use crate::backend::cuda::launch::{grid_for, launch, typed, Func};
use crate::dtype::DataType;
use crate::error::Result;
use crate::ir::ConvParams;
use crate::Tensor;

/// The kernel's DepthwiseParams (depthwise.cu).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DepthwiseParams {
    out: u64,
    x: u64,
    w: u64,
    bias: u64,
    res: u64,
    items: i64,
    xs_n: i64,
    xs_c: i64,
    xs_h: i64,
    xs_w: i64,
    c: i32,
    h: i32,
    w_in: i32,
    oh: i32,
    ow: i32,
    kh: i32,
    kw: i32,
    sh: i32,
    sw: i32,
    ph: i32,
    pw: i32,
    dh: i32,
    dw: i32,
    op: i32,
    alpha: f32,
    beta: f32,
}
const _: () = assert!(std::mem::size_of::<DepthwiseParams>() == 144);

/// Outputs a thread computes (the kernel's DW_TILE).
const TILE: usize = 4;

pub struct Depthwise {
    f: Func,
    p: DepthwiseParams,
    /// The layouts of the input and of the output (and residual).
    layout: Layout,
    /// Channels a channels-last thread takes (the kernel's V).
    vector: usize,
    /// The filters as [kh, kw, C] in float32, for the channels-last
    /// kernel (the channels-first one reads the layer's [C, kh, kw]).
    filters: Option<DeviceBuf>,
}

/// Whether our kernel runs depthwise layers (`JETRT_CUDA_DEPTHWISE=cudnn`
/// says cuDNN's instead).
pub fn enabled() -> bool {
    !std::env::var("JETRT_CUDA_DEPTHWISE").is_ok_and(|v| v == "cudnn")
}

/// Whether `p` (a forward convolution with filters of `kernel_dims`) is
/// depthwise and 1-D or 2-D: groups equal to the output channels, one
/// input channel per filter.
pub fn is_depthwise(p: &ConvParams, kernel_dims: &[usize]) -> bool {
    p.groups > 1
        && p.groups == p.out_channels
        && kernel_dims.get(1) == Some(&1)
        && (1..=2).contains(&p.kernel_size.len())
}

impl Depthwise {
    /// The kernel for a depthwise layer in `dtype` applying `code`, whose
    /// filters are `w` ([C, 1, spatial...]), for the layouts `layout`; None
    /// when cuDNN's is asked for instead.
    pub fn new(
        b: &Builder<'_>,
        dtype: DataType,
        code: ActCode,
        w: &Tensor,
        layout: Layout,
    ) -> Result<Option<Self>> {
        if !enabled() {
            return Ok(None);
        }
        let c = w.shape()[0];
        let (name, vector, filters) = if layout.y_nhwc {
            let vector = if layout.x_nhwc && c.is_multiple_of(2) {
                2
            } else {
                1
            };
            // [C, taps] to [taps, C].
            let v = w.to_f32();
            let v = v.as_f32().unwrap_or(&[]);
            let taps = v.len() / c.max(1);
            let t: Vec<f32> = (0..taps)
                .flat_map(|k| (0..c).map(move |ch| v[ch * taps + k]))
                .collect();
            let t = Tensor::from_f32(&[taps, c], t)?;
            let buf = b.upload(&t, Some(DataType::F32), "depthwise filters")?;
            (format!("depthwise_cl{vector}"), vector, Some(buf))
        } else {
            ("depthwise".to_string(), 1, None)
        };
        Ok(Some(Depthwise {
            f: b.func(&typed(&name, dtype))?,
            p: DepthwiseParams {
                op: code.op,
                alpha: code.alpha,
                beta: code.beta,
                ..Default::default()
            },
            layout,
            vector,
            filters,
        }))
    }

    /// Takes the geometry of input dims `x` and output dims `y` (N, C and
    /// one or two spatial dims); false when a size is beyond the kernel's
    /// 32-bit indices (the caller then plans cuDNN's).
    pub fn plan(&mut self, p: &ConvParams, x: &[usize], y: &[usize]) -> bool {
        // 1-D as 2-D of height 1.
        let sp = |v: &[usize], i: usize| if v.len() == 3 { [1, v[2]][i] } else { v[2 + i] };
        let two =
            |v: &[usize], fill: usize, i: usize| if v.len() == 1 { [fill, v[0]][i] } else { v[i] };
        let pads: Vec<usize> = p.pre_padding.iter().map(|&v| v.max(0) as usize).collect();
        let g = [
            x[1],
            sp(x, 0),
            sp(x, 1),
            sp(y, 0),
            sp(y, 1),
            two(&p.kernel_size, 1, 0),
            two(&p.kernel_size, 1, 1),
            two(&p.stride, 1, 0),
            two(&p.stride, 1, 1),
            two(&pads, 0, 0),
            two(&pads, 0, 1),
            two(&p.dilation, 1, 0),
            two(&p.dilation, 1, 1),
        ];
        let Ok(g) = g
            .map(i32::try_from)
            .into_iter()
            .collect::<Result<Vec<i32>, _>>()
        else {
            return false;
        };
        // The kernel's flat item index and its offsets stay in 64 bits.
        let tiles = sp(y, 1).div_ceil(TILE);
        let items = if self.layout.y_nhwc {
            [y[0], sp(y, 0), tiles, y[1] / self.vector]
        } else {
            [y[0], y[1], sp(y, 0), tiles]
        };
        let Some(items) = items.iter().try_fold(1usize, |a, &v| a.checked_mul(v)) else {
            return false;
        };
        if x.len() != y.len() || i64::try_from(items).is_err() {
            return false;
        }
        let (c, h, w) = (x[1] as i64, sp(x, 0) as i64, sp(x, 1) as i64);
        let q = &mut self.p;
        q.items = items as i64;
        [q.xs_n, q.xs_c, q.xs_h, q.xs_w] = if self.layout.x_nhwc {
            [h * w * c, 1, w * c, c]
        } else {
            [c * h * w, h * w, w, 1]
        };
        [q.c, q.h, q.w_in, q.oh, q.ow, q.kh, q.kw] = [g[0], g[1], g[2], g[3], g[4], g[5], g[6]];
        [q.sh, q.sw, q.ph, q.pw, q.dh, q.dw] = [g[7], g[8], g[9], g[10], g[11], g[12]];
        true
    }

    /// `out = act(conv(x, w) + bias + residual)`; `residual` 0 when none.
    pub fn enqueue(
        &mut self,
        rc: &RunCx<'_>,
        (x, w, out): (u64, u64, u64),
        bias: Option<&DeviceBuf>,
        residual: u64,
    ) -> Result<()> {
        let p = &mut self.p;
        (p.x, p.w, p.out, p.res) = (x, w, out, residual);
        p.bias = bias.map_or(0, |b| b.ptr);
        if let Some(f) = &self.filters {
            p.w = f.ptr;
        }
        launch(rc.stream, self.f, grid_for(p.items as usize), p)
    }
}
