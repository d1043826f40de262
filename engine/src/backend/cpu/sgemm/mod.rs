//! Single-precision GEMM with pre-packed weights and fused epilogues:
//! `C = act(A · B + bias + residual)`, where A (the weights, M×K) is packed
//! once when a plan is loaded and B (activations, K×N) is packed block by
//! block from any [`BSource`] (a dense matrix, or an image read as its
//! im2col matrix without materializing it).
//!
//! Work is split into (rows, columns) tiles over the context's thread pool;
//! each thread packs its B blocks into a buffer of its own that lives as long
//! as the thread, so steady-state runs allocate nothing.

pub mod kernel;

use super::act::Act;
use kernel::Kernel;
use rayon::prelude::*;
use std::cell::RefCell;

/// A (M×K) packed into panels of `mr` rows: for each panel, for each k, the
/// panel's `mr` values (zero past M).
pub struct PackedA {
    pub m: usize,
    pub k: usize,
    mr: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs a matrix given element by element.
    pub fn from_fn(m: usize, k: usize, at: impl Fn(usize, usize) -> f32) -> Self {
        let mr = kernel::kernel().mr;
        let panels = m.div_ceil(mr);
        let mut data = vec![0f32; panels * mr * k];
        for p in 0..panels {
            let panel = &mut data[p * mr * k..(p + 1) * mr * k];
            for kk in 0..k {
                for r in 0..mr {
                    let row = p * mr + r;
                    if row < m {
                        panel[kk * mr + r] = at(row, kk);
                    }
                }
            }
        }
        PackedA { m, k, mr, data }
    }

    /// Packs a dense row-major matrix.
    pub fn pack(a: &[f32], m: usize, k: usize) -> Self {
        assert_eq!(a.len(), m * k, "matrix size");
        Self::from_fn(m, k, |r, c| a[r * k + c])
    }

    fn panel(&self, p: usize, k0: usize) -> *const f32 {
        self.data[p * self.mr * self.k + k0 * self.mr..].as_ptr()
    }
}

/// Where B (K×N) comes from. `pack` writes columns `n0..n0+nc`, rows
/// `k0..k0+kc`, as panels of `nr` columns: for each panel, for each k, `nr`
/// values (zero past the last column).
pub trait BSource: Sync {
    fn k(&self) -> usize;
    fn n(&self) -> usize;
    /// What packing one element costs relative to reading one of A: splitting
    /// the work by rows packs B again for each row block.
    fn pack_cost(&self) -> f64 {
        1.0
    }
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]);
}

/// A dense row-major K×N matrix (a 1×1 convolution's input, for one).
pub struct DenseB<'a> {
    pub data: &'a [f32],
    pub k: usize,
    pub n: usize,
}

impl BSource for DenseB<'_> {
    fn k(&self) -> usize {
        self.k
    }

    fn n(&self) -> usize {
        self.n
    }

    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        for (p, panel) in dst.chunks_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
            let c0 = n0 + p * nr;
            let w = nr.min(n0 + nc - c0);
            for kk in 0..kc {
                let src = &self.data[(k0 + kk) * self.n + c0..][..w];
                let d = &mut panel[kk * nr..(kk + 1) * nr];
                d[..w].copy_from_slice(src);
                d[w..].fill(0.0);
            }
        }
    }
}

/// A row-major N×K matrix read as its transpose (K×N): the rows of a
/// Linear layer's input, each a column of B.
pub struct RowsB<'a> {
    pub data: &'a [f32],
    pub k: usize,
    pub n: usize,
}

impl BSource for RowsB<'_> {
    fn k(&self) -> usize {
        self.k
    }

    fn n(&self) -> usize {
        self.n
    }

    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        for (p, panel) in dst.chunks_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
            let c0 = n0 + p * nr;
            let w = nr.min(n0 + nc - c0);
            panel.fill(0.0);
            for j in 0..w {
                let row = &self.data[(c0 + j) * self.k + k0..][..kc];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * nr + j] = v;
                }
            }
        }
    }
}

/// What is applied to each result before it is stored.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// One value per row of C.
    pub bias: Option<&'a [f32]>,
    /// Added element-wise; laid out like C.
    pub residual: Option<&'a [f32]>,
    pub act: Act,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            bias: None,
            residual: None,
            act: Act::Identity,
        }
    }
}

/// C's layout: element (m, n) is at `m * rs + n * cs`.
#[derive(Clone, Copy)]
pub struct Layout {
    pub rs: usize,
    pub cs: usize,
}

impl Layout {
    pub fn row_major(n: usize) -> Self {
        Layout { rs: n, cs: 1 }
    }
}

thread_local! {
    /// Each thread's B packing buffer, kept for the thread's life.
    static BPACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// C's base pointer, shared by tiles that write disjoint elements.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tiles write disjoint elements of C (disjoint row and column ranges),
// and the scope of `gemm` outlives every task.
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// Element `i` of C; a method, so that closures capture the whole
    /// (Send) value rather than its raw pointer field.
    ///
    /// # Safety
    /// `i` must lie inside C.
    #[inline(always)]
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: forwarded to the caller.
        unsafe { self.0.add(i) }
    }
}

/// `c = epilogue(a · b)`. `c` must hold every (m, n) under `layout`.
pub fn gemm(
    a: &PackedA,
    b: &dyn BSource,
    c: &mut [f32],
    layout: Layout,
    epi: &Epilogue<'_>,
    threads: usize,
) {
    let (m, k, n) = (a.m, a.k, b.n());
    assert_eq!(b.k(), k, "inner dims");
    if m == 0 || n == 0 {
        return;
    }
    let last = (m - 1) * layout.rs + (n - 1) * layout.cs;
    assert!(last < c.len(), "C is too small for its layout");
    if let Some(bias) = epi.bias {
        assert!(bias.len() >= m, "bias shorter than M");
    }
    if let Some(r) = epi.residual {
        assert!(last < r.len(), "residual is too small for C's layout");
    }

    if n == 1 {
        return gemv(a, b, c, layout, epi, threads);
    }
    let kern = kernel::kernel();
    debug_assert_eq!(kern.mr, a.mr);
    let (mr, nr) = (kern.mr, kern.nr);
    // Tiles of whole MR x NR panels. Each task reads its rows of A and packs
    // its columns of B: splitting columns re-reads A, splitting rows re-packs
    // B, so the split follows whichever costs more.
    let col_panels = n.div_ceil(nr);
    let row_panels = m.div_ceil(mr);
    let (rpb, cpb) = split(row_panels, col_panels, (mr, nr), b.pack_cost(), threads);
    let tasks: Vec<(usize, usize)> = (0..row_panels.div_ceil(rpb))
        .flat_map(|r| (0..col_panels.div_ceil(cpb)).map(move |cb| (r, cb)))
        .collect();
    let out = Out(c.as_mut_ptr());
    let run = |&(rb, cb): &(usize, usize)| {
        let (p0, p1) = (rb * rpb, ((rb + 1) * rpb).min(row_panels));
        let n0 = cb * cpb * nr;
        let nc = (cpb * nr).min(n - n0);
        crate::fast!(tile_block(kern, a, b, out, layout, epi, p0..p1, n0, nc));
    };
    if tasks.len() == 1 || threads <= 1 {
        tasks.iter().for_each(run);
    } else {
        tasks.par_iter().for_each(run);
    }
}

/// Row panels per task of a matrix-vector product.
const GEMV_PANELS: usize = 8;

/// `gemm` for a single column (a 1x1 convolution of a 1x1 image, as
/// squeeze-and-excitation blocks have): A is read once, panel by panel, its
/// MR rows summed in as many lanes, rather than as tiles 31/32 empty.
fn gemv(
    a: &PackedA,
    b: &dyn BSource,
    c: &mut [f32],
    layout: Layout,
    epi: &Epilogue<'_>,
    threads: usize,
) {
    let (m, k, mr) = (a.m, a.k, a.mr);
    let mut x = crate::backend::cpu::simd::Scratch::take(&BPACK, k);
    b.pack(0, k, 0, 1, 1, &mut x[..k]);
    let x = &x[..k];
    let out = Out(c.as_mut_ptr());
    let run = |chunk: usize| {
        let p0 = chunk * GEMV_PANELS;
        let p1 = (p0 + GEMV_PANELS).min(m.div_ceil(mr));
        crate::fast!({
            for p in p0..p1 {
                let panel = &a.data[p * mr * k..(p + 1) * mr * k];
                let mut acc = [0f32; 16];
                match mr {
                    8 => sum_panel::<8>(panel, x, &mut acc),
                    6 => sum_panel::<6>(panel, x, &mut acc),
                    4 => sum_panel::<4>(panel, x, &mut acc),
                    _ => {
                        for (col, &xv) in panel.chunks_exact(mr).zip(x) {
                            for (s, &w) in acc.iter_mut().zip(col) {
                                *s += w * xv;
                            }
                        }
                    }
                }
                for (r, &v) in acc.iter().enumerate().take(mr.min(m - p * mr)) {
                    let row = p * mr + r;
                    let at = row * layout.rs;
                    let v = v
                        + epi.bias.map_or(0.0, |b| b[row])
                        + epi.residual.map_or(0.0, |res| res[at]);
                    // SAFETY: element (row, 0) lies inside C (checked in
                    // gemm) and belongs to this task's panels alone.
                    unsafe { *out.at(at) = epi.act.apply(v) };
                }
            }
        })
    };
    let chunks = m.div_ceil(mr).div_ceil(GEMV_PANELS);
    if threads <= 1 || chunks == 1 {
        (0..chunks).for_each(run);
    } else {
        (0..chunks).into_par_iter().for_each(run);
    }
}

/// The MR sums of one packed panel times `x`, in MR lanes.
#[inline(always)]
fn sum_panel<const MR: usize>(panel: &[f32], x: &[f32], acc: &mut [f32; 16]) {
    let mut s = [0f32; MR];
    for (col, &xv) in panel.chunks_exact(MR).zip(x) {
        for r in 0..MR {
            s[r] = col[r].mul_add(xv, s[r]);
        }
    }
    acc[..MR].copy_from_slice(&s);
}

/// The clamp a direct kernel applies for `act`, `Some(None)` for none;
/// `None` when the activation needs the tile path.
fn direct_clamp(act: Act) -> Option<Option<(f32, f32)>> {
    use crate::ir::Activation;
    match act {
        Act::Identity => Some(None),
        Act::Ir(Activation::Relu) => Some(Some((0.0, f32::INFINITY))),
        Act::Ir(Activation::Clip { min, max }) => Some(Some((min, max))),
        _ => None,
    }
}

/// A task's rows of packed A at most this many bytes per depth block stay
/// in L2 while its B panels pass under them one by one.
const A_BLOCK_BYTES: usize = 384 << 10;

/// A B panel at most this many bytes stays in L1 while the row panels use it.
const B_PANEL_BYTES: usize = 16 << 10;

/// Row and column panels per task: the split whose busiest thread has the
/// least to do, counting each task's tiles and its B packing (repeated by
/// every row block) and a fixed cost per task. A split into fewer tasks
/// than threads, or into a count that leaves a thread with an extra one,
/// loses to one that balances.
fn split(
    row_panels: usize,
    col_panels: usize,
    (mr, nr): (usize, usize),
    pack_cost: f64,
    threads: usize,
) -> (usize, usize) {
    if threads <= 1 {
        return (row_panels, col_panels);
    }
    // In units of one k step of one vector FMA (16 lanes).
    let tile = (mr * nr) as f64 / 16.0;
    let pack = nr as f64 * pack_cost / 8.0;
    const PER_TASK: f64 = 200.0;
    let mut best = (f64::INFINITY, row_panels, col_panels);
    for rb in 1..=row_panels.min(8 * threads) {
        let rpb = row_panels.div_ceil(rb);
        for cb in 1..=col_panels.min(8 * threads) {
            let cpb = col_panels.div_ceil(cb);
            let tasks = row_panels.div_ceil(rpb) * col_panels.div_ceil(cpb);
            // At least two tasks per thread where there are as many panels:
            // some slack for a thread that runs slow.
            if tasks < (2 * threads).min(row_panels * col_panels) {
                continue;
            }
            let cost = (rpb * cpb) as f64 * tile + cpb as f64 * pack + PER_TASK;
            let span = tasks.div_ceil(threads) as f64 * cost;
            if span < best.0 {
                best = (span, rpb, cpb);
            }
        }
    }
    (best.1, best.2)
}

/// Computes rows of panels `panels` and columns `n0..n0+nc` of C.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_block(
    kern: &Kernel,
    a: &PackedA,
    b: &dyn BSource,
    out: Out,
    layout: Layout,
    epi: &Epilogue<'_>,
    panels: std::ops::Range<usize>,
    n0: usize,
    nc: usize,
) {
    let (mr, nr, k) = (kern.mr, kern.nr, a.k);
    let col_panels = nc.div_ceil(nr);
    let kc_max = kern.kc.min(k.max(1));
    // Shallow products: each B panel is packed and used by every row panel
    // while it is in L1 (up to half of it), A staying in L2. Otherwise the
    // task's whole B block is packed once and every A panel, in L1, passes
    // over it.
    let panel_outer =
        kc_max * nr * 4 <= B_PANEL_BYTES && panels.len() * mr * kc_max * 4 <= A_BLOCK_BYTES;
    let packed = if panel_outer { 1 } else { col_panels };
    let mut buf = crate::backend::cpu::simd::Scratch::take(&BPACK, kc_max * packed * nr);
    let direct = kern
        .direct
        .filter(|_| layout.cs == 1)
        .zip(direct_clamp(epi.act));
    let mut tile = [0f32; 512];
    let steps = k.div_ceil(kern.kc).max(1);
    for step in 0..steps {
        let k0 = step * kern.kc;
        let kc = kern.kc.min(k - k0.min(k));
        let (first, last) = (step == 0, step + 1 == steps);
        // One tile: row panel p, column panel cp, whose packed B is at bp.
        let mut one = |p: usize, cp: usize, bp: *const f32| {
            let rows = mr.min(a.m - p * mr);
            let c0 = n0 + cp * nr;
            let cols = nr.min(n0 + nc - c0);
            let m0 = p * mr;
            if let (Some((run, clamp)), true) = (direct, rows == mr && cols == nr) {
                let at = m0 * layout.rs + c0;
                let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                let to = kernel::Direct {
                    // SAFETY: the full tile (rows m0.., columns c0..) lies
                    // inside C (checked in gemm) and belongs to this task.
                    c: unsafe { out.0.add(at) },
                    ldc: layout.rs,
                    accumulate: !first,
                    finish: last,
                    bias: epi.bias.map_or(std::ptr::null(), |b| b[m0..].as_ptr()),
                    res: epi.residual.map_or(std::ptr::null(), |r| r[at..].as_ptr()),
                    ldr: layout.rs,
                    clamp: clamp.is_some(),
                    lo,
                    hi,
                };
                // SAFETY: the A panel holds kc*mr floats from k0, the B
                // panel kc*nr, and `to` describes a full tile of C.
                unsafe { run(kc, a.panel(p, k0), bp, &to) };
                return;
            }
            // SAFETY: the A panel holds kc*mr floats from k0, the B panel
            // kc*nr, and the tile buffer (512) holds mr*nr <= 8*32 floats.
            unsafe { (kern.run)(kc, a.panel(p, k0), bp, tile.as_mut_ptr()) };
            store(
                &tile[..mr * nr],
                nr,
                out,
                layout,
                epi,
                m0,
                rows,
                c0,
                cols,
                first,
                last,
            );
        };
        if panel_outer {
            let panel = &mut buf[..kc * nr];
            for cp in 0..col_panels {
                let c0 = n0 + cp * nr;
                b.pack(k0, kc, c0, nr.min(n0 + nc - c0), nr, panel);
                for p in panels.clone() {
                    one(p, cp, panel.as_ptr());
                }
            }
        } else {
            b.pack(k0, kc, n0, nc, nr, &mut buf[..kc * col_panels * nr]);
            for p in panels.clone() {
                for cp in 0..col_panels {
                    one(p, cp, buf[cp * kc * nr..].as_ptr());
                }
            }
        }
    }
}

/// Adds or writes a tile into C, applying the epilogue on the last k block.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn store(
    tile: &[f32],
    nr: usize,
    out: Out,
    layout: Layout,
    epi: &Epilogue<'_>,
    m0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
    first: bool,
    last: bool,
) {
    // The same loop per (first, last, activation) combination keeps the
    // per-element work branch-free.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn rows_with<F: Fn(f32) -> f32>(
        tile: &[f32],
        nr: usize,
        out: Out,
        layout: Layout,
        epi: &Epilogue<'_>,
        m0: usize,
        rows: usize,
        c0: usize,
        cols: usize,
        first: bool,
        last: bool,
        f: F,
    ) {
        if layout.rs == 1 && layout.cs != 1 {
            // C stored transposed (a Linear layer's output): walk the tile
            // by columns, so that each writes a run of `rows` floats.
            let bias = epi.bias.filter(|_| last).map(|b| &b[m0..m0 + rows]);
            let res = if last { epi.residual } else { None };
            for j in 0..cols {
                let base = m0 + (c0 + j) * layout.cs;
                // SAFETY: column c0 + j, rows m0..m0 + rows lie inside C
                // (checked in gemm) and belong to this tile alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(base), rows) };
                for (r, d) in dst.iter_mut().enumerate() {
                    let v = tile[r * nr + j];
                    let acc = if first { v } else { v + *d };
                    let b = bias.map_or(0.0, |b| b[r]);
                    *d = f(acc + b + res.map_or(0.0, |q| q[base + r]));
                }
            }
            return;
        }
        for r in 0..rows {
            let t = &tile[r * nr..r * nr + cols];
            let base = (m0 + r) * layout.rs + c0 * layout.cs;
            let bias = if last {
                epi.bias.map_or(0.0, |b| b[m0 + r])
            } else {
                0.0
            };
            let res = if last { epi.residual } else { None };
            if layout.cs == 1 {
                // SAFETY: row m0 + r, columns c0..c0 + cols lie inside C (checked in
                // gemm) and belong to this tile alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(base), cols) };
                match (first, res) {
                    (true, None) => dst.iter_mut().zip(t).for_each(|(d, &v)| *d = f(v + bias)),
                    (false, None) => dst
                        .iter_mut()
                        .zip(t)
                        .for_each(|(d, &v)| *d = f(v + *d + bias)),
                    (true, Some(res)) => {
                        let res = &res[base..base + cols];
                        dst.iter_mut()
                            .zip(t)
                            .zip(res)
                            .for_each(|((d, &v), &q)| *d = f(v + bias + q))
                    }
                    (false, Some(res)) => {
                        let res = &res[base..base + cols];
                        dst.iter_mut()
                            .zip(t)
                            .zip(res)
                            .for_each(|((d, &v), &q)| *d = f(v + *d + bias + q))
                    }
                }
            } else {
                for (j, &v) in t.iter().enumerate() {
                    let idx = base + j * layout.cs;
                    // SAFETY: as above, for a strided C.
                    let d = unsafe { &mut *out.0.add(idx) };
                    let acc = if first { v } else { v + *d };
                    *d = f(acc + bias + res.map_or(0.0, |r| r[idx]));
                }
            }
        }
    }
    macro_rules! go {
        ($f:expr) => {
            rows_with(
                tile, nr, out, layout, epi, m0, rows, c0, cols, first, last, $f,
            )
        };
    }
    if last {
        crate::with_act!(epi.act, |f| go!(f))
    } else {
        go!(|v: f32| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    #[test]
    fn matches_naive_over_odd_sizes_and_threads() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 7),
            (13, 300, 37),
            (64, 576, 49),
            (3, 1000, 130),
            (40, 17, 600),
        ] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let want = naive(&a, &b, m, k, n);
            let pa = PackedA::pack(&a, m, k);
            for threads in [1, 3] {
                let mut c = vec![f32::NAN; m * n];
                gemm(
                    &pa,
                    &DenseB { data: &b, k, n },
                    &mut c,
                    Layout::row_major(n),
                    &Epilogue::default(),
                    threads,
                );
                for (x, y) in c.iter().zip(&want) {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "{m}x{k}x{n}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn epilogue_over_full_and_partial_tiles() {
        // Full tiles take the direct kernels where there are any; a depth of
        // 300 spans two depth blocks.
        for &(m, k, n) in &[
            (16, 300, 70),
            (24, 40, 64),
            (9, 5, 33),
            (75, 130, 1),
            (3, 7, 1),
        ] {
            let (a, b) = (values(m * k, 9), values(k * n, 10));
            let bias = values(m, 11);
            let res = values(m * n, 12);
            let pa = PackedA::pack(&a, m, k);
            let plain = naive(&a, &b, m, k, n);
            for act in [
                Act::Identity,
                Act::Ir(crate::ir::Activation::Relu),
                Act::Ir(crate::ir::Activation::Clip {
                    min: -0.3,
                    max: 0.4,
                }),
                Act::HardSwish {
                    alpha: 1.0 / 6.0,
                    beta: 0.5,
                },
            ] {
                let epi = Epilogue {
                    bias: Some(&bias),
                    residual: Some(&res),
                    act,
                };
                let mut c = vec![f32::NAN; m * n];
                gemm(
                    &pa,
                    &DenseB { data: &b, k, n },
                    &mut c,
                    Layout::row_major(n),
                    &epi,
                    2,
                );
                for (i, (x, y)) in c.iter().zip(&plain).enumerate() {
                    let want = act.apply(y + bias[i / n] + res[i]);
                    assert!(
                        (x - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{k}x{n} {act:?} at {i}: {x} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn epilogue_and_transposed_layouts() {
        let (m, k, n) = (7, 33, 9);
        let (a, b) = (values(m * k, 3), values(k * n, 4));
        let bias = values(m, 5);
        let res = values(m * n, 6);
        let want: Vec<f32> = naive(&a, &b, m, k, n)
            .iter()
            .enumerate()
            .map(|(i, v)| (v + bias[i / n] + res[i]).clamp(0.0, 0.5))
            .collect();
        let pa = PackedA::pack(&a, m, k);
        let epi = Epilogue {
            bias: Some(&bias),
            residual: Some(&res),
            act: Act::Ir(crate::ir::Activation::Clip { min: 0.0, max: 0.5 }),
        };
        let mut c = vec![0f32; m * n];
        gemm(
            &pa,
            &DenseB { data: &b, k, n },
            &mut c,
            Layout::row_major(n),
            &epi,
            2,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        // B given as its transpose, C written column-major.
        let bt = crate::backend::cpu::util::transpose(&b, &[k, n], &[1, 0]);
        let mut ct = vec![0f32; m * n];
        gemm(
            &pa,
            &RowsB { data: &bt, k, n },
            &mut ct,
            Layout { rs: 1, cs: m },
            &Epilogue::default(),
            2,
        );
        let plain = naive(&a, &b, m, k, n);
        for i in 0..m {
            for j in 0..n {
                assert!((ct[j * m + i] - plain[i * n + j]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn every_kernel_agrees() {
        let (kc, a, b) = (37, values(37 * 8, 7), values(37 * 32, 8));
        for kern in kernel::all() {
            let (mr, nr) = (kern.mr, kern.nr);
            let mut tile = vec![0f32; mr * nr];
            // SAFETY: a and b hold at least kc*mr and kc*nr floats.
            unsafe { (kern.run)(kc, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr()) };
            for r in 0..mr {
                for j in 0..nr {
                    let want: f32 = (0..kc).map(|k| a[k * mr + r] * b[k * nr + j]).sum();
                    assert!(
                        (tile[r * nr + j] - want).abs() < 1e-4,
                        "{}: {} vs {want}",
                        kern.name,
                        tile[r * nr + j]
                    );
                }
            }
        }
    }

    /// Development timing of the packed GEMM on convolution-like shapes:
    /// `JETRT_THREADS=2 cargo test --release -p jetrt-engine sgemm_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sgemm_speed() {
        use std::time::Instant;
        let threads: usize = std::env::var("JETRT_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        println!("kernel {}, {threads} thread(s)", kernel::kernel().name);
        for &(m, k, n) in &[
            (96, 16, 12544),
            (32, 27, 12544),
            (64, 576, 3136),
            (256, 2304, 196),
            (1280, 320, 49),
            (24, 144, 3136),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
            let pa = PackedA::pack(&a, m, k);
            let mut c = vec![0f32; m * n];
            let src = DenseB { data: &b, k, n };
            let mut best = f64::INFINITY;
            pool.install(|| {
                for _ in 0..50 {
                    let t = Instant::now();
                    gemm(
                        &pa,
                        &src,
                        &mut c,
                        Layout::row_major(n),
                        &Epilogue::default(),
                        threads,
                    );
                    best = best.min(t.elapsed().as_secs_f64());
                }
            });
            let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
            println!(
                "m {m:>5} k {k:>5} n {n:>6}: {:>8.3} ms {gflops:>7.1} GFLOP/s",
                best * 1e3
            );
        }
    }
}
