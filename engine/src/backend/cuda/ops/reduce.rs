//! Reduce, Softmax, Normalization, Cumulative and TopK (reduce.cu).

use super::{
    broadcast, contiguous, dims8, input_storage, strides8, Arg, Builder, Dims, Kernel, PlanCx,
    RunCx, MAX_RANK,
};
use crate::backend::cuda::launch::{self, grid_for, grid_rows, launch, typed, Func};
use crate::backend::norm_rows;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{Layer, ReduceOp, TopKOp};

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ReduceParams {
    out: u64,
    x: u64,
    n_out: i64,
    count: i64,
    keep: Dims,
    keep_strides: [i64; MAX_RANK],
    red: Dims,
    red_strides: [i64; MAX_RANK],
    op: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<ReduceParams>() == 312);

/// Dims and strides of `dims` split into those kept and those reduced.
fn split(
    dims: &[usize],
    reduced: &[usize],
) -> Result<(Dims, [i64; MAX_RANK], Dims, [i64; MAX_RANK])> {
    let s = contiguous(dims);
    let (mut kd, mut ks, mut rd, mut rs) = (vec![], vec![], vec![], vec![]);
    for (i, &n) in dims.iter().enumerate() {
        if reduced.contains(&i) {
            rd.push(n);
            rs.push(s[i]);
        } else {
            kd.push(n);
            ks.push(s[i]);
        }
    }
    // Reduced dims contiguous with the next reduced one are one dim: the
    // same elements in the same order, with less index arithmetic (a
    // global pooling's H and W become one dim of H * W).
    let (mut md, mut ms): (Vec<usize>, Vec<i64>) = (vec![], vec![]);
    for (n, st) in rd.into_iter().zip(rs) {
        match (md.last_mut(), ms.last_mut()) {
            (Some(pn), Some(ps)) if *ps == st * n as i64 => {
                *pn *= n;
                *ps = st;
            }
            _ => {
                md.push(n);
                ms.push(st);
            }
        }
    }
    Ok((dims8(&kd)?, strides8(&ks), dims8(&md)?, strides8(&ms)))
}

/// One block per output, or (`cols`, float data, when the innermost dim
/// is kept and the outputs fill a warp) one lane per output of a block's
/// 32, its warps splitting the reduced elements (reduce.cu).
pub struct Reduce {
    f: Func,
    cols: Option<Func>,
    axes: Vec<usize>,
    p: ReduceParams,
    by_cols: bool,
}

/// Outputs a block of the column kernel takes (reduce.cu's COL_LANES).
const COL_LANES: usize = 32;

impl Reduce {
    pub fn new(b: &Builder<'_>, l: &Layer, op: ReduceOp, axes: &[usize]) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        if dt == DataType::Bool && !matches!(op, ReduceOp::Max | ReduceOp::Min) {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: format!("{op:?} of bool tensors"),
            });
        }
        let code = match op {
            ReduceOp::Sum => 0,
            ReduceOp::Prod => 1,
            ReduceOp::Max => 2,
            ReduceOp::Min => 3,
            ReduceOp::Avg => 4,
        };
        let cols = if dt.is_float() {
            Some(b.func(&typed("reduce_cols", dt))?)
        } else {
            None
        };
        Ok(Reduce {
            f: b.func(&typed("reduce", dt))?,
            cols,
            axes: axes.to_vec(),
            p: ReduceParams {
                op: code,
                ..Default::default()
            },
            by_cols: false,
        })
    }
}

impl Kernel for Reduce {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let d = &ins[0].dims;
        let (keep, keep_strides, red, red_strides) = split(d, &self.axes)?;
        self.p.keep = keep;
        self.p.keep_strides = keep_strides;
        self.p.red = red;
        self.p.red_strides = red_strides;
        self.p.n_out = outs[0].len() as i64;
        self.p.count = self.axes.iter().map(|&a| d[a]).product::<usize>() as i64;
        let innermost_kept = !d.is_empty() && !self.axes.contains(&(d.len() - 1));
        self.by_cols = self.cols.is_some() && innermost_kept && outs[0].len() >= COL_LANES;
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.n_out == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.x = ins[0].ptr;
        match self.cols {
            Some(f) if self.by_cols => {
                let groups = (self.p.n_out as usize).div_ceil(COL_LANES);
                launch(rc.stream, f, grid_rows(groups), &self.p)
            }
            _ => launch(rc.stream, self.f, grid_rows(self.p.n_out as usize), &self.p),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SoftmaxParams {
    out: u64,
    x: u64,
    rows: i64,
    len: i64,
    inner: i64,
}
const _: () = assert!(std::mem::size_of::<SoftmaxParams>() == 40);

pub struct Softmax {
    f: Func,
    axis: usize,
    p: SoftmaxParams,
}

impl Softmax {
    pub fn new(b: &Builder<'_>, l: &Layer, axis: usize) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        Ok(Softmax {
            f: b.func(&typed("softmax", dt))?,
            axis,
            p: SoftmaxParams::default(),
        })
    }
}

impl Kernel for Softmax {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let d = &ins[0].dims;
        let outer: usize = d[..self.axis].iter().product();
        let inner: usize = d[self.axis + 1..].iter().product();
        self.p.rows = (outer * inner) as i64;
        self.p.len = d[self.axis] as i64;
        self.p.inner = inner.max(1) as i64;
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.rows == 0 || self.p.len == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.x = ins[0].ptr;
        launch(rc.stream, self.f, grid_rows(self.p.rows as usize), &self.p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct NormParams {
    out: u64,
    x: u64,
    scale: u64,
    bias: u64,
    groups: i64,
    count: i64,
    eps: f32,
    pad: i32,
    key: Dims,
    key_x: [i64; MAX_RANK],
    key_s: [i64; MAX_RANK],
    key_b: [i64; MAX_RANK],
    red: Dims,
    red_x: [i64; MAX_RANK],
    red_s: [i64; MAX_RANK],
    red_b: [i64; MAX_RANK],
}
const _: () = assert!(std::mem::size_of::<NormParams>() == 584);

/// Groups of at most this many values are normalized one warp each
/// (`norm_warp`), larger ones one block each.
const WARP_GROUP: i64 = 2048;

/// The row kernel's RowNormParams (reduce.cu).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RowNormParams {
    out: u64,
    x: u64,
    scale: u64,
    bias: u64,
    rows: i64,
    cols: i32,
    tpr: i32,
    eps: f32,
    scale_step: i32,
    bias_step: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<RowNormParams>() == 64);

/// Values a thread of the row kernel holds at most (its instances hold
/// 1, 2, 4 or 8).
const ROW_VALUES: usize = 8;

/// Threads per row and values per thread for `rows` rows of `cols`: as few
/// threads as hold a row in registers, then more (up to a block) while the
/// grid would have under 64k threads, so that few long rows still spread
/// over the GPU. None when a row does not fit a block's registers.
fn row_split(rows: usize, cols: usize) -> Option<(usize, usize)> {
    let block = launch::BLOCK as usize;
    if cols == 0 || cols > ROW_VALUES * block {
        return None;
    }
    let mut tpr = 1;
    while cols > ROW_VALUES * tpr {
        tpr *= 2;
    }
    while tpr < block && rows.saturating_mul(tpr) < 1 << 16 && cols > tpr {
        tpr *= 2;
    }
    Some((tpr, cols.div_ceil(tpr).next_power_of_two()))
}

/// A normalization as contiguous rows for the row kernel: its kernel, and
/// its parameters but for the pointers.
struct RowNorm {
    f: [Func; 4],
    p: Option<(usize, RowNormParams)>,
}

pub struct Norm {
    f: Func,
    /// The warp-per-group kernel.
    fw: Func,
    rows: RowNorm,
    axes: Vec<usize>,
    groups: usize,
    p: NormParams,
}

impl Norm {
    pub fn new(
        b: &Builder<'_>,
        l: &Layer,
        axes: &[usize],
        eps: f32,
        groups: usize,
    ) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        let row = |v: usize| b.func(&typed(&format!("row_norm{v}"), dt));
        Ok(Norm {
            f: b.func(&typed("norm", dt))?,
            fw: b.func(&typed("norm_warp", dt))?,
            rows: RowNorm {
                f: [row(1)?, row(2)?, row(4)?, row(8)?],
                p: None,
            },
            axes: axes.to_vec(),
            groups,
            p: NormParams {
                eps,
                ..Default::default()
            },
        })
    }
}

/// One dim of a statistics split: its size and its stride in x, scale, bias.
type Part = (usize, i64, i64, i64);
/// Dims of a split and their strides in x, scale and bias.
type Parts = (Dims, [i64; MAX_RANK], [i64; MAX_RANK], [i64; MAX_RANK]);

fn parts(v: &[Part]) -> Result<Parts> {
    let d: Vec<usize> = v.iter().map(|p| p.0).collect();
    let pick = |f: fn(&Part) -> i64| strides8(&v.iter().map(f).collect::<Vec<_>>());
    Ok((dims8(&d)?, pick(|p| p.1), pick(|p| p.2), pick(|p| p.3)))
}

impl Kernel for Norm {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let d = &ins[0].dims;
        let sx = contiguous(d);
        let ss = broadcast(&ins[1].dims, d);
        let sb = broadcast(&ins[2].dims, d);
        let grouped = self.groups > 1 && d.len() > 1 && !self.axes.contains(&1);
        let (mut key, mut red): (Vec<Part>, Vec<Part>) = (vec![], vec![]);
        for i in 0..d.len() {
            if grouped && i == 1 {
                let cpg = d[1] / self.groups;
                let c = cpg as i64;
                key.push((self.groups, c * sx[1], c * ss[1], c * sb[1]));
                red.push((cpg, sx[1], ss[1], sb[1]));
            } else if self.axes.contains(&i) {
                red.push((d[i], sx[i], ss[i], sb[i]));
            } else {
                key.push((d[i], sx[i], ss[i], sb[i]));
            }
        }
        if key.len() > MAX_RANK || red.len() > MAX_RANK {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: "a normalization over so many dims".into(),
            });
        }
        let (kd, kx, ks, kb) = parts(&key)?;
        let (rd, rx, rs, rb) = parts(&red)?;
        self.p.key = kd;
        self.p.key_x = kx;
        self.p.key_s = ks;
        self.p.key_b = kb;
        self.p.red = rd;
        self.p.red_x = rx;
        self.p.red_s = rs;
        self.p.red_b = rb;
        self.p.groups = key.iter().map(|p| p.0).product::<usize>() as i64;
        self.p.count = red.iter().map(|p| p.0).product::<usize>() as i64;
        self.rows.p = None;
        // Normalized over trailing dims (LayerNorm): contiguous rows.
        let generic = std::env::var("JETRT_CUDA_NORM").is_ok_and(|v| v == "generic");
        let as_rows = norm_rows::rows(d, &self.axes, self.groups, &ins[1].dims, &ins[2].dims);
        if let (Some(r), false) = (as_rows, generic) {
            if let Some((tpr, v)) = row_split(r.rows, r.cols) {
                let p = RowNormParams {
                    rows: r.rows as i64,
                    cols: r.cols as i32,
                    tpr: tpr as i32,
                    eps: self.p.eps,
                    scale_step: r.scale_step as i32,
                    bias_step: r.bias_step as i32,
                    ..Default::default()
                };
                self.rows.p = Some((v.trailing_zeros() as usize, p));
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.groups == 0 || self.p.count == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.x = ins[0].ptr;
        self.p.scale = ins[1].ptr;
        self.p.bias = ins[2].ptr;
        if let Some((f, p)) = &mut self.rows.p {
            p.out = outs[0].ptr;
            p.x = ins[0].ptr;
            p.scale = ins[1].ptr;
            p.bias = ins[2].ptr;
            let blocks = (p.rows as usize).div_ceil(launch::BLOCK as usize / p.tpr as usize);
            launch(rc.stream, self.rows.f[*f], grid_rows(blocks), p)
        } else if self.p.count <= WARP_GROUP {
            let per_block = (launch::BLOCK / 32) as usize;
            let blocks = (self.p.groups as usize).div_ceil(per_block);
            launch(rc.stream, self.fw, grid_rows(blocks), &self.p)
        } else {
            launch(
                rc.stream,
                self.f,
                grid_rows(self.p.groups as usize),
                &self.p,
            )
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CumParams {
    out: u64,
    x: u64,
    lines: i64,
    n: i64,
    inner: i64,
    exclusive: i32,
    reverse: i32,
    product: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<CumParams>() == 56);

pub struct Cumulative {
    f: Func,
    axis: usize,
    p: CumParams,
}

impl Cumulative {
    pub fn new(
        b: &Builder<'_>,
        l: &Layer,
        axis: usize,
        exclusive: bool,
        reverse: bool,
        product: bool,
    ) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        if dt == DataType::Bool {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: "cumulative sums or products of bools".into(),
            });
        }
        Ok(Cumulative {
            f: b.func(&typed("cumsum", dt))?,
            axis,
            p: CumParams {
                exclusive: exclusive as i32,
                reverse: reverse as i32,
                product: product as i32,
                ..Default::default()
            },
        })
    }
}

impl Kernel for Cumulative {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let d = &ins[0].dims;
        let outer: usize = d[..self.axis].iter().product();
        let inner: usize = d[self.axis + 1..].iter().product();
        self.p.lines = (outer * inner) as i64;
        self.p.n = d[self.axis] as i64;
        self.p.inner = inner.max(1) as i64;
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.lines == 0 || self.p.n == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.x = ins[0].ptr;
        launch(rc.stream, self.f, grid_for(self.p.lines as usize), &self.p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TopkParams {
    values: u64,
    indices: u64,
    x: u64,
    rows: i64,
    n: i64,
    inner: i64,
    k: i64,
    largest: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<TopkParams>() == 64);

pub struct TopK {
    f: Func,
    axis: usize,
    p: TopkParams,
}

impl TopK {
    pub fn new(b: &Builder<'_>, l: &Layer, op: TopKOp, k: usize, axis: usize) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        if dt == DataType::Bool {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: "TopK of bools".into(),
            });
        }
        Ok(TopK {
            f: b.func(&typed("topk", dt))?,
            axis,
            p: TopkParams {
                k: k as i64,
                largest: (op == TopKOp::Max) as i32,
                ..Default::default()
            },
        })
    }
}

impl Kernel for TopK {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], _: &[Arg]) -> Result<()> {
        let d = &ins[0].dims;
        let outer: usize = d[..self.axis].iter().product();
        let inner: usize = d[self.axis + 1..].iter().product();
        if self.p.k as usize > d[self.axis] {
            return Err(Error::Network(format!(
                "k = {} exceeds the axis length {}",
                self.p.k, d[self.axis]
            )));
        }
        self.p.rows = (outer * inner) as i64;
        self.p.n = d[self.axis] as i64;
        self.p.inner = inner.max(1) as i64;
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        let total = (self.p.rows * self.p.n) as usize;
        if total == 0 || self.p.k == 0 {
            return Ok(());
        }
        self.p.values = outs[0].ptr;
        self.p.indices = outs[1].ptr;
        self.p.x = ins[0].ptr;
        launch(rc.stream, self.f, grid_for(total), &self.p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contiguous reduced dims merge (channels-last global pooling: H and
    /// W of [N, H, W, C] into one dim of stride C); others stay apart.
    #[test]
    fn contiguous_reduced_dims_are_one() {
        let (keep, ks, red, rs) = split(&[8, 13, 13, 1000], &[1, 2]).unwrap();
        assert_eq!(
            (keep.rank, &keep.d[..2], &ks[..2]),
            (2, &[8, 1000][..], &[169000, 1][..])
        );
        assert_eq!((red.rank, red.d[0], rs[0]), (1, 169, 1000));
        let (_, _, red, rs) = split(&[2, 3, 4, 5], &[0, 2]).unwrap();
        assert_eq!(
            (red.rank, &red.d[..2], &rs[..2]),
            (2, &[2, 4][..], &[60, 5][..])
        );
        let (_, _, red, rs) = split(&[2, 3, 4], &[0, 1, 2]).unwrap();
        assert_eq!((red.rank, red.d[0], rs[0]), (1, 24, 1));
    }

    #[test]
    fn row_splits_hold_a_row_in_registers_and_spread_few_rows() {
        // ConvNeXt's stages at batch 1: many short rows take a warp each,
        // few long ones a block.
        assert_eq!(row_split(3136, 96), Some((32, 4)));
        assert_eq!(row_split(49, 768), Some((256, 4)));
        assert_eq!(row_split(1, 768), Some((256, 4)));
        assert_eq!(row_split(1 << 20, 8), Some((1, 8)));
        assert_eq!(row_split(1 << 20, 2048), Some((256, 8)));
        assert_eq!(row_split(4, 3), Some((4, 1)));
        assert_eq!(row_split(1, 2049), None);
        assert_eq!(row_split(5, 0), None);
        for rows in [1, 7, 100, 1 << 16] {
            for cols in 1..=2048 {
                let (tpr, v) = row_split(rows, cols).unwrap();
                assert!(tpr.is_power_of_two() && tpr <= 256 && [1, 2, 4, 8].contains(&v));
                assert!(tpr * v >= cols, "{rows}x{cols}: {tpr} threads of {v}");
            }
        }
    }
}
