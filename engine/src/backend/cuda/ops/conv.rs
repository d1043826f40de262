//! Convolution (cuDNN forward) and Deconvolution (cuDNN backward-data),
//! followed by the layer's bias and fused activation in one kernel, which
//! also adds a residual when the plan fuses `act(conv(x) + residual)`
//! (`ir::fusion`): one step then reads x and the residual and writes the
//! activation's output.
//!
//! A depthwise layer runs our kernel instead (either layout in, either
//! out), bias, residual and activation included (`depthwise.rs`).
//!
//! A 2-D float16 convolution may run channels-last (`cuda/layout.rs`):
//! its filter is uploaded OHWI and cuDNN reads and writes NHWC; an input
//! in the other layout is staged in the convolution's first (the copy
//! that also pads), so the convolution is where a tensor changes layout.
//!
//! cuDNN pads symmetrically only, so an asymmetric padding (ONNX's
//! SAME_UPPER) first copies the input into a zero-bordered scratch buffer;
//! a deconvolution is computed at its full extent and then cropped (and
//! zero-extended for an output padding) into the output. 1-D layers run
//! as 2-D ones of height 1.

use super::depthwise::{is_depthwise, Depthwise};
use super::elementwise::{act_code, ActCode, BiasAct};
use super::shuffle::{pack_tables, TableParams};
use super::{dims8, input_storage, strides8, Arg, Builder, Kernel, PlanCx, RunCx};
use crate::backend::cuda::cudnn;
use crate::backend::cuda::device::DeviceBuf;
use crate::backend::cuda::launch::{grid_for, launch, sized, Func};
use crate::backend::cuda::layout::{self, nhwc_bytes};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{ConvParams, Layer};

/// What a fused epilogue changes: the activation applied (replacing the
/// layer's own) after the residual, which is the step's input 1.
#[derive(Clone, Copy, Debug)]
pub struct Fused {
    pub act: Option<crate::ir::Activation>,
}

/// The storage of a convolution's input and of its output (which it runs
/// in, with its residual); both channels-first by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    pub x_nhwc: bool,
    pub y_nhwc: bool,
}

/// A table copy of a plan: padding or restaging before, or cropping
/// after, cuDNN.
struct Reshape {
    p: TableParams,
    offset: usize,
}

struct Planned {
    conv: cudnn::Conv,
    /// Bytes of scratch before cuDNN's workspace: the padded input or the
    /// full deconvolution output.
    staged: usize,
    pad: Option<Reshape>,
    crop: Option<Reshape>,
}

pub struct Conv {
    deconv: bool,
    params: ConvParams,
    dtype: DataType,
    kernel: DeviceBuf,
    kernel_dims: Vec<usize>,
    bias: Option<DeviceBuf>,
    epilogue: Option<BiasAct>,
    /// Input 1 is a residual added before the activation.
    residual: bool,
    layout: Layout,
    /// The bias in the data type, for cuDNN's fused bias-residual-ReLU
    /// call, which NHWC ReLU convolutions use instead of the epilogue.
    cudnn_bias: Option<DeviceBuf>,
    /// Our depthwise kernel, for a depthwise layer; planned
    /// (`dw_planned`) unless a size is beyond it, which cuDNN then runs.
    depthwise: Option<Depthwise>,
    dw_planned: bool,
    table: Func,
    plan: Option<Planned>,
}

impl Conv {
    /// `fused` overrides the layer's activation with a fused epilogue's
    /// (and says a residual is input 1).
    pub fn new(
        b: &Builder<'_>,
        l: &Layer,
        p: &ConvParams,
        deconv: bool,
        fused: Option<Fused>,
        layout: Layout,
    ) -> Result<Self> {
        let dtype = input_storage(b, l)[0];
        if !dtype.is_float() {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: format!("convolutions of {dtype}"),
            });
        }
        if !(1..=3).contains(&p.kernel_size.len()) {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: format!("{}-D convolutions", p.kernel_size.len()),
            });
        }
        let w = b.net.weights(p.kernel);
        let kernel = if layout.y_nhwc {
            let t = w.cast(dtype);
            let bytes = nhwc_bytes(t.as_bytes(), w.shape(), dtype.size());
            DeviceBuf::upload(b.gpu, &bytes, "convolution weights")?
        } else {
            b.upload(w, Some(dtype), "convolution weights")?
        };
        let bias = p
            .bias
            .map(|id| b.upload(b.net.weights(id), Some(DataType::F32), "convolution bias"))
            .transpose()?;
        let activation = match fused {
            Some(f) => f.act,
            None => p.activation,
        };
        let residual = fused.is_some();
        // The epilogue is our kernel rather than cuDNN's fused
        // bias-activation call: measured on an H200, that call was no faster
        // for ResNet-18 and slower for ResNet-50 (fp16, NCHW).
        // In NHWC fp16 it is the other way round: cuDNN's tensor-core kernels
        // add the bias, residual and ReLU in their own epilogue, one launch
        // and one pass over the output fewer (H200, b1, ours -> cuDNN's:
        // ResNet-18 0.236 -> 0.205 ms, ResNet-50 0.473 -> 0.375, DenseNet-121
        // 1.131 -> 1.031). JETRT_CUDA_CONV_EPILOGUE=own keeps ours, to compare.
        let cudnn_bias = match p.bias {
            Some(id)
                if layout.y_nhwc
                    && !deconv
                    && dtype == DataType::F16
                    && activation == Some(crate::ir::Activation::Relu)
                    && !std::env::var("JETRT_CUDA_CONV_EPILOGUE").is_ok_and(|v| v == "own") =>
            {
                Some(b.upload(b.net.weights(id), Some(dtype), "convolution bias")?)
            }
            _ => None,
        };
        let code = activation.map(act_code);
        let depthwise = if !deconv && is_depthwise(p, w.shape()) {
            Depthwise::new(b, dtype, code.unwrap_or(ActCode::IDENTITY), w, layout)?
        } else {
            None
        };
        let epilogue = if bias.is_some() || code.is_some() || residual {
            Some(BiasAct::new(b, dtype, code.unwrap_or(ActCode::IDENTITY))?)
        } else {
            None
        };
        Ok(Conv {
            deconv,
            params: p.clone(),
            dtype,
            kernel_dims: w.shape().to_vec(),
            kernel,
            bias,
            epilogue,
            residual,
            layout,
            cudnn_bias,
            depthwise,
            dw_planned: false,
            table: b.func(&sized("copy_table", dtype))?,
            plan: None,
        })
    }
}

/// Gives 1-D geometry a leading spatial dim of 1.
fn two_d(v: &[usize], spatial_from: usize, fill: usize) -> Vec<usize> {
    let mut v = v.to_vec();
    if v.len() - spatial_from == 1 {
        v.insert(spatial_from, fill);
    }
    v
}

/// A table copy from a tensor of `src` dims into one of `dst` dims where
/// spatial coordinate j reads j - shift[i] (zero outside the source);
/// `src_nhwc` and `dst_nhwc` say how each is stored (dims are N, C, ...).
fn shifted(
    pc: &mut PlanCx<'_>,
    (src, src_nhwc): (&[usize], bool),
    (dst, dst_nhwc): (&[usize], bool),
    shift: &[i64],
) -> Result<Reshape> {
    let mut maps: Vec<Vec<Option<usize>>> = Vec::with_capacity(dst.len());
    for (d, &n) in dst.iter().enumerate() {
        let s = if d >= 2 { shift[d - 2] } else { 0 };
        maps.push(
            (0..n)
                .map(|j| {
                    let i = j as i64 - s;
                    (0..src[d] as i64).contains(&i).then_some(i as usize)
                })
                .collect(),
        );
    }
    // The copy walks the destination in its storage order.
    let mut strides = layout::strides(src, src_nhwc);
    let mut dims = dst.to_vec();
    if dst_nhwc {
        dims = layout::to_nhwc(&dims);
        strides = layout::to_nhwc(&strides);
        maps = layout::to_nhwc(&maps);
    }
    let (bytes, table_offset) = pack_tables(&maps);
    Ok(Reshape {
        offset: pc.params.push(&bytes),
        p: TableParams {
            n: dst.iter().product::<usize>() as i64,
            fill: 0,
            dims: dims8(&dims)?,
            table_offset,
            src_strides: strides8(&strides),
            ..Default::default()
        },
    })
}

impl Kernel for Conv {
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let p = &self.params;
        let x = &ins[0].dims;
        let y = &outs[0].dims;
        let k = p.kernel_size.len();
        let esize = self.dtype.size();
        self.dw_planned = match &mut self.depthwise {
            Some(d) => d.plan(p, x, y),
            None => false,
        };
        if self.dw_planned {
            return Ok(());
        }
        let planned = if !self.deconv {
            let symmetric = p.pre_padding == p.post_padding;
            let lay = self.layout;
            // Staged: padded, or restaged in the layout the convolution runs in.
            let direct = symmetric && (lay.x_nhwc == lay.y_nhwc || x.len() != 4);
            let (src, pad) = if symmetric {
                (
                    x.clone(),
                    p.pre_padding
                        .iter()
                        .map(|&v| v as usize)
                        .collect::<Vec<_>>(),
                )
            } else {
                let mut padded = x.clone();
                for i in 0..k {
                    padded[2 + i] =
                        (x[2 + i] as i64 + p.pre_padding[i] + p.post_padding[i]) as usize;
                }
                (padded, vec![0; k])
            };
            let pad_copy = if direct {
                None
            } else {
                let shift = if symmetric {
                    vec![0; k]
                } else {
                    p.pre_padding.clone()
                };
                Some(shifted(pc, (x, lay.x_nhwc), (&src, lay.y_nhwc), &shift)?)
            };
            let shape = cudnn::ConvShape {
                x: two_d(&src, 2, 1),
                w: two_d(&self.kernel_dims, 2, 1),
                y: two_d(y, 2, 1),
                pad: two_d(&pad, 0, 0),
                stride: two_d(&p.stride, 0, 1),
                dilation: two_d(&p.dilation, 0, 1),
                groups: p.groups,
                nhwc: lay.y_nhwc,
            };
            let staged = if direct {
                0
            } else {
                (src.iter().product::<usize>() * esize).div_ceil(256) * 256
            };
            let fused = self.cudnn_bias.as_ref().map(|_| cudnn::FusedEpilogue {
                channels: p.out_channels,
                residual: self.residual,
            });
            let conv = cudnn::Conv::plan(
                pc.dnn,
                &shape,
                self.dtype,
                false,
                pc.workspace_limit,
                fused,
                pc.tactics,
            )?;
            Planned {
                conv,
                staged,
                pad: pad_copy,
                crop: None,
            }
        } else {
            // The full extent: what a forward convolution of it, unpadded,
            // maps onto the input exactly.
            let mut full = vec![x[0], p.out_channels];
            for i in 0..k {
                let eff = p.dilation[i] * (p.kernel_size[i] - 1) + 1;
                full.push((x[2 + i] - 1) * p.stride[i] + eff);
            }
            let cropped = p.pre_padding.iter().chain(&p.post_padding).any(|&v| v != 0);
            let shape = cudnn::ConvShape {
                x: two_d(&full, 2, 1),
                w: two_d(&self.kernel_dims, 2, 1),
                y: two_d(x, 2, 1),
                pad: vec![0; k.max(2)],
                stride: two_d(&p.stride, 0, 1),
                dilation: two_d(&p.dilation, 0, 1),
                groups: p.groups,
                nhwc: false,
            };
            let conv = cudnn::Conv::plan(
                pc.dnn,
                &shape,
                self.dtype,
                true,
                pc.workspace_limit,
                None,
                pc.tactics,
            )?;
            let crop = if cropped {
                let shift: Vec<i64> = p.pre_padding.iter().map(|&v| -v).collect();
                Some(shifted(pc, (&full, false), (y, false), &shift)?)
            } else {
                None
            };
            let staged = if cropped {
                (full.iter().product::<usize>() * esize).div_ceil(256) * 256
            } else {
                0
            };
            Planned {
                conv,
                staged,
                pad: None,
                crop,
            }
        };
        pc.need_workspace(planned.staged + planned.conv.workspace);
        self.plan = Some(planned);
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if outs[0].len() == 0 || ins[0].len() == 0 {
            return Ok(());
        }
        if let (true, Some(d)) = (self.dw_planned, &mut self.depthwise) {
            let res = if self.residual { ins[1].ptr } else { 0 };
            let io = (ins[0].ptr, self.kernel.ptr, outs[0].ptr);
            return d.enqueue(rc, io, self.bias.as_ref(), res);
        }
        let Some(pl) = &mut self.plan else {
            return Err(Error::Network(
                "a convolution ran before it was planned".into(),
            ));
        };
        let staged = rc.workspace;
        let ws = rc.workspace + pl.staged as u64;
        let mut x = ins[0].ptr;
        if let Some(r) = &mut pl.pad {
            r.p.src = ins[0].ptr;
            r.p.dst = staged;
            r.p.tables = rc.params + r.offset as u64;
            launch(rc.stream, self.table, grid_for(r.p.n as usize), &r.p)?;
            x = staged;
        }
        // SAFETY: x, the kernel and the output (or the staged full extent)
        // hold the planned dims; the workspace was sized by this plan.
        if self.deconv {
            let full = if pl.crop.is_some() {
                staged
            } else {
                outs[0].ptr
            };
            unsafe { pl.conv.run(rc.dnn, full, self.kernel.ptr, x, ws)? };
            if let Some(r) = &mut pl.crop {
                r.p.src = staged;
                r.p.dst = outs[0].ptr;
                r.p.tables = rc.params + r.offset as u64;
                launch(rc.stream, self.table, grid_for(r.p.n as usize), &r.p)?;
            }
        } else if let Some(bias) = &self.cudnn_bias {
            let z = if self.residual { ins[1].ptr } else { 0 };
            // SAFETY: as above; the bias holds out_channels values and the
            // residual y's dims.
            let fused = unsafe {
                pl.conv
                    .run_fused(rc.dnn, (x, self.kernel.ptr, outs[0].ptr), z, bias.ptr, ws)
            };
            match fused {
                Ok(()) => return Ok(()),
                // cuDNN refuses before it enqueues anything: the epilogue
                // kernel does the rest from now on.
                Err(e) => {
                    log::warn!(
                        "cuDNN's fused convolution did not run ({e}); using the separate epilogue"
                    );
                    self.cudnn_bias = None;
                    // SAFETY: as above.
                    unsafe { pl.conv.run(rc.dnn, x, self.kernel.ptr, outs[0].ptr, ws)? };
                }
            }
        } else {
            unsafe { pl.conv.run(rc.dnn, x, self.kernel.ptr, outs[0].ptr, ws)? };
        }
        if let Some(e) = &self.epilogue {
            let res = if self.residual { ins[1].ptr } else { 0 };
            let d = &outs[0].dims;
            let c = d.get(1).copied().unwrap_or(1);
            let split = if self.layout.y_nhwc {
                (c, 1)
            } else {
                (c, d.get(2..).map_or(1, |r| r.iter().product()))
            };
            e.enqueue(rc, &outs[0], split, outs[0].ptr, self.bias.as_ref(), res)?;
        }
        Ok(())
    }
}
