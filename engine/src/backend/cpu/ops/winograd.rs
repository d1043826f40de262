//! 3x3 stride-1 convolution by Winograd's F(2x2, 3x3): each 4x4 input tile
//! is transformed (B^T d B), multiplied channel-wise with the transformed
//! filters (G g G^T) as 16 GEMMs, and transformed back (A^T m A) into a 2x2
//! output tile: 16 multiplies per tile and channel pair instead of 36.
//! The transforms add, subtract and halve only, so results stay within a
//! few ulps of the direct convolution.

use crate::backend::cpu::act::Act;
use crate::backend::cpu::sgemm::{gemm, DenseB, Epilogue, Layout, PackedA};
use crate::backend::cpu::simd::Scratch;
use rayon::prelude::*;

use super::Ctx;

/// A convolution's weights, transformed and packed.
pub struct Winograd {
    cin: usize,
    cout: usize,
    /// Top and left padding.
    pt: usize,
    pl: usize,
    /// Bottom and right padding (the output size follows from them).
    pb: usize,
    pr: usize,
    /// U_i [cout x cin] for each of the 16 tile positions.
    packed: Vec<PackedA>,
}

/// Whether Winograd beats the direct GEMM for this convolution: 3x3,
/// stride 1, enough channels that its 16 GEMMs (depth = input channels) run
/// efficiently, and enough 2x2 output tiles (known dims) to fill them.
pub fn applies(
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
    cin: usize,
    cout: usize,
    out_hw: Option<(usize, usize)>,
) -> bool {
    let tiles = out_hw.map_or(0, |(h, w)| h.div_ceil(2) * w.div_ceil(2));
    kernel == (3, 3)
        && stride == (1, 1)
        && dilation == (1, 1)
        && groups == 1
        && cin >= 64
        && cout >= 64
        && tiles >= 64
}

impl Winograd {
    /// `w` is [cout, cin, 3, 3].
    pub fn new(w: &[f32], cout: usize, cin: usize, pads: [usize; 4]) -> Self {
        // U = G g G^T with G = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]].
        let mut u = vec![0f32; 16 * cout * cin];
        for co in 0..cout {
            for ci in 0..cin {
                let g = &w[(co * cin + ci) * 9..][..9];
                let mut t = [[0f32; 3]; 4]; // G g
                for j in 0..3 {
                    let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
                    t[0][j] = a;
                    t[1][j] = 0.5 * (a + b + c);
                    t[2][j] = 0.5 * (a - b + c);
                    t[3][j] = c;
                }
                for (i, row) in t.iter().enumerate() {
                    let (a, b, c) = (row[0], row[1], row[2]);
                    let v = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
                    for (j, x) in v.iter().enumerate() {
                        u[((i * 4 + j) * cout + co) * cin + ci] = *x;
                    }
                }
            }
        }
        let packed = (0..16)
            .map(|i| PackedA::pack(&u[i * cout * cin..(i + 1) * cout * cin], cout, cin))
            .collect();
        Winograd {
            cin,
            cout,
            pt: pads[0],
            pl: pads[1],
            pb: pads[2],
            pr: pads[3],
            packed,
        }
    }

    /// Output dims for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        Some((
            (h + self.pt + self.pb).checked_sub(2)?,
            (w + self.pl + self.pr).checked_sub(2)?,
        ))
    }

    /// Convolves one image [cin, h, w] into `out` [cout, ho, wo], with bias,
    /// residual and activation applied as the tiles are written.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &Ctx<'_>,
        x: &[f32],
        h: usize,
        w: usize,
        out: &mut [f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        act: Act,
    ) {
        let Some((ho, wo)) = self.out_hw(h, w) else {
            return;
        };
        let (th, tw) = (ho.div_ceil(2), wo.div_ceil(2));
        let tiles = th * tw;
        let (cin, cout) = (self.cin, self.cout);
        let mut v = ctx.take_f32(16 * cin * tiles);
        // V[i][c][t] = (B^T d B)[i] for the 4x4 input tile t of channel c,
        // a row of tiles at a time so that the loops run along the row.
        let vptr = SharedOut(v.as_mut_ptr());
        let wpad = 2 * tw + 2;
        (0..cin).into_par_iter().for_each(|c| {
            crate::fast!({
                let vptr = &vptr;
                let plane = &x[c * h * w..(c + 1) * h * w];

                let need = 4 * wpad + 16 * tw;
                let mut s = Scratch::take(&SCRATCH, need);
                let (rows, cols) = s.split_at_mut(4 * wpad);
                for ty in 0..th {
                    // The tile row's four input rows, zero outside the input.
                    for r in 0..4 {
                        let dst = &mut rows[r * wpad..(r + 1) * wpad];
                        dst.fill(0.0);
                        let iy = (2 * ty + r) as i64 - self.pt as i64;
                        if iy >= 0 && iy < h as i64 {
                            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                            let x0 = self.pl.min(wpad);
                            let n = w.min(wpad - x0);
                            dst[x0..x0 + n].copy_from_slice(&src[..n]);
                        }
                    }
                    // Column transform of each row: d B, for every tile of the row.
                    for r in 0..4 {
                        let row = &rows[r * wpad..(r + 1) * wpad];
                        let out = &mut cols[r * 4 * tw..(r + 1) * 4 * tw];
                        let (c0, rest) = out.split_at_mut(tw);
                        let (c1, rest) = rest.split_at_mut(tw);
                        let (c2, c3) = rest.split_at_mut(tw);
                        for tx in 0..tw {
                            let (x0, x1, x2, x3) = (
                                row[2 * tx],
                                row[2 * tx + 1],
                                row[2 * tx + 2],
                                row[2 * tx + 3],
                            );
                            c0[tx] = x0 - x2;
                            c1[tx] = x1 + x2;
                            c2[tx] = x2 - x1;
                            c3[tx] = x1 - x3;
                        }
                    }
                    // Row transform B^T (...), written to the 16 planes of V.
                    let col = |r: usize, j: usize| &cols[(r * 4 + j) * tw..(r * 4 + j + 1) * tw];
                    for j in 0..4 {
                        let (a, b, cc, d) = (col(0, j), col(1, j), col(2, j), col(3, j));
                        for (i, f) in [
                            (
                                0usize,
                                (|a: f32, _b: f32, c: f32, _d: f32| a - c)
                                    as fn(f32, f32, f32, f32) -> f32,
                            ),
                            (1, |_a, b, c, _d| b + c),
                            (2, |_a, b, c, _d| c - b),
                            (3, |_a, b, _c, d| b - d),
                        ] {
                            let base = ((i * 4 + j) * cin + c) * tiles + ty * tw;
                            // SAFETY: channel c writes only V[.][c][.], and
                            // base + tw <= 16 * cin * tiles, the buffer's length.
                            let dst =
                                unsafe { std::slice::from_raw_parts_mut(vptr.0.add(base), tw) };
                            for tx in 0..tw {
                                dst[tx] = f(a[tx], b[tx], cc[tx], d[tx]);
                            }
                        }
                    }
                }
            })
        });
        let mut m_buf = ctx.take_f32(16 * cout * tiles);
        for (i, pa) in self.packed.iter().enumerate() {
            let src = DenseB {
                data: &v[i * cin * tiles..(i + 1) * cin * tiles],
                k: cin,
                n: tiles,
            };
            let dst = &mut m_buf[i * cout * tiles..(i + 1) * cout * tiles];
            gemm(
                pa,
                &src,
                dst,
                Layout::row_major(tiles),
                &Epilogue::default(),
                ctx.threads,
            );
        }
        ctx.give_f32(v);
        // Y = A^T M A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], then the
        // epilogue, a row of tiles at a time.
        let plane = ho * wo;
        let m = &m_buf;
        out.par_chunks_mut(plane).enumerate().for_each(|(co, dst)| {
            crate::fast!({
                let b = bias.map_or(0.0, |b| b[co]);
                let res = residual.map(|r| &r[co * plane..(co + 1) * plane]);

                let mut s = Scratch::take(&SCRATCH, 8 * tw);
                let t = &mut s[..8 * tw];
                for ty in 0..th {
                    let mrow = |i: usize| &m[(i * cout + co) * tiles + ty * tw..][..tw];
                    // A^T M: two rows of four, for every tile of the row.
                    for j in 0..4 {
                        let (m0, m1, m2, m3) = (mrow(j), mrow(4 + j), mrow(8 + j), mrow(12 + j));
                        let (t0, t1) = t.split_at_mut(4 * tw);
                        let (t0, t1) =
                            (&mut t0[j * tw..(j + 1) * tw], &mut t1[j * tw..(j + 1) * tw]);
                        for tx in 0..tw {
                            t0[tx] = m0[tx] + m1[tx] + m2[tx];
                            t1[tx] = m1[tx] - m2[tx] - m3[tx];
                        }
                    }
                    for r in 0..2 {
                        let oy = 2 * ty + r;
                        if oy >= ho {
                            continue;
                        }
                        let tr = |j: usize| &t[(r * 4 + j) * tw..(r * 4 + j + 1) * tw];
                        let (a, bb, c, d) = (tr(0), tr(1), tr(2), tr(3));
                        let line = &mut dst[oy * wo..(oy + 1) * wo];
                        for tx in 0..tw {
                            line[2 * tx] = a[tx] + bb[tx] + c[tx] + b;
                            if 2 * tx + 1 < wo {
                                line[2 * tx + 1] = bb[tx] - c[tx] - d[tx] + b;
                            }
                        }
                        if let Some(res) = res {
                            line.iter_mut()
                                .zip(&res[oy * wo..(oy + 1) * wo])
                                .for_each(|(o, r)| *o += r);
                        }
                        if act != Act::Identity {
                            crate::with_act!(act, |f| line.iter_mut().for_each(|o| *o = f(*o)));
                        }
                    }
                }
            })
        });
        ctx.give_f32(m_buf);
    }
}

thread_local! {
    /// Each thread's rows for the transforms.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// V's base pointer, shared by channels that write disjoint elements.
struct SharedOut(*mut f32);
// SAFETY: each task writes only its own channel's elements of V.
unsafe impl Sync for SharedOut {}
