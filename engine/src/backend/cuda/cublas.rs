//! Matrix products through cuBLAS, one handle per execution context on
//! its stream.

use super::cublaslt::Lt;
use super::device::{DeviceBuf, Gpu};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use cudarc::cublas::sys;
use cudarc::driver::sys::CUstream;
use std::ffi::c_void;
use std::sync::Arc;

/// cuBLAS entry points the backend calls.
pub const SYMBOLS: &[&str] = &[
    "cublasCreate_v2",
    "cublasDestroy_v2",
    "cublasSetStream_v2",
    "cublasSetMathMode",
    "cublasSetWorkspace_v2",
    "cublasGemmStridedBatchedEx",
];

fn check(what: &str, s: sys::cublasStatus_t) -> Result<()> {
    if s == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Device(format!("cuBLAS: {what}: {s:?}")))
    }
}

pub struct Blas {
    gpu: Arc<Gpu>,
    handle: sys::cublasHandle_t,
    /// cuBLASLt on the same context, for products planned through it
    /// (`cublaslt.rs`); it shares the scratch below (one call at a time on
    /// the one stream).
    pub lt: Lt,
    pub stream: CUstream,
    /// cuBLAS's scratch, given to it so that it never allocates during a
    /// run (which a CUDA graph capture would not allow).
    _workspace: DeviceBuf,
}

/// Scratch for cuBLAS, as NVIDIA recommends: 32 MiB on Hopper and newer,
/// 4 MiB on earlier GPUs (a Jetson's memory is shared with the CPU).
fn workspace_bytes(gpu: &Gpu) -> usize {
    if gpu.arch.0 >= 9 {
        32 << 20
    } else {
        4 << 20
    }
}

// SAFETY: a cuBLAS handle may be used from any thread, one call at a time;
// its owner (one executor) is not shared.
unsafe impl Send for Blas {}

/// One operand of a row-major product as stored.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub ptr: u64,
    /// Stored transposed (the IR's `MatrixOp::Transpose`).
    pub transposed: bool,
    /// Elements between consecutive matrices of a batch (0: broadcast).
    pub stride: i64,
}

impl Blas {
    /// A handle on `stream`; float32 products stay float32 (no TF32).
    pub fn new(gpu: &Arc<Gpu>, stream: CUstream) -> Result<Self> {
        gpu.bind()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` is valid for writes; the context is bound.
        check("creating a handle", unsafe {
            sys::cublasCreate_v2(&mut handle)
        })?;
        let b = Blas {
            gpu: gpu.clone(),
            handle,
            lt: Lt::new(gpu)?,
            stream,
            _workspace: DeviceBuf::new(gpu, workspace_bytes(gpu), "cuBLAS scratch")?,
        };
        // SAFETY: a live handle and a device buffer of that many bytes that
        // lives as long as the handle (dropped after it).
        check("setting the workspace", unsafe {
            sys::cublasSetWorkspace_v2(
                b.handle,
                b._workspace.ptr as usize as *mut c_void,
                b._workspace.bytes,
            )
        })?;
        // SAFETY: a live handle and a stream of the same context.
        check("setting the stream", unsafe {
            sys::cublasSetStream_v2(b.handle, stream as sys::cudaStream_t)
        })?;
        // SAFETY: a live handle. The default math mode computes float32
        // products in float32; half products use tensor cores regardless.
        check("setting the math mode", unsafe {
            sys::cublasSetMathMode(b.handle, sys::cublasMath_t::CUBLAS_DEFAULT_MATH)
        })?;
        Ok(b)
    }

    /// The scratch cuBLAS and cuBLASLt share: its address and bytes.
    pub fn workspace(&self) -> (u64, usize) {
        (self._workspace.ptr, self._workspace.bytes)
    }

    /// Row-major `C[i] = A[i] (m x k) * B[i] (k x n)` for `batch` matrices,
    /// accumulating in float32.
    ///
    /// # Safety
    /// Each pointer is device memory of the handle's context holding
    /// `batch` matrices at its stride (A: m x k or its transpose, B: k x n
    /// or its transpose, C: m x n contiguous), alive until the stream runs.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm(
        &self,
        dtype: DataType,
        m: usize,
        n: usize,
        k: usize,
        a: Operand,
        b: Operand,
        c: u64,
        batch: usize,
    ) -> Result<()> {
        let ty = match dtype {
            DataType::F32 => sys::cudaDataType_t::CUDA_R_32F,
            DataType::F16 => sys::cudaDataType_t::CUDA_R_16F,
            other => {
                return Err(Error::Unsupported {
                    backend: "cuda",
                    what: format!("matrix products of {other}"),
                })
            }
        };
        let int = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| {
                Error::Device(format!(
                    "cuBLAS: a matrix {what} of {v} exceeds its 32-bit range"
                ))
            })
        };
        let (mi, ni, ki, bi) = (
            int(m, "dim")?,
            int(n, "dim")?,
            int(k, "dim")?,
            int(batch, "batch")?,
        );
        // Column-major, C^T = B^T A^T: B goes first. A row-major R x C
        // matrix is its column-major transpose with leading dim C.
        let op = |t: bool| {
            if t {
                sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let ldb = if b.transposed { ki } else { ni };
        let lda = if a.transposed { mi } else { ki };
        let (alpha, beta) = (1.0f32, 0.0f32);
        self.gpu.bind()?;
        // SAFETY: the caller guarantees the operands; alpha and beta are
        // float32 host scalars, as CUBLAS_COMPUTE_32F reads them.
        check("a matrix product", unsafe {
            sys::cublasGemmStridedBatchedEx(
                self.handle,
                op(b.transposed),
                op(a.transposed),
                ni,
                mi,
                ki,
                (&alpha as *const f32).cast::<c_void>(),
                b.ptr as usize as *const c_void,
                ty,
                ldb,
                b.stride,
                a.ptr as usize as *const c_void,
                ty,
                lda,
                a.stride,
                (&beta as *const f32).cast::<c_void>(),
                c as usize as *mut c_void,
                ty,
                ni,
                (m * n) as i64,
                bi,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        })
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: created in `new` and destroyed once.
            let _ = unsafe { sys::cublasDestroy_v2(self.handle) };
        }
    }
}
