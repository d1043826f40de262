//! One configured instance of a plugin, and the only place that calls a
//! plugin's functions. Everything a plugin returns is checked before use:
//! statuses, counts, ranks, types, dims against what was allocated, and
//! bool outputs for values other than 0 and 1. A misbehaving plugin gives an
//! error naming it, never undefined behaviour on jetrt's side.

use super::ffi;
use super::registry::PluginEntry;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{FieldValue, PluginField};
use crate::tensor::{Tensor, TensorData};
use std::ffi::{c_void, CString};
use std::sync::Arc;

/// The most outputs a plugin may describe.
const MAX_OUTPUTS: usize = 16;
/// The most bytes of serialized parameters accepted (corruption guard).
const MAX_SERIALIZED: u64 = 64 << 20;
/// The most bytes one output or workspace may take (corruption guard).
const MAX_BUFFER: u64 = 16 << 30;

/// An input's type as told to a plugin; `None` dims are not known yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDesc {
    pub dtype: DataType,
    pub dims: Vec<Option<usize>>,
}

/// One output dim as a plugin described it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferredDim {
    Known(usize),
    /// Depends on input dims not known yet.
    Unknown,
    /// Known once the kernel has run; at most `bound` when given.
    DataDependent {
        bound: Option<usize>,
    },
}

/// One output as a plugin described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferredOutput {
    pub dtype: DataType,
    pub dims: Vec<InferredDim>,
    /// Per dim: the (input, axis) whose dim it always equals.
    pub same_as: Vec<Option<(usize, usize)>>,
}

pub struct PluginInstance {
    entry: Arc<PluginEntry>,
    raw: *mut c_void,
}

// SAFETY: the ABI allows an instance to be used from any thread as long as
// calls on it do not overlap; PluginInstance is not Sync, so shared
// references never reach two threads, and calls that run kernels take
// `&mut self`.
unsafe impl Send for PluginInstance {}

fn dtype_to_c(t: DataType) -> i32 {
    match t {
        DataType::F32 => ffi::DTYPE_F32,
        DataType::F16 => ffi::DTYPE_F16,
        DataType::I32 => ffi::DTYPE_I32,
        DataType::I64 => ffi::DTYPE_I64,
        DataType::U8 => ffi::DTYPE_U8,
        DataType::Bool => ffi::DTYPE_BOOL,
    }
}

fn dtype_from_c(t: i32) -> Option<DataType> {
    Some(match t {
        ffi::DTYPE_F32 => DataType::F32,
        ffi::DTYPE_F16 => DataType::F16,
        ffi::DTYPE_I32 => DataType::I32,
        ffi::DTYPE_I64 => DataType::I64,
        ffi::DTYPE_U8 => DataType::U8,
        ffi::DTYPE_BOOL => DataType::Bool,
        _ => return None,
    })
}

fn status_name(s: i32) -> &'static str {
    match s {
        1 => "invalid argument",
        2 => "unsupported",
        3 => "buffer too small",
        4 => "out of memory",
        5 => "CUDA error",
        6 => "internal error",
        _ => "unknown status",
    }
}

/// The fields as C structs, with the storage they point into.
struct CFields {
    _names: Vec<CString>,
    _strings: Vec<CString>,
    raw: Vec<ffi::Field>,
}

fn c_fields(fields: &[PluginField]) -> std::result::Result<CFields, String> {
    let mut names = Vec::with_capacity(fields.len());
    let mut strings = Vec::new();
    let mut raw = Vec::with_capacity(fields.len());
    for f in fields {
        let name = CString::new(f.name.as_str())
            .map_err(|_| format!("field name '{}' holds a NUL byte", f.name))?;
        let mut c = ffi::Field {
            name: name.as_ptr(),
            kind: 0,
            reserved: 0,
            count: 1,
            i: 0,
            f: 0.0,
            s: std::ptr::null(),
            ints: std::ptr::null(),
            floats: std::ptr::null(),
        };
        // Pointers into a CString or a Vec stay valid when the owner moves
        // into `names`/`strings`: their heap buffers do not move.
        match &f.value {
            FieldValue::Int(v) => {
                c.kind = ffi::FIELD_INT;
                c.i = *v;
            }
            FieldValue::Float(v) => {
                c.kind = ffi::FIELD_FLOAT;
                c.f = *v;
            }
            FieldValue::String(s) => {
                let cs = CString::new(s.as_str())
                    .map_err(|_| format!("field '{}' holds a NUL byte", f.name))?;
                c.kind = ffi::FIELD_STRING;
                c.count = s.len() as i64;
                c.s = cs.as_ptr();
                strings.push(cs);
            }
            FieldValue::Ints(v) => {
                c.kind = ffi::FIELD_INTS;
                c.count = v.len() as i64;
                c.ints = v.as_ptr();
            }
            FieldValue::Floats(v) => {
                c.kind = ffi::FIELD_FLOATS;
                c.count = v.len() as i64;
                c.floats = v.as_ptr();
            }
        }
        names.push(name);
        raw.push(c);
    }
    Ok(CFields {
        _names: names,
        _strings: strings,
        raw,
    })
}

fn rank_ok(rank: usize) -> std::result::Result<(), String> {
    if rank > ffi::MAX_RANK {
        Err(format!(
            "plugins take tensors of rank {} at most, got rank {rank}",
            ffi::MAX_RANK
        ))
    } else {
        Ok(())
    }
}

fn c_descs(inputs: &[InputDesc]) -> std::result::Result<Vec<ffi::TensorDesc>, String> {
    inputs
        .iter()
        .map(|i| {
            rank_ok(i.dims.len())?;
            let mut d = ffi::TensorDesc {
                struct_size: std::mem::size_of::<ffi::TensorDesc>() as u32,
                dtype: dtype_to_c(i.dtype),
                rank: i.dims.len() as i32,
                reserved: 0,
                dims: [0; ffi::MAX_RANK],
            };
            for (k, x) in i.dims.iter().enumerate() {
                d.dims[k] = x.map_or(ffi::DIM_UNKNOWN, |n| n as i64);
            }
            Ok(d)
        })
        .collect()
}

/// An output buffer of the C element type.
enum OutBuf {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    /// Written by C as bytes, checked to be 0 or 1 before they become bools.
    Bool(Vec<u8>),
}

impl OutBuf {
    fn new(dtype: DataType, n: usize) -> Self {
        match dtype {
            DataType::F32 => OutBuf::F32(vec![0.0; n]),
            DataType::F16 => OutBuf::F16(vec![half::f16::ZERO; n]),
            DataType::I32 => OutBuf::I32(vec![0; n]),
            DataType::I64 => OutBuf::I64(vec![0; n]),
            DataType::U8 => OutBuf::U8(vec![0; n]),
            DataType::Bool => OutBuf::Bool(vec![0; n]),
        }
    }

    fn ptr(&mut self) -> *mut c_void {
        match self {
            OutBuf::F32(v) => v.as_mut_ptr().cast(),
            OutBuf::F16(v) => v.as_mut_ptr().cast(),
            OutBuf::I32(v) => v.as_mut_ptr().cast(),
            OutBuf::I64(v) => v.as_mut_ptr().cast(),
            OutBuf::U8(v) | OutBuf::Bool(v) => v.as_mut_ptr().cast(),
        }
    }

    /// The first `n` elements as tensor data.
    fn into_data(self, n: usize) -> std::result::Result<TensorData, String> {
        Ok(match self {
            OutBuf::F32(mut v) => {
                v.truncate(n);
                TensorData::F32(v)
            }
            OutBuf::F16(mut v) => {
                v.truncate(n);
                TensorData::F16(v)
            }
            OutBuf::I32(mut v) => {
                v.truncate(n);
                TensorData::I32(v)
            }
            OutBuf::I64(mut v) => {
                v.truncate(n);
                TensorData::I64(v)
            }
            OutBuf::U8(mut v) => {
                v.truncate(n);
                TensorData::U8(v)
            }
            OutBuf::Bool(v) => TensorData::Bool(
                v[..n]
                    .iter()
                    .map(|&b| match b {
                        0 => Ok(false),
                        1 => Ok(true),
                        other => Err(format!("wrote {other} into a bool output")),
                    })
                    .collect::<std::result::Result<_, _>>()?,
            ),
        })
    }
}

/// A tensor's data as the C ABI's `void*` (inputs are never written).
fn data_ptr(t: &Tensor) -> *mut c_void {
    let p: *const c_void = match t.data() {
        TensorData::F32(v) => v.as_ptr().cast(),
        TensorData::F16(v) => v.as_ptr().cast(),
        TensorData::I32(v) => v.as_ptr().cast(),
        TensorData::I64(v) => v.as_ptr().cast(),
        TensorData::U8(v) => v.as_ptr().cast(),
        // bool is one byte holding 0 or 1, the ABI's bool.
        TensorData::Bool(v) => v.as_ptr().cast(),
    };
    p.cast_mut()
}

fn c_tensor(dtype: DataType, dims: &[usize], data: *mut c_void) -> ffi::Tensor {
    let mut t = ffi::Tensor {
        struct_size: std::mem::size_of::<ffi::Tensor>() as u32,
        dtype: dtype_to_c(dtype),
        rank: dims.len() as i32,
        reserved: 0,
        dims: [0; ffi::MAX_RANK],
        data,
    };
    for (k, d) in dims.iter().enumerate() {
        t.dims[k] = *d as i64;
    }
    t
}

impl PluginInstance {
    fn err(entry: &PluginEntry, what: &str, msg: impl std::fmt::Display) -> Error {
        Error::Plugin(format!("plugin {}: {what}: {msg}", entry.describe()))
    }

    fn fail(&self, what: &str, msg: impl std::fmt::Display) -> Error {
        Self::err(&self.entry, what, msg)
    }

    fn status(entry: &PluginEntry, what: &str, s: i32, e: &ffi::ErrorBuf) -> Result<()> {
        if s == ffi::OK {
            Ok(())
        } else {
            Err(Self::err(
                entry,
                &format!("{what} failed ({})", status_name(s)),
                e.text(),
            ))
        }
    }

    pub fn entry(&self) -> &Arc<PluginEntry> {
        &self.entry
    }

    fn adopt(entry: Arc<PluginEntry>, raw: *mut c_void, what: &str) -> Result<Self> {
        if raw.is_null() {
            return Err(Self::err(&entry, what, "returned success but no instance"));
        }
        Ok(PluginInstance { entry, raw })
    }

    /// A new instance from fields (build time).
    pub fn create(entry: Arc<PluginEntry>, fields: &[PluginField]) -> Result<Self> {
        let c = c_fields(fields).map_err(|m| Self::err(&entry, "create", m))?;
        let mut raw = std::ptr::null_mut();
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: `create` has the ABI's signature; the field array and
        // every pointer in it stay alive (owned by `c`) for the call, and
        // `raw` and `e` are valid for writes.
        let s =
            unsafe { (entry.entry.create)(c.raw.as_ptr(), c.raw.len() as i32, &mut raw, &mut e) };
        Self::status(&entry, "create", s, &e)?;
        Self::adopt(entry, raw, "create")
    }

    /// A new instance from serialized parameters (engine load time).
    pub fn deserialize(entry: Arc<PluginEntry>, data: &[u8]) -> Result<Self> {
        let mut raw = std::ptr::null_mut();
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: `deserialize` has the ABI's signature; `data` is valid for
        // reads of its length for the call, `raw` and `e` for writes.
        let s = unsafe {
            (entry.entry.deserialize)(data.as_ptr(), data.len() as u64, &mut raw, &mut e)
        };
        Self::status(&entry, "deserialize", s, &e)?;
        Self::adopt(entry, raw, "deserialize")
    }

    /// The instance's parameters, for the engine file.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let mut size = 0u64;
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: a size query (null buffer, capacity 0) with the ABI's
        // signature on a live instance; `size` and `e` are valid for writes.
        let s = unsafe {
            (self.entry.entry.serialize)(self.raw, std::ptr::null_mut(), 0, &mut size, &mut e)
        };
        if s != ffi::OK && s != ffi::ERROR_BUFFER_TOO_SMALL {
            Self::status(&self.entry, "serialize", s, &e)?;
        }
        if size > MAX_SERIALIZED {
            return Err(self.fail(
                "serialize",
                format!("asks for {size} bytes of parameters, more than {MAX_SERIALIZED}"),
            ));
        }
        let mut buf = vec![0u8; size as usize];
        let mut written = 0u64;
        // SAFETY: `buf` is valid for writes of its length, which is passed
        // as the capacity; `written` and `e` are valid for writes.
        let s = unsafe {
            (self.entry.entry.serialize)(
                self.raw,
                buf.as_mut_ptr(),
                buf.len() as u64,
                &mut written,
                &mut e,
            )
        };
        Self::status(&self.entry, "serialize", s, &e)?;
        if written > size {
            return Err(self.fail(
                "serialize",
                format!("reports writing {written} bytes into a buffer of {size}"),
            ));
        }
        buf.truncate(written as usize);
        Ok(buf)
    }

    /// Checks input types and describes the outputs.
    pub fn infer(&self, inputs: &[InputDesc]) -> Result<Vec<InferredOutput>> {
        let descs = c_descs(inputs).map_err(|m| self.fail("infer_outputs", m))?;
        let mut outs = [ffi::OutputDesc::blank(); MAX_OUTPUTS];
        let mut n = 0i32;
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: the ABI's signature; `descs` is valid for reads of its
        // length, `outs` for writes of MAX_OUTPUTS descriptions (the
        // capacity passed), `n` and `e` for writes.
        let s = unsafe {
            (self.entry.entry.infer)(
                self.raw,
                descs.as_ptr(),
                descs.len() as i32,
                outs.as_mut_ptr(),
                MAX_OUTPUTS as i32,
                &mut n,
                &mut e,
            )
        };
        Self::status(&self.entry, "infer_outputs", s, &e)?;
        let bad = |m: String| self.fail("infer_outputs", m);
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_OUTPUTS)
            .ok_or_else(|| bad(format!("reports {n} outputs")))?;
        outs[..n]
            .iter()
            .enumerate()
            .map(|(k, o)| {
                let dtype = dtype_from_c(o.dtype)
                    .ok_or_else(|| bad(format!("output {k} has unknown type {}", o.dtype)))?;
                let rank = usize::try_from(o.rank)
                    .ok()
                    .filter(|&r| r <= ffi::MAX_RANK)
                    .ok_or_else(|| bad(format!("output {k} has rank {}", o.rank)))?;
                let mut dims = Vec::with_capacity(rank);
                let mut same_as = Vec::with_capacity(rank);
                for d in 0..rank {
                    dims.push(match o.dims[d] {
                        v if v >= 0 => InferredDim::Known(v as usize),
                        ffi::DIM_UNKNOWN => InferredDim::Unknown,
                        ffi::DIM_DATA_DEPENDENT => InferredDim::DataDependent {
                            bound: usize::try_from(o.bounds[d]).ok(),
                        },
                        v => return Err(bad(format!("output {k} has dim {d} = {v}"))),
                    });
                    same_as.push(match o.same_as_input[d] {
                        -1 => None,
                        i => {
                            let axis = o.same_as_axis[d];
                            let found = usize::try_from(i).ok().zip(usize::try_from(axis).ok());
                            match found {
                                Some((i, a)) if i < inputs.len() && a < inputs[i].dims.len() => {
                                    Some((i, a))
                                }
                                _ => {
                                    return Err(bad(format!(
                                        "output {k} dim {d} refers to dim {axis} of input {i}, which does not exist"
                                    )))
                                }
                            }
                        }
                    });
                }
                Ok(InferredOutput {
                    dtype,
                    dims,
                    same_as,
                })
            })
            .collect()
    }

    /// Scratch bytes a run on `device` (an `ffi::DEVICE_*`) with inputs of
    /// these dims needs.
    fn workspace(&self, descs: &[ffi::TensorDesc], device: i32) -> Result<usize> {
        let Some(f) = self.entry.entry.workspace else {
            return Ok(0);
        };
        let mut size = 0u64;
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: the ABI's signature; `descs` is valid for reads of its
        // length, `size` and `e` for writes.
        let s = unsafe {
            f(
                self.raw,
                descs.as_ptr(),
                descs.len() as i32,
                device,
                &mut size,
                &mut e,
            )
        };
        Self::status(&self.entry, "workspace_size", s, &e)?;
        if size > MAX_BUFFER {
            return Err(self.fail(
                "workspace_size",
                format!("asks for {size} bytes of scratch"),
            ));
        }
        Ok(size as usize)
    }

    /// The dims each output is allocated at for inputs of known dims:
    /// data-dependent dims at their bound.
    fn allocation(&self, outs: &[InferredOutput], what: &str) -> Result<Vec<Vec<usize>>> {
        let bad = |m: String| self.fail(what, m);
        let mut alloc: Vec<Vec<usize>> = Vec::with_capacity(outs.len());
        for (k, o) in outs.iter().enumerate() {
            let dims = o
                .dims
                .iter()
                .enumerate()
                .map(|(d, x)| match x {
                    InferredDim::Known(n) => Ok(*n),
                    InferredDim::DataDependent { bound: Some(b) } => Ok(*b),
                    InferredDim::DataDependent { bound: None } => Err(bad(format!(
                        "output {k} dim {d} is data-dependent with no bound, though every input dim is known"
                    ))),
                    InferredDim::Unknown => Err(bad(format!(
                        "output {k} dim {d} is unknown, though every input dim is known"
                    ))),
                })
                .collect::<Result<Vec<usize>>>()?;
            // A bound from a confused plugin must not become a huge allocation.
            dims.iter()
                .try_fold(o.dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
                .filter(|&b| b <= MAX_BUFFER)
                .ok_or_else(|| {
                    bad(format!(
                        "output {k} would take more than {MAX_BUFFER} bytes"
                    ))
                })?;
            alloc.push(dims);
        }
        Ok(alloc)
    }

    /// The dims a kernel reported for its outputs, checked against what was
    /// allocated: equal, or at most the bound for data-dependent dims.
    fn reported(
        &self,
        outs: &[InferredOutput],
        alloc: &[Vec<usize>],
        c_outputs: &[ffi::Tensor],
        what: &str,
    ) -> Result<Vec<Vec<usize>>> {
        let bad = |m: String| self.fail(what, m);
        let mut result = Vec::with_capacity(outs.len());
        for (k, ((o, dims), c)) in outs.iter().zip(alloc).zip(c_outputs).enumerate() {
            if c.rank as usize != dims.len() || c.dtype != dtype_to_c(o.dtype) {
                return Err(bad(format!(
                    "output {k} came back with its rank or type changed"
                )));
            }
            let mut actual = Vec::with_capacity(dims.len());
            for (d, (&allocated, &reported)) in dims.iter().zip(&c.dims).enumerate() {
                let ok = match o.dims[d] {
                    InferredDim::DataDependent { .. } => (0..=allocated as i64).contains(&reported),
                    _ => reported == allocated as i64,
                };
                if !ok {
                    return Err(bad(format!(
                        "output {k} came back with dim {d} = {reported}, where {allocated} was allocated"
                    )));
                }
                actual.push(reported as usize);
            }
            result.push(actual);
        }
        Ok(result)
    }

    /// Runs the CPU kernel; returns the outputs at the dims it produced.
    pub fn run_cpu(&mut self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let descs: Vec<InputDesc> = inputs
            .iter()
            .map(|t| InputDesc {
                dtype: t.dtype(),
                dims: t.shape().iter().map(|&d| Some(d)).collect(),
            })
            .collect();
        let outs = self.infer(&descs)?;
        let bad = |m: String| self.fail("run_cpu", m);
        let alloc = self.allocation(&outs, "run_cpu")?;
        let c_in_descs = c_descs(&descs).map_err(|m| self.fail("run_cpu", m))?;
        let mut workspace = vec![0u8; self.workspace(&c_in_descs, ffi::DEVICE_CPU)?];
        let c_inputs: Vec<ffi::Tensor> = inputs
            .iter()
            .map(|t| c_tensor(t.dtype(), t.shape(), data_ptr(t)))
            .collect();
        let mut bufs: Vec<OutBuf> = outs
            .iter()
            .zip(&alloc)
            .map(|(o, dims)| OutBuf::new(o.dtype, dims.iter().product()))
            .collect();
        let mut c_outputs: Vec<ffi::Tensor> = outs
            .iter()
            .zip(&alloc)
            .zip(bufs.iter_mut())
            .map(|((o, dims), b)| c_tensor(o.dtype, dims, b.ptr()))
            .collect();
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: the ABI's signature. Every input tensor points at data of
        // the dims and type it declares, alive for the call (the kernel
        // only reads it); every output at a buffer of its declared dims and
        // type, allocated above and alive for the call; the workspace is
        // valid for writes of the size passed; `e` for writes.
        let s = unsafe {
            (self.entry.entry.run_cpu)(
                self.raw,
                c_inputs.as_ptr(),
                c_inputs.len() as i32,
                c_outputs.as_mut_ptr(),
                c_outputs.len() as i32,
                workspace.as_mut_ptr().cast(),
                workspace.len() as u64,
                &mut e,
            )
        };
        Self::status(&self.entry, "run_cpu", s, &e)?;
        let actual = self.reported(&outs, &alloc, &c_outputs, "run_cpu")?;
        let mut result = Vec::with_capacity(outs.len());
        for (k, (buf, dims)) in bufs.into_iter().zip(actual).enumerate() {
            let n = dims.iter().product();
            let data = buf
                .into_data(n)
                .map_err(|m| bad(format!("output {k}: {m}")))?;
            result.push(Tensor::new(dims, data).map_err(|e| bad(format!("output {k}: {e}")))?);
        }
        Ok(result)
    }

    /// Whether the plugin has a CUDA kernel.
    pub fn has_cuda(&self) -> bool {
        self.entry.has_cuda()
    }

    /// What a CUDA run on inputs of these (known) dims needs: the outputs'
    /// types, the dims to allocate each at, and the scratch bytes.
    pub fn cuda_plan(&self, inputs: &[InputDesc]) -> Result<CudaPlan> {
        let outputs = self.infer(inputs)?;
        let alloc = self.allocation(&outputs, "run_cuda")?;
        let descs = c_descs(inputs).map_err(|m| self.fail("run_cuda", m))?;
        let workspace = self.workspace(&descs, ffi::DEVICE_CUDA)?;
        Ok(CudaPlan {
            outputs,
            alloc,
            workspace,
        })
    }

    /// Runs the CUDA kernel on `stream` over device memory; returns the
    /// dims each output came back with (data-dependent ones as produced).
    ///
    /// # Safety
    /// Every input's `ptr` is device memory of the current context holding
    /// its type and dims; every output's has room for the dims `plan`
    /// allocates; `workspace` has `plan.workspace` bytes; `stream` is a
    /// stream of that context. All stay valid until the stream has run the
    /// work (the plugin only enqueues it).
    pub unsafe fn run_cuda(
        &mut self,
        plan: &CudaPlan,
        inputs: &[DeviceTensor],
        outputs: &[u64],
        workspace: u64,
        stream: *mut c_void,
    ) -> Result<Vec<Vec<usize>>> {
        let Some(run) = self.entry.entry.run_cuda else {
            return Err(self.fail("run_cuda", "the plugin has no CUDA kernel"));
        };
        if outputs.len() != plan.outputs.len() {
            return Err(self.fail(
                "run_cuda",
                format!(
                    "{} output buffers for {} outputs",
                    outputs.len(),
                    plan.outputs.len()
                ),
            ));
        }
        let c_inputs: Vec<ffi::Tensor> = inputs
            .iter()
            .map(|t| c_tensor(t.dtype, &t.dims, t.ptr as usize as *mut c_void))
            .collect();
        let mut c_outputs: Vec<ffi::Tensor> = plan
            .outputs
            .iter()
            .zip(&plan.alloc)
            .zip(outputs)
            .map(|((o, dims), &p)| c_tensor(o.dtype, dims, p as usize as *mut c_void))
            .collect();
        let mut e = ffi::ErrorBuf::new();
        // SAFETY: the ABI's signature; the caller guarantees every pointer
        // is device memory of the sizes described, and the descriptor
        // arrays and `e` are alive and valid for the call.
        let s = unsafe {
            run(
                self.raw,
                c_inputs.as_ptr(),
                c_inputs.len() as i32,
                c_outputs.as_mut_ptr(),
                c_outputs.len() as i32,
                workspace as usize as *mut c_void,
                plan.workspace as u64,
                stream,
                &mut e,
            )
        };
        Self::status(&self.entry, "run_cuda", s, &e)?;
        self.reported(&plan.outputs, &plan.alloc, &c_outputs, "run_cuda")
    }
}

/// A tensor in device memory, as a plugin's CUDA kernel is handed it.
#[derive(Clone, Debug)]
pub struct DeviceTensor {
    pub dtype: DataType,
    pub dims: Vec<usize>,
    pub ptr: u64,
}

/// What one CUDA run of a plugin needs, from [`PluginInstance::cuda_plan`].
#[derive(Clone, Debug)]
pub struct CudaPlan {
    pub outputs: Vec<InferredOutput>,
    /// The dims each output is allocated at.
    pub alloc: Vec<Vec<usize>>,
    /// Scratch bytes on the device.
    pub workspace: usize,
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        // SAFETY: `raw` came from this plugin's create or deserialize and is
        // destroyed exactly once, here.
        unsafe { (self.entry.entry.destroy)(self.raw) }
    }
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginInstance({})", self.entry.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::registry::lookup;

    fn field(name: &str, value: FieldValue) -> PluginField {
        PluginField {
            name: name.into(),
            value,
        }
    }

    fn nms(fields: &[PluginField]) -> Result<PluginInstance> {
        PluginInstance::create(lookup("NonMaxSuppression", "1").unwrap(), fields)
    }

    #[test]
    fn create_checks_fields() {
        let e = nms(&[field("center_point_box", FieldValue::Int(7))]).unwrap_err();
        assert!(e.to_string().contains("center_point_box"), "{e}");
        let e = nms(&[field("no_such_field", FieldValue::Int(1))]).unwrap_err();
        assert!(
            e.to_string().contains("unknown field 'no_such_field'"),
            "{e}"
        );
        let e = nms(&[field("center_point_box", FieldValue::String("a".into()))]).unwrap_err();
        assert!(e.to_string().contains("should be an int"), "{e}");
    }

    #[test]
    fn serialized_parameters_round_trip_and_corruption_is_refused() {
        let p = nms(&[
            field("max_output_boxes_per_class", FieldValue::Int(2)),
            field("iou_threshold", FieldValue::Float(0.5)),
        ])
        .unwrap();
        let bytes = p.serialize().unwrap();
        let q = PluginInstance::deserialize(p.entry().clone(), &bytes).unwrap();
        assert_eq!(q.serialize().unwrap(), bytes);
        for cut in 0..bytes.len() {
            let e = PluginInstance::deserialize(p.entry().clone(), &bytes[..cut]).unwrap_err();
            assert!(e.to_string().contains("corrupt parameters"), "{e}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(PluginInstance::deserialize(p.entry().clone(), &long).is_err());
    }

    #[test]
    fn nms_output_is_data_dependent_and_bounded() {
        let mut p = nms(&[
            field("max_output_boxes_per_class", FieldValue::Int(1)),
            field("iou_threshold", FieldValue::Float(0.5)),
        ])
        .unwrap();
        let descs = [
            InputDesc {
                dtype: DataType::F32,
                dims: vec![None, Some(3), Some(4)],
            },
            InputDesc {
                dtype: DataType::F32,
                dims: vec![None, Some(2), Some(3)],
            },
        ];
        let o = p.infer(&descs).unwrap();
        assert_eq!(
            o[0].dims,
            vec![
                InferredDim::DataDependent { bound: None },
                InferredDim::Known(3)
            ]
        );
        // Two overlapping boxes and a far one, one class: the best of the
        // pair and the far box; one per class allowed.
        let boxes = Tensor::from_f32(
            &[1, 3, 4],
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.1, 1.0, 1.1, 5.0, 5.0, 6.0, 6.0],
        )
        .unwrap();
        let scores = Tensor::from_f32(&[1, 2, 3], vec![0.9, 0.8, 0.7, 0.1, 0.2, 0.3]).unwrap();
        let out = p.run_cpu(&[&boxes, &scores]).unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(out[0].as_i64().unwrap(), &[0, 0, 0, 0, 1, 2]);
        let e = p
            .infer(&[InputDesc {
                dtype: DataType::I32,
                dims: vec![Some(1)],
            }])
            .unwrap_err();
        assert!(e.to_string().contains("takes 2 inputs"), "{e}");
        let e = p.infer(&[descs[0].clone(), descs[0].clone()]).unwrap_err();
        assert!(e.to_string().contains("scores"), "{e}");
    }
}
