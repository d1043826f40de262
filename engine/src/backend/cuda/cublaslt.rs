//! Matrix products through cuBLASLt, where the algorithm is chosen per
//! geometry and a bias can ride in the product's own epilogue.
//!
//! cuBLAS's `GemmEx` picks its kernel by heuristics on every call, and a
//! Linear's bias then needs a pass of its own over the product. cuBLASLt
//! lists the candidate algorithms for a geometry; a build times them on
//! the build GPU (`gate::Timer`) and the plan records the winner's rank
//! among the candidates (`tactics.rs`, keyed by geometry and the library's
//! version, so another cuBLASLt times afresh), as convolutions do with
//! cuDNN's. A float32 bias over the product's columns is added in the
//! epilogue (`CUBLASLT_EPILOGUE_BIAS`) where cuBLASLt offers an algorithm
//! for it: float32 products (for float16 ones the H200's cuBLASLt offered
//! none, and the bias stays in our epilogue kernel). Activations stay in
//! our epilogue kernel: cuBLASLt's GELU is the tanh approximation, and its
//! ReLU does not promise to keep NaNs.

use super::device::{cu, DeviceBuf, Gpu};
use super::tactics::Tactics;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use cudarc::cublaslt::sys;
use cudarc::driver::sys::CUstream;
use std::ffi::c_void;
use std::sync::Arc;

/// cuBLASLt entry points the backend calls.
pub const SYMBOLS: &[&str] = &[
    "cublasLtCreate",
    "cublasLtDestroy",
    "cublasLtGetVersion",
    "cublasLtMatmulDescCreate",
    "cublasLtMatmulDescDestroy",
    "cublasLtMatmulDescSetAttribute",
    "cublasLtMatrixLayoutCreate",
    "cublasLtMatrixLayoutDestroy",
    "cublasLtMatrixLayoutSetAttribute",
    "cublasLtMatmulPreferenceCreate",
    "cublasLtMatmulPreferenceDestroy",
    "cublasLtMatmulPreferenceSetAttribute",
    "cublasLtMatmulAlgoGetHeuristic",
    "cublasLtMatmul",
];

/// How many candidates a build asks the heuristics for and times.
const CANDIDATES: usize = 8;

fn check(what: &str, s: sys::cublasStatus_t) -> Result<()> {
    if s == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Device(format!("cuBLASLt: {what}: {s:?}")))
    }
}

/// Whether products go through cuBLASLt (`JETRT_CUDA_GEMM=cublas` keeps
/// cuBLAS's `GemmEx` and the separate bias pass, to compare).
pub fn enabled() -> bool {
    !std::env::var("JETRT_CUDA_GEMM").is_ok_and(|v| v == "cublas")
}

/// A cuBLASLt handle of one GPU's context.
pub struct Lt {
    gpu: Arc<Gpu>,
    handle: sys::cublasLtHandle_t,
    version: usize,
}

// SAFETY: a cuBLASLt handle may be used from any thread; its owner (one
// executor's `Blas`) is not shared.
unsafe impl Send for Lt {}

impl Lt {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Self> {
        gpu.bind()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` is valid for writes; the context is bound.
        check("creating a handle", unsafe {
            sys::cublasLtCreate(&mut handle)
        })?;
        // SAFETY: no preconditions.
        let version = unsafe { sys::cublasLtGetVersion() };
        Ok(Lt {
            gpu: gpu.clone(),
            handle,
            version,
        })
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: created in `new` and destroyed once.
            let _ = unsafe { sys::cublasLtDestroy(self.handle) };
        }
    }
}

/// A row-major product `D[i] = A[i] (m x k) * B[i] (k x n) (+ bias)` over
/// `batch` matrices, as `cublas::Blas::gemm` describes its operands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmShape {
    pub dtype: DataType,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_transposed: bool,
    pub b_transposed: bool,
    /// Elements between consecutive matrices of A and B (0: broadcast).
    pub strides: [i64; 2],
    pub batch: usize,
}

struct Desc(sys::cublasLtMatmulDesc_t);
struct Layout(sys::cublasLtMatrixLayout_t);
struct Pref(sys::cublasLtMatmulPreference_t);

impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once.
        unsafe { sys::cublasLtMatmulDescDestroy(self.0) };
    }
}
impl Drop for Layout {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once.
        unsafe { sys::cublasLtMatrixLayoutDestroy(self.0) };
    }
}
impl Drop for Pref {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once.
        unsafe { sys::cublasLtMatmulPreferenceDestroy(self.0) };
    }
}

/// A planned product: its descriptors and the algorithm it runs.
pub struct Gemm {
    desc: Desc,
    /// cuBLASLt's operands in its column-major terms: B^T, A^T, D^T.
    b: Layout,
    a: Layout,
    d: Layout,
    algo: sys::cublasLtMatmulAlgo_t,
    workspace: usize,
    /// Whether the bias is added in the epilogue.
    pub bias: bool,
}

// SAFETY: descriptors are plain host objects, used by one owner at a time.
unsafe impl Send for Gemm {}

fn cuda_type(dt: DataType) -> Result<sys::cudaDataType_t> {
    match dt {
        DataType::F32 => Ok(sys::cudaDataType_t::CUDA_R_32F),
        DataType::F16 => Ok(sys::cudaDataType_t::CUDA_R_16F),
        other => Err(Error::Unsupported {
            backend: "cuda",
            what: format!("matrix products of {other}"),
        }),
    }
}

/// Sets attribute `attr` of a product descriptor to `v`, whose type is
/// the attribute's (as cuBLASLt documents each).
fn desc_attr<T>(d: &Desc, attr: sys::cublasLtMatmulDescAttributes_t, v: &T) -> Result<()> {
    // SAFETY: a live descriptor; `v` is `size_of::<T>()` readable bytes.
    check("describing a product", unsafe {
        sys::cublasLtMatmulDescSetAttribute(
            d.0,
            attr,
            (v as *const T).cast(),
            std::mem::size_of::<T>(),
        )
    })
}

/// Sets attribute `attr` of a matrix layout to `v` (the attribute's type).
fn layout_attr<T>(l: &Layout, attr: sys::cublasLtMatrixLayoutAttribute_t, v: &T) -> Result<()> {
    // SAFETY: a live layout; `v` is `size_of::<T>()` readable bytes.
    check("describing a matrix", unsafe {
        sys::cublasLtMatrixLayoutSetAttribute(
            l.0,
            attr,
            (v as *const T).cast(),
            std::mem::size_of::<T>(),
        )
    })
}

/// A column-major `rows` x `cols` matrix with leading dim `ld`, `batch`
/// of them `stride` elements apart.
fn layout(
    ty: sys::cudaDataType_t,
    rows: usize,
    cols: usize,
    batch: usize,
    stride: i64,
) -> Result<Layout> {
    let mut l = std::ptr::null_mut();
    // SAFETY: `l` is valid for writes.
    check("describing a matrix", unsafe {
        sys::cublasLtMatrixLayoutCreate(&mut l, ty, rows as u64, cols as u64, rows as i64)
    })?;
    let l = Layout(l);
    if batch > 1 {
        let count = i32::try_from(batch)
            .map_err(|_| Error::Device(format!("cuBLASLt: a batch of {batch} matrices")))?;
        use sys::cublasLtMatrixLayoutAttribute_t as A;
        layout_attr(&l, A::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count)?;
        layout_attr(&l, A::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride)?;
    }
    Ok(l)
}

/// The key a geometry's choice is recorded under.
fn key(lt: &Lt, s: &GemmShape, bias: bool, workspace_limit: usize) -> String {
    format!(
        "cublasLt {} {} m{} n{} k{} t{}{} s{},{} b{} {} ws{}",
        lt.version,
        s.dtype,
        s.m,
        s.n,
        s.k,
        u8::from(s.a_transposed),
        u8::from(s.b_transposed),
        s.strides[0],
        s.strides[1],
        s.batch,
        if bias { "bias" } else { "plain" },
        workspace_limit
    )
}

impl Gemm {
    /// Plans `s`, adding `bias` (one float32 value per column) in the
    /// epilogue when given. None when cuBLASLt offers no algorithm for it
    /// (the caller runs cuBLAS's `GemmEx` instead). The algorithm is the
    /// one `tactics` records, else the fastest candidate when `tactics`
    /// times (a build), else the heuristics' first.
    pub fn plan(
        lt: &Lt,
        stream: CUstream,
        s: &GemmShape,
        bias: Option<u64>,
        workspace: (u64, usize),
        tactics: &mut Tactics,
    ) -> Result<Option<Gemm>> {
        lt.gpu.bind()?;
        let ty = cuda_type(s.dtype)?;
        let mut d = std::ptr::null_mut();
        // SAFETY: `d` is valid for writes. Accumulation and alpha/beta are
        // float32 for both storage types.
        check("describing a product", unsafe {
            sys::cublasLtMatmulDescCreate(
                &mut d,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cudaDataType_t::CUDA_R_32F,
            )
        })?;
        let desc = Desc(d);
        use sys::cublasLtMatmulDescAttributes_t as D;
        // Column-major, D^T = B^T A^T: B is cuBLASLt's A. A row-major R x C
        // matrix is its column-major transpose with leading dim C.
        let op = |t: bool| i32::from(t); // CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
        desc_attr(&desc, D::CUBLASLT_MATMUL_DESC_TRANSA, &op(s.b_transposed))?;
        desc_attr(&desc, D::CUBLASLT_MATMUL_DESC_TRANSB, &op(s.a_transposed))?;
        if let Some(ptr) = bias {
            let epi = sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS;
            desc_attr(&desc, D::CUBLASLT_MATMUL_DESC_EPILOGUE, &epi)?;
            let p = ptr as usize as *const c_void;
            desc_attr(&desc, D::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p)?;
            desc_attr(
                &desc,
                D::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                &sys::cudaDataType_t::CUDA_R_32F,
            )?;
        }
        let (bl, al) = (
            if s.b_transposed {
                layout(ty, s.k, s.n, s.batch, s.strides[1])?
            } else {
                layout(ty, s.n, s.k, s.batch, s.strides[1])?
            },
            if s.a_transposed {
                layout(ty, s.m, s.k, s.batch, s.strides[0])?
            } else {
                layout(ty, s.k, s.m, s.batch, s.strides[0])?
            },
        );
        let dl = layout(ty, s.n, s.m, s.batch, (s.m * s.n) as i64)?;
        let mut p = std::ptr::null_mut();
        // SAFETY: `p` is valid for writes.
        check("creating a preference", unsafe {
            sys::cublasLtMatmulPreferenceCreate(&mut p)
        })?;
        let pref = Pref(p);
        let limit = workspace.1 as u64;
        // SAFETY: a live preference; the attribute is a u64.
        check("limiting the workspace", unsafe {
            sys::cublasLtMatmulPreferenceSetAttribute(
                pref.0,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&limit as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        })?;
        // SAFETY: plain data cuBLASLt fills in.
        let mut found: [sys::cublasLtMatmulHeuristicResult_t; CANDIDATES] =
            unsafe { std::mem::zeroed() };
        let mut n: i32 = 0;
        // SAFETY: live descriptors; `found` holds CANDIDATES results.
        let s_ = unsafe {
            sys::cublasLtMatmulAlgoGetHeuristic(
                lt.handle,
                desc.0,
                bl.0,
                al.0,
                dl.0,
                dl.0,
                pref.0,
                CANDIDATES as i32,
                found.as_mut_ptr(),
                &mut n,
            )
        };
        if s_ != sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            // NOT_SUPPORTED: no algorithm for this geometry or bias type.
            log::debug!(
                "cuBLASLt offers no algorithm for {s:?} (bias {}): {s_:?}",
                bias.is_some()
            );
            return Ok(None);
        }
        let candidates: Vec<(sys::cublasLtMatmulAlgo_t, usize)> = found
            [..(n.max(0) as usize).min(CANDIDATES)]
            .iter()
            .filter(|r| {
                r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS
                    && r.workspaceSize <= workspace.1
            })
            .map(|r| (r.algo, r.workspaceSize))
            .collect();
        let Some(&first) = candidates.first() else {
            return Ok(None);
        };
        let mut g = Gemm {
            desc,
            b: bl,
            a: al,
            d: dl,
            algo: first.0,
            workspace: first.1,
            bias: bias.is_some(),
        };
        let key = key(lt, s, bias.is_some(), workspace.1);
        let recorded = tactics
            .choice(&key)
            .and_then(|i| candidates.get(usize::try_from(i).ok()?).copied());
        let chosen = match (recorded, tactics.timer()) {
            (Some(c), _) => c,
            (None, Some(_)) if candidates.len() > 1 => {
                match g.fastest(lt, stream, s, &candidates, workspace, tactics) {
                    Ok(i) => {
                        tactics.record(key, i as i32);
                        tactics.timed += 1;
                        candidates[i]
                    }
                    Err(e) => {
                        log::warn!("cuBLASLt: timing the algorithms for {key} failed ({e}); taking the heuristics' first");
                        first
                    }
                }
            }
            _ => first,
        };
        g.algo = chosen.0;
        g.workspace = chosen.1;
        Ok(Some(g))
    }

    /// Times the candidates on scratch operands of the geometry and
    /// returns the fastest one's index ([`super::gate::pick`]); a candidate that
    /// fails is passed over.
    fn fastest(
        &mut self,
        lt: &Lt,
        stream: CUstream,
        s: &GemmShape,
        candidates: &[(sys::cublasLtMatmulAlgo_t, usize)],
        workspace: (u64, usize),
        tactics: &Tactics,
    ) -> Result<usize> {
        let Some(timer) = tactics.timer() else {
            return Err(Error::Device("no timer".into()));
        };
        let es = s.dtype.size();
        let span = |stride: i64, size: usize| {
            if s.batch > 1 && stride > 0 {
                stride as usize * (s.batch - 1) + size
            } else {
                size
            }
        };
        let a = DeviceBuf::new(
            &lt.gpu,
            span(s.strides[0], s.m * s.k) * es,
            "timing a product",
        )?;
        let b = DeviceBuf::new(
            &lt.gpu,
            span(s.strides[1], s.k * s.n) * es,
            "timing a product",
        )?;
        let d = DeviceBuf::new(&lt.gpu, s.batch * s.m * s.n * es, "timing a product")?;
        for buf in [&a, &b] {
            if buf.bytes > 0 {
                // SAFETY: the buffer holds buf.bytes bytes; zeros are a
                // valid value of either float type.
                cu("clearing a timing buffer", unsafe {
                    cudarc::driver::result::memset_d8_sync(buf.ptr, 0, buf.bytes)
                })?;
            }
        }
        let what = format!("cuBLASLt {}x{}x{} x{}", s.m, s.n, s.k, s.batch);
        let chosen = timer.fastest(stream, candidates.len(), &what, |i| {
            let (algo, need) = candidates[i];
            self.algo = algo;
            self.workspace = need;
            // SAFETY: the buffers hold the geometry's operands; the
            // workspace is the caller's, of workspace.1 >= need bytes.
            unsafe { self.run(lt, stream, [a.ptr, b.ptr], d.ptr, workspace.0) }
        });
        chosen
            .map(|(i, _)| i)
            .ok_or_else(|| Error::Device("no candidate algorithm ran".into()))
    }

    /// Enqueues `D = A B (+ bias)` on `stream`.
    ///
    /// # Safety
    /// `ab`'s A and B and `d` are device memory of the handle's context
    /// holding the planned operands, `workspace` at least the planned
    /// scratch, all alive until the stream runs; the bias planned is alive
    /// too.
    pub unsafe fn run(
        &self,
        lt: &Lt,
        stream: CUstream,
        ab: [u64; 2],
        d: u64,
        workspace: u64,
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let dp = d as usize as *mut c_void;
        // SAFETY: the caller guarantees the operands; alpha and beta are
        // float32 host scalars (the descriptor's scale type). C is D with
        // beta 0: cuBLASLt reads nothing from it.
        check("a matrix product", unsafe {
            sys::cublasLtMatmul(
                lt.handle,
                self.desc.0,
                (&alpha as *const f32).cast(),
                ab[1] as usize as *const c_void,
                self.b.0,
                ab[0] as usize as *const c_void,
                self.a.0,
                (&beta as *const f32).cast(),
                dp,
                self.d.0,
                dp,
                self.d.0,
                &self.algo,
                workspace as usize as *mut c_void,
                self.workspace,
                stream as sys::cudaStream_t,
            )
        })
    }
}
