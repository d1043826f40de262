//! Identity (a copy on the stream) and Einsum (einsum.cu).

use super::{Arg, Builder, Kernel, PlanCx, RunCx};
use crate::backend::cuda::device::cu;
use crate::backend::cuda::launch::{grid_for, launch, Func};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::einsum;
use cudarc::driver::result;
use std::collections::HashMap;

/// Copies `src` into `dst` (same bytes) on the stream.
pub fn copy_bytes(rc: &RunCx<'_>, src: &Arg, dst: &Arg) -> Result<()> {
    let bytes = src.len() * src.dtype.size();
    if bytes == 0 || src.ptr == dst.ptr {
        return Ok(());
    }
    // SAFETY: both are device buffers of at least `bytes` (the plan sized
    // them from the same dims and type), alive until the stream runs.
    cu("copying on the device", unsafe {
        result::memcpy_dtod_async(dst.ptr, src.ptr, bytes, rc.stream)
    })
}

/// Identity: the input's bytes, copied.
pub struct Copy;

impl Kernel for Copy {
    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        copy_bytes(rc, &ins[0], &outs[0])
    }
}

const MAX_OPS: usize = 4;
const MAX_LETTERS: usize = 12;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EinsumParams {
    out: u64,
    ops: [u64; MAX_OPS],
    n_out: i64,
    inner: i64,
    nops: i32,
    nout: i32,
    nletters: i32,
    dtype: i32,
    sizes: [i64; MAX_LETTERS],
    strides: [[i64; MAX_LETTERS]; MAX_OPS],
}
const _: () = assert!(std::mem::size_of::<EinsumParams>() == 552);

pub struct Einsum {
    f: Func,
    equation: String,
    p: EinsumParams,
}

impl Einsum {
    pub fn new(b: &Builder<'_>, equation: &str) -> Result<Self> {
        Ok(Einsum {
            f: b.func("einsum_sum")?,
            equation: equation.to_string(),
            p: EinsumParams::default(),
        })
    }
}

impl Kernel for Einsum {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let unsupported = |what: String| Error::Unsupported {
            backend: "cuda",
            what,
        };
        if ins.len() > MAX_OPS {
            return Err(unsupported(format!(
                "einsum of {} operands (at most {MAX_OPS})",
                ins.len()
            )));
        }
        let ranks: Vec<usize> = ins.iter().map(|a| a.dims.len()).collect();
        let e = einsum::parse(&self.equation, &ranks).map_err(Error::Network)?;
        let mut size: HashMap<char, usize> = HashMap::new();
        for (a, letters) in ins.iter().zip(&e.inputs) {
            for (&d, c) in a.dims.iter().zip(letters) {
                let s = size.entry(*c).or_insert(d);
                if *s == 1 {
                    *s = d;
                }
            }
        }
        let mut letters = e.output.clone();
        for l in e.inputs.iter().flatten() {
            if !letters.contains(l) {
                letters.push(*l);
            }
        }
        if letters.len() > MAX_LETTERS {
            return Err(unsupported(format!(
                "einsum over {} letters (at most {MAX_LETTERS})",
                letters.len()
            )));
        }
        let dtype = match ins.first().map(|a| a.dtype) {
            Some(DataType::F32) => 0,
            Some(DataType::F16) => 1,
            Some(DataType::I32) => 2,
            Some(DataType::I64) => 3,
            Some(DataType::U8) => 4,
            other => return Err(unsupported(format!("einsum of {other:?}"))),
        };
        let mut p = EinsumParams {
            n_out: outs[0].len() as i64,
            inner: letters[e.output.len()..]
                .iter()
                .map(|c| size[c])
                .product::<usize>() as i64,
            nops: ins.len() as i32,
            nout: e.output.len() as i32,
            nletters: letters.len() as i32,
            dtype,
            ..Default::default()
        };
        for (j, c) in letters.iter().enumerate() {
            p.sizes[j] = size[c] as i64;
        }
        for (k, (a, ls)) in ins.iter().zip(&e.inputs).enumerate() {
            let st = super::contiguous(&a.dims);
            for (j, c) in letters.iter().enumerate() {
                p.strides[k][j] = ls
                    .iter()
                    .enumerate()
                    .filter(|(i, l)| *l == c && a.dims[*i] != 1)
                    .map(|(i, _)| st[i])
                    .sum();
            }
        }
        self.p = p;
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.n_out == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        for (k, a) in ins.iter().enumerate() {
            self.p.ops[k] = a.ptr;
        }
        launch(rc.stream, self.f, grid_for(self.p.n_out as usize), &self.p)
    }
}
