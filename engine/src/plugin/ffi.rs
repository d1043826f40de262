//! The C ABI of `plugins-cpp/include/jetrt_plugin.h`, mirrored by hand:
//! every struct is `#[repr(C)]` with the header's field order and types
//! (the layout test below pins the sizes).

use std::ffi::{c_char, c_void};

pub const ABI_VERSION: u32 = 2;
pub const MAX_RANK: usize = 8;
pub const ERROR_MESSAGE_SIZE: usize = 512;

pub const OK: i32 = 0;
pub const ERROR_BUFFER_TOO_SMALL: i32 = 3;

pub const DTYPE_F32: i32 = 1;
pub const DTYPE_F16: i32 = 2;
pub const DTYPE_I32: i32 = 3;
pub const DTYPE_I64: i32 = 4;
pub const DTYPE_U8: i32 = 5;
pub const DTYPE_BOOL: i32 = 6;

pub const DEVICE_CPU: i32 = 0;
pub const DEVICE_CUDA: i32 = 1;

pub const FIELD_INT: i32 = 1;
pub const FIELD_FLOAT: i32 = 2;
pub const FIELD_STRING: i32 = 3;
pub const FIELD_INTS: i32 = 4;
pub const FIELD_FLOATS: i32 = 5;

pub const DIM_UNKNOWN: i64 = -1;
pub const DIM_DATA_DEPENDENT: i64 = -2;

#[repr(C)]
pub struct Field {
    pub name: *const c_char,
    pub kind: i32,
    pub reserved: i32,
    pub count: i64,
    pub i: i64,
    pub f: f64,
    pub s: *const c_char,
    pub ints: *const i64,
    pub floats: *const f64,
}

#[repr(C)]
pub struct ErrorBuf {
    pub message: [c_char; ERROR_MESSAGE_SIZE],
}

impl ErrorBuf {
    pub fn new() -> Self {
        ErrorBuf {
            message: [0; ERROR_MESSAGE_SIZE],
        }
    }

    /// The message up to its NUL (or the whole buffer if the plugin wrote none).
    pub fn text(&self) -> String {
        let bytes: Vec<u8> = self
            .message
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        let s = String::from_utf8_lossy(&bytes).trim().to_string();
        if s.is_empty() {
            "(the plugin gave no message)".into()
        } else {
            s
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TensorDesc {
    pub struct_size: u32,
    pub dtype: i32,
    pub rank: i32,
    pub reserved: i32,
    pub dims: [i64; MAX_RANK],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct OutputDesc {
    pub struct_size: u32,
    pub dtype: i32,
    pub rank: i32,
    pub reserved: i32,
    pub dims: [i64; MAX_RANK],
    pub bounds: [i64; MAX_RANK],
    pub same_as_input: [i32; MAX_RANK],
    pub same_as_axis: [i32; MAX_RANK],
}

impl OutputDesc {
    /// What jetrt passes in: zeros, the size, and no dim tied to an input.
    pub fn blank() -> Self {
        OutputDesc {
            struct_size: std::mem::size_of::<OutputDesc>() as u32,
            dtype: 0,
            rank: 0,
            reserved: 0,
            dims: [0; MAX_RANK],
            bounds: [0; MAX_RANK],
            same_as_input: [-1; MAX_RANK],
            same_as_axis: [0; MAX_RANK],
        }
    }
}

#[repr(C)]
pub struct Tensor {
    pub struct_size: u32,
    pub dtype: i32,
    pub rank: i32,
    pub reserved: i32,
    pub dims: [i64; MAX_RANK],
    pub data: *mut c_void,
}

pub type CreateFn = unsafe extern "C" fn(*const Field, i32, *mut *mut c_void, *mut ErrorBuf) -> i32;
pub type DeserializeFn =
    unsafe extern "C" fn(*const u8, u64, *mut *mut c_void, *mut ErrorBuf) -> i32;
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);
pub type SerializeFn =
    unsafe extern "C" fn(*const c_void, *mut u8, u64, *mut u64, *mut ErrorBuf) -> i32;
pub type InferFn = unsafe extern "C" fn(
    *const c_void,
    *const TensorDesc,
    i32,
    *mut OutputDesc,
    i32,
    *mut i32,
    *mut ErrorBuf,
) -> i32;
pub type WorkspaceFn = unsafe extern "C" fn(
    *const c_void,
    *const TensorDesc,
    i32,
    i32,
    *mut u64,
    *mut ErrorBuf,
) -> i32;
pub type RunCpuFn = unsafe extern "C" fn(
    *mut c_void,
    *const Tensor,
    i32,
    *mut Tensor,
    i32,
    *mut c_void,
    u64,
    *mut ErrorBuf,
) -> i32;
pub type RunCudaFn = unsafe extern "C" fn(
    *mut c_void,
    *const Tensor,
    i32,
    *mut Tensor,
    i32,
    *mut c_void,
    u64,
    *mut c_void,
    *mut ErrorBuf,
) -> i32;

#[repr(C)]
pub struct Descriptor {
    pub struct_size: u32,
    pub abi_version: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
    pub create: Option<CreateFn>,
    pub deserialize: Option<DeserializeFn>,
    pub destroy: Option<DestroyFn>,
    pub serialize: Option<SerializeFn>,
    pub infer_outputs: Option<InferFn>,
    pub workspace_size: Option<WorkspaceFn>,
    pub run_cpu: Option<RunCpuFn>,
    pub run_cuda: Option<RunCudaFn>,
}

pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
pub type ListFn = unsafe extern "C" fn(*mut u32) -> *const *const Descriptor;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn layouts_match_the_header_on_64_bit_targets() {
        if size_of::<usize>() != 8 {
            return;
        }
        assert_eq!(size_of::<Field>(), 64);
        assert_eq!(size_of::<TensorDesc>(), 16 + 64);
        assert_eq!(size_of::<OutputDesc>(), 16 + 64 + 64 + 32 + 32);
        assert_eq!(size_of::<Tensor>(), 16 + 64 + 8);
        assert_eq!(size_of::<Descriptor>(), 8 + 3 * 8 + 8 * 8);
    }
}
