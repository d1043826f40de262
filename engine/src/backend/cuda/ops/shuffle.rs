//! Shuffle (transpose, reshape, transpose), Concatenation and Slice: data
//! movement through copy.cu's strided and table-driven copies.

use super::{contiguous, dims8, strides8, Arg, Builder, Dims, Kernel, PlanCx, RunCx, MAX_RANK};
use crate::backend::cuda::launch::{grid_for, launch, sized, Func};
use crate::backend::cuda::layout::Role;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::axis_map::slice_source;
use crate::ir::{Layer, ShuffleParams, SliceParams};

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CopyParams {
    pub dst: u64,
    pub src: u64,
    pub n: i64,
    pub dst_offset: i64,
    pub src_offset: i64,
    pub dims: Dims,
    pub dst_strides: [i64; MAX_RANK],
    pub src_strides: [i64; MAX_RANK],
}
const _: () = assert!(std::mem::size_of::<CopyParams>() == 240);

/// Where a planned copy reads or writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Input(usize),
    Output,
    Scratch,
}

/// One strided copy of a plan.
#[derive(Clone, Copy, Debug)]
struct Move {
    from: End,
    to: End,
    p: CopyParams,
}

fn run_moves(rc: &RunCx<'_>, f: Func, moves: &mut [Move], ins: &[Arg], out: &Arg) -> Result<()> {
    let at = |e: End| match e {
        End::Input(k) => ins[k].ptr,
        End::Output => out.ptr,
        End::Scratch => rc.workspace,
    };
    for m in moves.iter_mut() {
        if m.p.n == 0 {
            continue;
        }
        m.p.src = at(m.from);
        m.p.dst = at(m.to);
        launch(rc.stream, f, grid_for(m.p.n as usize), &m.p)?;
    }
    Ok(())
}

fn is_identity(perm: &Option<Vec<usize>>) -> bool {
    perm.as_ref()
        .is_none_or(|p| p.iter().enumerate().all(|(i, &q)| i == q))
}

/// A transpose of a contiguous tensor of dims `dims` by `perm`.
fn transpose(dims: &[usize], perm: &[usize], from: End, to: End) -> Result<Move> {
    let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let src = contiguous(dims);
    let src_perm: Vec<i64> = perm.iter().map(|&p| src[p]).collect();
    Ok(Move {
        from,
        to,
        p: CopyParams {
            n: out.iter().product::<usize>() as i64,
            dims: dims8(&out)?,
            dst_strides: strides8(&contiguous(&out)),
            src_strides: strides8(&src_perm),
            ..Default::default()
        },
    })
}

pub struct Shuffle {
    f: Func,
    first: Option<Vec<usize>>,
    second: Option<Vec<usize>>,
    moves: Vec<Move>,
}

impl Shuffle {
    pub fn new(b: &Builder<'_>, l: &Layer, p: &ShuffleParams) -> Result<Self> {
        let dt = b.storage(b.net.info(l.inputs[0]).dtype);
        Ok(Shuffle {
            f: b.func(&sized("copy_strided", dt))?,
            first: (!is_identity(&p.first_transpose))
                .then(|| p.first_transpose.clone())
                .flatten(),
            second: (!is_identity(&p.second_transpose))
                .then(|| p.second_transpose.clone())
                .flatten(),
            moves: Vec::new(),
        })
    }
}

/// The permutes between a 4-D tensor's channels-first dims and
/// `[N, H, W, C]` (`layout.rs`): over channels-last storage, the
/// permuted tensor has the same bytes.
pub fn layout_role(p: &ShuffleParams) -> Role {
    if p.reshape.is_some() || !is_identity(&p.second_transpose) {
        return Role::Fixed;
    }
    match p.first_transpose.as_deref() {
        Some([0, 2, 3, 1]) => Role::ToLast,
        Some([0, 3, 1, 2]) => Role::FromLast,
        _ => Role::Fixed,
    }
}

/// A shuffle whose output always has its input's bytes: no transpose
/// (or identity ones), only new dims.
pub fn is_reshape(p: &ShuffleParams) -> bool {
    is_identity(&p.first_transpose) && is_identity(&p.second_transpose)
}

impl Kernel for Shuffle {
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let x = &ins[0].dims;
        let out = &outs[0].dims;
        self.moves.clear();
        match (&self.first, &self.second) {
            (None, None) => {}
            (Some(p1), None) => self
                .moves
                .push(transpose(x, p1, End::Input(0), End::Output)?),
            (None, Some(p2)) => {
                // The reshaped dims: the output's, un-permuted.
                let mut mid = vec![0; out.len()];
                for (i, &p) in p2.iter().enumerate() {
                    mid[p] = out[i];
                }
                self.moves
                    .push(transpose(&mid, p2, End::Input(0), End::Output)?);
            }
            (Some(p1), Some(p2)) => {
                pc.need_workspace(ins[0].len() * ins[0].dtype.size());
                self.moves
                    .push(transpose(x, p1, End::Input(0), End::Scratch)?);
                let mut mid = vec![0; out.len()];
                for (i, &p) in p2.iter().enumerate() {
                    mid[p] = out[i];
                }
                self.moves
                    .push(transpose(&mid, p2, End::Scratch, End::Output)?);
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.moves.is_empty() {
            return super::misc::copy_bytes(rc, &ins[0], &outs[0]);
        }
        run_moves(rc, self.f, &mut self.moves, ins, &outs[0])
    }
}

/// Inputs one concatenation launch takes (copy.cu's CONCAT_MAX).
const CONCAT_MAX: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ConcatParams {
    dst: u64,
    n: i64,
    outer: i64,
    total: i64,
    inner: i64,
    first: i64,
    span: i64,
    count: i32,
    pad: i32,
    src: [u64; CONCAT_MAX],
    start: [i64; CONCAT_MAX + 1],
}
const _: () = assert!(std::mem::size_of::<ConcatParams>() == 584);

/// One launch per [`CONCAT_MAX`] inputs; the pointers are filled in when
/// enqueued (a bound network input may move between runs).
///
/// The kernel copies whole units of up to 16 bytes: an input's part of an
/// output row (`extent * inner` elements) is contiguous on both sides, so
/// where every part is a multiple of the unit the concatenation is one of
/// rows of units (DenseNet's channels-last concatenations of 32-channel
/// float16 parts move 16 bytes a thread instead of 2).
pub struct Concat {
    /// The kernel of each unit width in bytes: the element's and wider
    /// (the element's first).
    funcs: Vec<(usize, Func)>,
    esize: usize,
    axis: usize,
    /// The launches in elements.
    launches: ConcatLaunches,
    /// The same in the widest unit the parts allow, with its width and
    /// kernel, where wider than an element; taken when every pointer is
    /// aligned to it.
    wide: Option<(usize, Func, ConcatLaunches)>,
}

/// A concatenation's launches: each one's parameters and the inputs it
/// reads, first to last.
type ConcatLaunches = Vec<(ConcatParams, std::ops::Range<usize>)>;

/// The unit widths the concat kernels take, widest first.
const CONCAT_UNITS: [usize; 5] = [16, 8, 4, 2, 1];

impl Concat {
    pub fn new(b: &Builder<'_>, l: &Layer, axis: usize) -> Result<Self> {
        let esize = b.storage(b.net.info(l.inputs[0]).dtype).size();
        let funcs = CONCAT_UNITS
            .iter()
            .rev()
            .filter(|&&w| w >= esize)
            .map(|&w| Ok((w, b.func(&format!("concat_{w}"))?)))
            .collect::<Result<_>>()?;
        Ok(Concat {
            funcs,
            esize,
            axis,
            launches: Vec::new(),
            wide: None,
        })
    }
}

/// The widest unit (at least `esize` bytes) dividing every part of
/// `part_bytes`, when wider than `esize`.
fn concat_unit(part_bytes: &[usize], esize: usize) -> Option<usize> {
    CONCAT_UNITS
        .into_iter()
        .find(|&w| w >= esize && part_bytes.iter().all(|b| b % w == 0))
        .filter(|&w| w > esize)
}

/// The launches concatenating inputs of `extents` along an axis of a
/// [`outer`, sum(extents), `inner`] output.
fn concat_launches(extents: &[usize], outer: usize, inner: usize) -> ConcatLaunches {
    let total: usize = extents.iter().sum();
    let mut out = Vec::new();
    let mut first = 0usize;
    for (c, chunk) in extents.chunks(CONCAT_MAX).enumerate() {
        let mut start = [0i64; CONCAT_MAX + 1];
        for (j, &e) in chunk.iter().enumerate() {
            start[j + 1] = start[j] + e as i64;
        }
        let span: usize = chunk.iter().sum();
        let from = c * CONCAT_MAX;
        out.push((
            ConcatParams {
                dst: 0,
                n: (outer * span * inner) as i64,
                outer: outer as i64,
                total: total as i64,
                inner: inner as i64,
                first: first as i64,
                span: span as i64,
                count: chunk.len() as i32,
                pad: 0,
                src: [0; CONCAT_MAX],
                start,
            },
            from..from + chunk.len(),
        ));
        first += span;
    }
    out
}

impl Kernel for Concat {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let out = &outs[0].dims;
        let outer: usize = out[..self.axis].iter().product();
        let inner: usize = out[self.axis + 1..].iter().product();
        let extents: Vec<usize> = ins.iter().map(|a| a.dims[self.axis]).collect();
        self.launches = concat_launches(&extents, outer, inner);
        let parts: Vec<usize> = extents.iter().map(|e| e * inner * self.esize).collect();
        self.wide = match concat_unit(&parts, self.esize) {
            Some(w) => {
                let f = self
                    .funcs
                    .iter()
                    .find(|f| f.0 == w)
                    .map(|f| f.1)
                    .ok_or_else(|| Error::Device(format!("no concat kernel of {w}-byte units")))?;
                let units: Vec<usize> = parts.iter().map(|b| b / w).collect();
                Some((w, f, concat_launches(&units, outer, 1)))
            }
            None => None,
        };
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        // Arena tensors are aligned far past 16 bytes; a pointer bound from
        // outside need not be, and then runs in elements.
        let (f, launches) = match &mut self.wide {
            Some((w, f, l))
                if std::iter::once(&outs[0])
                    .chain(ins)
                    .all(|a| a.ptr % *w as u64 == 0) =>
            {
                (*f, l)
            }
            _ => (self.funcs[0].1, &mut self.launches),
        };
        for (p, range) in launches.iter_mut() {
            if p.n == 0 {
                continue;
            }
            p.dst = outs[0].ptr;
            for (j, a) in ins[range.clone()].iter().enumerate() {
                p.src[j] = a.ptr;
            }
            launch(rc.stream, f, grid_for(p.n as usize), p)?;
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TableParams {
    pub dst: u64,
    pub src: u64,
    pub tables: u64,
    pub n: i64,
    pub fill: u64,
    pub dims: Dims,
    pub table_offset: [i64; MAX_RANK],
    pub src_strides: [i64; MAX_RANK],
}
const _: () = assert!(std::mem::size_of::<TableParams>() == 240);

/// The bits of `v` as an element of `dt`, the way the cpu backend
/// converts a slice's fill value.
pub fn fill_bits(dt: DataType, v: f64) -> u64 {
    match dt {
        DataType::F32 => (v as f32).to_bits() as u64,
        DataType::F16 => half::f16::from_f64(v).to_bits() as u64,
        DataType::I32 => (v as i32) as u32 as u64,
        DataType::I64 => (v as i64) as u64,
        DataType::U8 => (v as u8) as u64,
        DataType::Bool => (v != 0.0) as u64,
    }
}

/// Per-axis source indices (-1: fill) as one table of i64s, and where
/// each axis's part starts.
pub fn pack_tables(maps: &[Vec<Option<usize>>]) -> (Vec<u8>, [i64; MAX_RANK]) {
    let mut offs = [0i64; MAX_RANK];
    let mut v: Vec<i64> = Vec::new();
    for (k, m) in maps.iter().enumerate() {
        offs[k] = v.len() as i64;
        v.extend(m.iter().map(|s| s.map_or(-1, |i| i as i64)));
    }
    (bytemuck::cast_slice(&v).to_vec(), offs)
}

enum SlicePlan {
    None,
    Strided(CopyParams),
    Table { p: TableParams, offset: usize },
}

pub struct Slice {
    strided: Func,
    table: Func,
    params: SliceParams,
    plan: SlicePlan,
}

impl Slice {
    pub fn new(b: &Builder<'_>, l: &Layer, p: &SliceParams) -> Result<Self> {
        let dt = b.storage(b.net.info(l.inputs[0]).dtype);
        Ok(Slice {
            strided: b.func(&sized("copy_strided", dt))?,
            table: b.func(&sized("copy_table", dt))?,
            params: p.clone(),
            plan: SlicePlan::None,
        })
    }
}

impl Kernel for Slice {
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let mut p = self.params.clone();
        if ins.len() == 4 {
            let value = |k: usize| -> Result<Vec<i64>> {
                pc.host_inputs
                    .get(k)
                    .and_then(|v| v.as_ref())
                    .map(|t| t.to_i64_vec())
                    .ok_or_else(|| {
                        Error::Network(format!(
                            "slice input {k} is computed from data; it must be known from the input dims"
                        ))
                    })
            };
            p.start = value(1)?;
            p.size = value(2)?
                .into_iter()
                .map(|v| {
                    usize::try_from(v)
                        .map_err(|_| Error::Network(format!("negative slice size {v}")))
                })
                .collect::<Result<_>>()?;
            p.stride = value(3)?;
        }
        let dims = &ins[0].dims;
        let r = dims.len();
        if p.start.len() != r || p.size.len() != r || p.stride.len() != r {
            return Err(Error::Network(format!(
                "slice of rank {} on a tensor of rank {r}",
                p.start.len()
            )));
        }
        let mut maps = Vec::with_capacity(r);
        for (d, &n) in dims.iter().enumerate() {
            let m: Vec<Option<usize>> = (0..p.size[d])
                .map(|i| slice_source(p.mode, p.start[d], p.stride[d], i, n))
                .collect::<std::result::Result<_, _>>()
                .map_err(Error::Network)?;
            maps.push(m);
        }
        let s = contiguous(dims);
        let n = outs[0].len() as i64;
        // Every position inside the input: an arithmetic walk, a strided copy.
        let inside = (0..r).all(|d| {
            (0..p.size[d]).all(|i| {
                let pos = p.start[d] + i as i64 * p.stride[d];
                (0..dims[d] as i64).contains(&pos)
            })
        });
        self.plan = if inside {
            SlicePlan::Strided(CopyParams {
                n,
                src_offset: (0..r)
                    .filter(|&d| p.size[d] > 0)
                    .map(|d| p.start[d] * s[d])
                    .sum(),
                dims: dims8(&p.size)?,
                dst_strides: strides8(&contiguous(&p.size)),
                src_strides: strides8(&(0..r).map(|d| p.stride[d] * s[d]).collect::<Vec<_>>()),
                ..Default::default()
            })
        } else {
            let (bytes, table_offset) = pack_tables(&maps);
            SlicePlan::Table {
                offset: pc.params.push(&bytes),
                p: TableParams {
                    n,
                    fill: fill_bits(ins[0].dtype, p.fill),
                    dims: dims8(&p.size)?,
                    table_offset,
                    src_strides: strides8(&s),
                    ..Default::default()
                },
            }
        };
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        match &mut self.plan {
            SlicePlan::None => Err(Error::Network("a Slice ran before it was planned".into())),
            SlicePlan::Strided(p) => {
                if p.n == 0 {
                    return Ok(());
                }
                p.src = ins[0].ptr;
                p.dst = outs[0].ptr;
                launch(rc.stream, self.strided, grid_for(p.n as usize), p)
            }
            SlicePlan::Table { p, offset } => {
                if p.n == 0 {
                    return Ok(());
                }
                p.src = ins[0].ptr;
                p.dst = outs[0].ptr;
                p.tables = rc.params + *offset as u64;
                launch(rc.stream, self.table, grid_for(p.n as usize), p)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs split into launches of at most CONCAT_MAX, each covering
    /// its inputs' span of the axis from where the last one ended.
    #[test]
    fn a_concatenation_of_many_inputs_is_few_launches() {
        let extents: Vec<usize> = (0..70).map(|j| 1 + j % 3).collect();
        let l = concat_launches(&extents, 2, 49);
        assert_eq!(l.len(), 3);
        let total: usize = extents.iter().sum();
        let mut first = 0i64;
        for (k, (p, range)) in l.iter().enumerate() {
            let chunk = &extents[range.clone()];
            assert_eq!(range.start, k * CONCAT_MAX);
            assert_eq!(p.count as usize, chunk.len());
            assert_eq!(p.first, first);
            assert_eq!(p.total, total as i64);
            assert_eq!(p.start[p.count as usize], p.span);
            for (j, &e) in chunk.iter().enumerate() {
                assert_eq!(p.start[j + 1] - p.start[j], e as i64);
            }
            assert_eq!(p.n, 2 * p.span * 49);
            first += p.span;
        }
        assert_eq!(first, total as i64);
    }

    /// The widest unit dividing every part, never narrower than an
    /// element, and none when no wider one does.
    #[test]
    fn concatenation_units_divide_every_part() {
        // DenseNet channels-last, float16: 64 then 32 channels a row.
        assert_eq!(concat_unit(&[128, 64, 64], 2), Some(16));
        assert_eq!(concat_unit(&[24, 8], 4), Some(8));
        assert_eq!(concat_unit(&[12, 8], 4), None);
        assert_eq!(concat_unit(&[6, 4], 2), None);
        assert_eq!(concat_unit(&[0, 32], 1), Some(16));
        assert_eq!(concat_unit(&[16, 16], 16), None);
    }
}
