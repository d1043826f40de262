//! Convolutions through cuDNN's convolution API: forward for Convolution
//! layers, backward-data for Deconvolution layers; one handle per execution
//! context on its stream. float32 convolutions use FMA math only (no TF32),
//! so they agree with the cpu backend to float32 rounding.

use super::device::{cu, DeviceBuf, Gpu};
use super::gate::Timer;
use super::probe;
use super::tactics::Tactics;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use cudarc::cudnn::sys;
use cudarc::driver::sys::CUstream;
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// cuDNN entry points the backend calls.
pub const SYMBOLS: &[&str] = &[
    "cudnnGetVersion",
    "cudnnGetErrorString",
    "cudnnCreate",
    "cudnnDestroy",
    "cudnnSetStream",
    "cudnnCreateTensorDescriptor",
    "cudnnSetTensorNdDescriptor",
    "cudnnDestroyTensorDescriptor",
    "cudnnCreateFilterDescriptor",
    "cudnnSetFilterNdDescriptor",
    "cudnnDestroyFilterDescriptor",
    "cudnnCreateConvolutionDescriptor",
    "cudnnSetConvolutionNdDescriptor",
    "cudnnSetConvolutionGroupCount",
    "cudnnSetConvolutionMathType",
    "cudnnDestroyConvolutionDescriptor",
    "cudnnGetConvolutionForwardAlgorithm_v7",
    "cudnnGetConvolutionForwardWorkspaceSize",
    "cudnnConvolutionForward",
    "cudnnGetConvolutionBackwardDataAlgorithm_v7",
    "cudnnGetConvolutionBackwardDataWorkspaceSize",
    "cudnnConvolutionBackwardData",
];

fn check(what: &str, s: sys::cudnnStatus_t) -> Result<()> {
    if s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        return Ok(());
    }
    // SAFETY: cudnnGetErrorString returns a static string for any status.
    let text = probe::c_text(unsafe { sys::cudnnGetErrorString(s) });
    Err(Error::Device(format!("cuDNN: {what}: {text} ({s:?})")))
}

pub struct Dnn {
    gpu: Arc<Gpu>,
    handle: sys::cudnnHandle_t,
    /// The stream the handle works on.
    stream: CUstream,
}

// SAFETY: a cuDNN handle may be used from any thread, one call at a time;
// its owner (one executor) is not shared.
unsafe impl Send for Dnn {}

impl Dnn {
    pub fn new(gpu: &Arc<Gpu>, stream: CUstream) -> Result<Self> {
        gpu.bind()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` is valid for writes; the context is bound.
        check("creating a handle", unsafe {
            sys::cudnnCreate(&mut handle)
        })?;
        let d = Dnn {
            gpu: gpu.clone(),
            handle,
            stream,
        };
        // SAFETY: a live handle and a stream of the same context.
        check("setting the stream", unsafe {
            sys::cudnnSetStream(d.handle, stream as sys::cudaStream_t)
        })?;
        Ok(d)
    }
}

impl Drop for Dnn {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: created in `new` and destroyed once.
            let _ = unsafe { sys::cudnnDestroy(self.handle) };
        }
    }
}

/// A convolution's geometry, spatial dims already at least 2 (the caller
/// gives 1-D convolutions a height of 1).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvShape {
    /// The forward convolution's input (N, C, spatial...).
    pub x: Vec<usize>,
    /// Filter dims as stored: [K, C/groups, k...] (for a deconvolution,
    /// the kernel as stored, [in, out/groups, k...]).
    pub w: Vec<usize>,
    /// The forward convolution's output.
    pub y: Vec<usize>,
    pub pad: Vec<usize>,
    pub stride: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
    /// x, y and the filter are stored channels-last (NHWC, filter KRSC)
    /// rather than channels-first; dims above stay in NCHW order.
    pub nhwc: bool,
}

struct TensorDesc(sys::cudnnTensorDescriptor_t);
struct FilterDesc(sys::cudnnFilterDescriptor_t);
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);
struct ActDesc(sys::cudnnActivationDescriptor_t);

impl Drop for ActDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateActivationDescriptor, destroyed once.
        let _ = unsafe { sys::cudnnDestroyActivationDescriptor(self.0) };
    }
}

/// What cuDNN's fused call adds after the convolution: a bias per output
/// channel (in the data type), an optional residual, then ReLU.
struct Epilogue {
    bias: TensorDesc,
    relu: ActDesc,
}

impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateTensorDescriptor, destroyed once.
        let _ = unsafe { sys::cudnnDestroyTensorDescriptor(self.0) };
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateFilterDescriptor, destroyed once.
        let _ = unsafe { sys::cudnnDestroyFilterDescriptor(self.0) };
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateConvolutionDescriptor, destroyed once.
        let _ = unsafe { sys::cudnnDestroyConvolutionDescriptor(self.0) };
    }
}

fn ints(v: &[usize]) -> Result<Vec<c_int>> {
    v.iter()
        .map(|&d| {
            c_int::try_from(d)
                .map_err(|_| Error::Device(format!("cuDNN: dim {d} exceeds its 32-bit range")))
        })
        .collect()
}

fn data_type(dt: DataType) -> Result<sys::cudnnDataType_t> {
    match dt {
        DataType::F32 => Ok(sys::cudnnDataType_t::CUDNN_DATA_FLOAT),
        DataType::F16 => Ok(sys::cudnnDataType_t::CUDNN_DATA_HALF),
        other => Err(Error::Unsupported {
            backend: "cuda",
            what: format!("convolutions of {other}"),
        }),
    }
}

/// A descriptor of `dims` (N, C, spatial...) stored channels-first, or
/// channels-last when `nhwc` (the strides say which; the dims keep their
/// order).
fn tensor(dims: &[usize], dt: DataType, nhwc: bool) -> Result<TensorDesc> {
    let d = ints(dims)?;
    let too_big = || Error::Device("cuDNN: a tensor exceeds its 32-bit strides".into());
    // The element count bounds every stride (unless a dim is 0), so it
    // must fit as well.
    dims.iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .and_then(|n| c_int::try_from(n).ok())
        .ok_or_else(too_big)?;
    let s = super::layout::strides(dims, nhwc)
        .into_iter()
        .map(|v| c_int::try_from(v).map_err(|_| too_big()))
        .collect::<Result<Vec<c_int>>>()?;
    let mut t = std::ptr::null_mut();
    // SAFETY: `t` is valid for writes.
    check("creating a tensor descriptor", unsafe {
        sys::cudnnCreateTensorDescriptor(&mut t)
    })?;
    let t = TensorDesc(t);
    // SAFETY: a live descriptor; `d` and `s` hold nbDims values each.
    check("describing a tensor", unsafe {
        sys::cudnnSetTensorNdDescriptor(
            t.0,
            data_type(dt)?,
            d.len() as c_int,
            d.as_ptr(),
            s.as_ptr(),
        )
    })?;
    Ok(t)
}

/// A cuDNN algorithm of either pass.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Algo {
    Fwd(sys::cudnnConvolutionFwdAlgo_t),
    Bwd(sys::cudnnConvolutionBwdDataAlgo_t),
}

impl Algo {
    /// cuDNN's number for it (what plans and timing caches record).
    fn id(self) -> i32 {
        match self {
            Algo::Fwd(a) => a as i32,
            Algo::Bwd(a) => a as i32,
        }
    }
}

/// A convolution planned for one geometry: descriptors, the algorithm
/// chosen (`tactics.rs`) and its scratch size.
pub struct Conv {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    conv: ConvDesc,
    algo: Algo,
    pub workspace: usize,
    epilogue: Option<Epilogue>,
}

// SAFETY: descriptors are plain host objects used by one executor at a time.
unsafe impl Send for Conv {}

/// How many ranked algorithms to ask the heuristics for (more than either
/// pass has).
const ASK: usize = 10;

/// The epilogue a forward convolution runs in cuDNN's own call
/// (`cudnnConvolutionBiasActivationForward`): its bias and ReLU, and
/// whether a residual is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedEpilogue {
    pub channels: usize,
    pub residual: bool,
}

/// The identity of a geometry in plans and timing caches. A fused
/// epilogue is part of it: cuDNN runs only some algorithms fused, others
/// as a convolution and separate bias and activation kernels, so the
/// fastest algorithm of the plain call need not be the fused call's.
fn key(
    shape: &ConvShape,
    dt: DataType,
    backward: bool,
    limit: usize,
    fused: Option<FusedEpilogue>,
) -> String {
    format!(
        "{} {dt}{}{} x{:?} w{:?} y{:?} pad{:?} stride{:?} dil{:?} g{} ws{limit}",
        if backward { "bwd" } else { "fwd" },
        if shape.nhwc { " nhwc" } else { "" },
        match fused {
            None => "",
            Some(FusedEpilogue {
                residual: false, ..
            }) => " bias+relu",
            Some(FusedEpilogue { residual: true, .. }) => " bias+residual+relu",
        },
        shape.x,
        shape.w,
        shape.y,
        shape.pad,
        shape.stride,
        shape.dilation,
        shape.groups
    )
}

impl Conv {
    /// Plans `shape` in `dt` storage; `backward` plans the backward-data
    /// pass (a deconvolution: reads `y`, writes `x`); `fused` prepares a
    /// forward pass to run with its epilogue (see [`Conv::run_fused`]). The
    /// algorithm is the one `tactics` records for the geometry, else the
    /// fastest candidate when `tactics` times (timed as it will run, fused
    /// or not), else the heuristics' first.
    pub fn plan(
        dnn: &Dnn,
        shape: &ConvShape,
        dt: DataType,
        backward: bool,
        workspace_limit: usize,
        fused: Option<FusedEpilogue>,
        tactics: &mut Tactics,
    ) -> Result<Conv> {
        if backward && fused.is_some() {
            return Err(Error::Device(
                "cuDNN: a fused epilogue on a transposed convolution".into(),
            ));
        }
        dnn.gpu.bind()?;
        let x = tensor(&shape.x, dt, shape.nhwc)?;
        let y = tensor(&shape.y, dt, shape.nhwc)?;
        let wd = ints(&shape.w)?;
        let mut w = std::ptr::null_mut();
        // SAFETY: `w` is valid for writes.
        check("creating a filter descriptor", unsafe {
            sys::cudnnCreateFilterDescriptor(&mut w)
        })?;
        let w = FilterDesc(w);
        // SAFETY: a live descriptor and `wd.len()` dims.
        check("describing the filter", unsafe {
            sys::cudnnSetFilterNdDescriptor(
                w.0,
                data_type(dt)?,
                if shape.nhwc {
                    sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC
                } else {
                    sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW
                },
                wd.len() as c_int,
                wd.as_ptr(),
            )
        })?;
        let (pad, stride, dil) = (
            ints(&shape.pad)?,
            ints(&shape.stride)?,
            ints(&shape.dilation)?,
        );
        let mut c = std::ptr::null_mut();
        // SAFETY: `c` is valid for writes.
        check("creating a convolution descriptor", unsafe {
            sys::cudnnCreateConvolutionDescriptor(&mut c)
        })?;
        let conv = ConvDesc(c);
        // SAFETY: a live descriptor; the three arrays hold arrayLength values.
        // Accumulation is float32 for both storage types.
        check("describing the convolution", unsafe {
            sys::cudnnSetConvolutionNdDescriptor(
                conv.0,
                pad.len() as c_int,
                pad.as_ptr(),
                stride.as_ptr(),
                dil.as_ptr(),
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
        })?;
        let groups = c_int::try_from(shape.groups)
            .map_err(|_| Error::Device("cuDNN: too many groups".into()))?;
        // SAFETY: a live descriptor.
        check("setting the group count", unsafe {
            sys::cudnnSetConvolutionGroupCount(conv.0, groups)
        })?;
        let math = if dt == DataType::F16 {
            sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        };
        // SAFETY: a live descriptor.
        check("setting the math type", unsafe {
            sys::cudnnSetConvolutionMathType(conv.0, math)
        })?;
        let mut plan = Conv {
            x,
            w,
            y,
            conv,
            algo: Algo::Fwd(
                sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            ),
            workspace: 0,
            epilogue: None,
        };
        if let Some(f) = fused {
            plan.fuse_bias_relu(f.channels, dt, shape.nhwc)?;
        }
        // The candidates within the limit, best ranked first, with the
        // scratch each needs.
        let candidates: Vec<(Algo, usize)> = plan
            .ranked(dnn, backward)?
            .into_iter()
            .filter_map(|a| {
                plan.workspace_of(dnn, a)
                    .ok()
                    .filter(|&ws| ws <= workspace_limit)
                    .map(|ws| (a, ws))
            })
            .collect();
        let first = *candidates
            .first()
            .ok_or_else(|| no_algorithm(shape, workspace_limit))?;
        // JETRT_CUDA_CONV_TIMING=plain times a fused convolution through the
        // plain call, as before the fused call was timed (to compare).
        let timed_as =
            fused.filter(|_| !std::env::var("JETRT_CUDA_CONV_TIMING").is_ok_and(|v| v == "plain"));
        let key = key(shape, dt, backward, workspace_limit, timed_as);
        let recorded = tactics
            .choice(&key)
            .and_then(|id| candidates.iter().find(|c| c.0.id() == id).copied());
        let timed = match (recorded, tactics.timer()) {
            (None, Some(timer)) if candidates.len() > 1 => {
                Some(plan.fastest(dnn, shape, dt, timed_as, &candidates, timer))
            }
            _ => None,
        };
        let (algo, ws) = match (recorded, timed) {
            (Some(c), _) => c,
            (None, Some(Ok(c))) => {
                tactics.record(key, c.0.id());
                tactics.timed += 1;
                c
            }
            (None, Some(Err(e))) => {
                log::warn!("cuDNN: timing the algorithms for {key} failed ({e}); taking the heuristics' first");
                first
            }
            (None, None) => first,
        };
        plan.algo = algo;
        plan.workspace = ws;
        Ok(plan)
    }

    /// The algorithms cuDNN's heuristics rank for this geometry that it
    /// says can run, best first.
    fn ranked(&self, dnn: &Dnn, backward: bool) -> Result<Vec<Algo>> {
        let mut n: c_int = 0;
        let ok = sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS;
        if backward {
            // SAFETY: the perf structs are plain data cuDNN fills in.
            let mut perf: [sys::cudnnConvolutionBwdDataAlgoPerf_t; ASK] =
                unsafe { std::mem::zeroed() };
            // SAFETY: live descriptors; `perf` holds ASK results.
            check("ranking backward-data algorithms", unsafe {
                sys::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                    dnn.handle,
                    self.w.0,
                    self.y.0,
                    self.conv.0,
                    self.x.0,
                    ASK as c_int,
                    &mut n,
                    perf.as_mut_ptr(),
                )
            })?;
            Ok(perf[..(n.max(0) as usize).min(ASK)]
                .iter()
                .filter(|p| p.status == ok)
                .map(|p| Algo::Bwd(p.algo))
                .collect())
        } else {
            // SAFETY: the perf structs are plain data cuDNN fills in.
            let mut perf: [sys::cudnnConvolutionFwdAlgoPerf_t; ASK] = unsafe { std::mem::zeroed() };
            // SAFETY: live descriptors; `perf` holds ASK results.
            check("ranking forward algorithms", unsafe {
                sys::cudnnGetConvolutionForwardAlgorithm_v7(
                    dnn.handle,
                    self.x.0,
                    self.w.0,
                    self.conv.0,
                    self.y.0,
                    ASK as c_int,
                    &mut n,
                    perf.as_mut_ptr(),
                )
            })?;
            Ok(perf[..(n.max(0) as usize).min(ASK)]
                .iter()
                .filter(|p| p.status == ok)
                .map(|p| Algo::Fwd(p.algo))
                .collect())
        }
    }

    /// The scratch bytes `algo` needs for this geometry.
    fn workspace_of(&self, dnn: &Dnn, algo: Algo) -> Result<usize> {
        let mut ws = 0usize;
        match algo {
            // SAFETY: live descriptors; `ws` is valid for writes.
            Algo::Fwd(a) => check("sizing the workspace", unsafe {
                sys::cudnnGetConvolutionForwardWorkspaceSize(
                    dnn.handle,
                    self.x.0,
                    self.w.0,
                    self.conv.0,
                    self.y.0,
                    a,
                    &mut ws,
                )
            })?,
            // SAFETY: as above.
            Algo::Bwd(a) => check("sizing the workspace", unsafe {
                sys::cudnnGetConvolutionBackwardDataWorkspaceSize(
                    dnn.handle,
                    self.w.0,
                    self.y.0,
                    self.conv.0,
                    self.x.0,
                    a,
                    &mut ws,
                )
            })?,
        }
        Ok(ws)
    }

    /// Times the candidates on scratch tensors of the geometry (their
    /// values do not change the time) and returns the fastest
    /// ([`super::gate::pick`]); a candidate that fails to run is passed over.
    fn fastest(
        &mut self,
        dnn: &Dnn,
        shape: &ConvShape,
        dt: DataType,
        fused: Option<FusedEpilogue>,
        candidates: &[(Algo, usize)],
        timer: &Timer,
    ) -> Result<(Algo, usize)> {
        let bytes = |d: &[usize]| d.iter().product::<usize>() * dt.size();
        let x = DeviceBuf::new(&dnn.gpu, bytes(&shape.x), "timing a convolution")?;
        let w = DeviceBuf::new(&dnn.gpu, bytes(&shape.w), "timing a convolution")?;
        let y = DeviceBuf::new(&dnn.gpu, bytes(&shape.y), "timing a convolution")?;
        let most = candidates.iter().map(|c| c.1).max().unwrap_or(0);
        let ws = DeviceBuf::new(&dnn.gpu, most, "timing a convolution")?;
        let (bias, z) = match fused {
            Some(f) => (
                DeviceBuf::new(&dnn.gpu, f.channels * dt.size(), "timing a convolution")?,
                DeviceBuf::new(
                    &dnn.gpu,
                    if f.residual { bytes(&shape.y) } else { 0 },
                    "timing a convolution",
                )?,
            ),
            None => (
                DeviceBuf::new(&dnn.gpu, 0, "timing a convolution")?,
                DeviceBuf::new(&dnn.gpu, 0, "timing a convolution")?,
            ),
        };
        for b in [&x, &w, &y, &bias, &z] {
            if b.bytes > 0 {
                // SAFETY: the buffer holds b.bytes bytes; zeros are a valid
                // value of either float type.
                cu("clearing a timing buffer", unsafe {
                    cudarc::driver::result::memset_d8_sync(b.ptr, 0, b.bytes)
                })?;
            }
        }
        let what = format!(
            "cuDNN {dt:?} x{:?} w{:?} y{:?} ({:?})",
            shape.x,
            shape.w,
            shape.y,
            candidates.iter().map(|c| c.0).collect::<Vec<_>>()
        );
        let chosen = timer.fastest(dnn.stream, candidates.len(), &what, |i| {
            let (algo, need) = candidates[i];
            self.algo = algo;
            self.workspace = need;
            // SAFETY: the buffers hold the geometry's dims in `dt` and the
            // scratch the most demanding candidate needs.
            unsafe {
                if fused.is_some() {
                    self.run_fused(dnn, (x.ptr, w.ptr, y.ptr), z.ptr, bias.ptr, ws.ptr)
                } else {
                    self.run(dnn, x.ptr, w.ptr, y.ptr, ws.ptr)
                }
            }
        });
        chosen
            .map(|(i, _)| candidates[i])
            .ok_or_else(|| Error::Device("no candidate algorithm ran".into()))
    }

    /// Prepares [`Conv::run_fused`]: a bias of `channels` values in `dt`
    /// stored as the convolution's tensors are, and ReLU (NaN propagated).
    pub fn fuse_bias_relu(&mut self, channels: usize, dt: DataType, nhwc: bool) -> Result<()> {
        let bias = tensor(&[1, channels, 1, 1], dt, nhwc)?;
        let mut a = std::ptr::null_mut();
        // SAFETY: `a` is valid for writes.
        check("creating an activation descriptor", unsafe {
            sys::cudnnCreateActivationDescriptor(&mut a)
        })?;
        let relu = ActDesc(a);
        // SAFETY: a live descriptor.
        check("describing ReLU", unsafe {
            sys::cudnnSetActivationDescriptor(
                relu.0,
                sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU,
                sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
                0.0,
            )
        })?;
        self.epilogue = Some(Epilogue { bias, relu });
        Ok(())
    }

    /// `y = relu(conv(x, w) + z + bias)` in one call (`z` 0: none), as
    /// [`Conv::fuse_bias_relu`] prepared.
    ///
    /// # Safety
    /// As [`Conv::run`]; `bias` holds the prepared channels and `z`, when
    /// not 0, `y`'s dims and type.
    pub unsafe fn run_fused(
        &self,
        dnn: &Dnn,
        (x, w, y): (u64, u64, u64),
        z: u64,
        bias: u64,
        ws: u64,
    ) -> Result<()> {
        let (Some(e), Algo::Fwd(algo)) = (&self.epilogue, self.algo) else {
            return Err(Error::Device(
                "cuDNN: a fused convolution that was not prepared".into(),
            ));
        };
        let (one, alpha2) = (1.0f32, if z != 0 { 1.0f32 } else { 0.0 });
        let p = |v: u64| v as usize as *mut c_void;
        dnn.gpu.bind()?;
        // SAFETY: the caller guarantees the buffers; z is y when absent
        // (read with weight 0); alphas are float32, as the float compute
        // type reads them.
        check("a fused convolution", unsafe {
            sys::cudnnConvolutionBiasActivationForward(
                dnn.handle,
                (&one as *const f32).cast(),
                self.x.0,
                p(x),
                self.w.0,
                p(w),
                self.conv.0,
                algo,
                p(ws),
                self.workspace,
                (&alpha2 as *const f32).cast(),
                self.y.0,
                p(if z != 0 { z } else { y }),
                e.bias.0,
                p(bias),
                e.relu.0,
                self.y.0,
                p(y),
            )
        })
    }

    /// Forward: `y = conv(x, w)`; backward-data: `x = conv^T(y, w)`.
    ///
    /// # Safety
    /// `x`, `w` and `y` are device memory of the planned dims and type,
    /// `ws` holds at least `self.workspace` bytes, all alive until the
    /// stream has run the work.
    pub unsafe fn run(&self, dnn: &Dnn, x: u64, w: u64, y: u64, ws: u64) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (a, b) = (
            (&alpha as *const f32).cast::<c_void>(),
            (&beta as *const f32).cast::<c_void>(),
        );
        let p = |v: u64| v as usize as *mut c_void;
        dnn.gpu.bind()?;
        match self.algo {
            // SAFETY: the caller guarantees the buffers; alpha/beta are
            // float32, as the float compute type reads them.
            Algo::Bwd(algo) => check("a transposed convolution", unsafe {
                sys::cudnnConvolutionBackwardData(
                    dnn.handle,
                    a,
                    self.w.0,
                    p(w),
                    self.y.0,
                    p(y),
                    self.conv.0,
                    algo,
                    p(ws),
                    self.workspace,
                    b,
                    self.x.0,
                    p(x),
                )
            }),
            // SAFETY: as above.
            Algo::Fwd(algo) => check("a convolution", unsafe {
                sys::cudnnConvolutionForward(
                    dnn.handle,
                    a,
                    self.x.0,
                    p(x),
                    self.w.0,
                    p(w),
                    self.conv.0,
                    algo,
                    p(ws),
                    self.workspace,
                    b,
                    self.y.0,
                    p(y),
                )
            }),
        }
    }
}

fn no_algorithm(shape: &ConvShape, limit: usize) -> Error {
    Error::Device(format!(
        "cuDNN has no algorithm for a convolution of {:?} with filter {:?} within a workspace of {} bytes (raise --workspace)",
        shape.x, shape.w, limit
    ))
}
