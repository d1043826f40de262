//! Matrix multiply on strided f32 matrices, over the `gemm` crate.

/// A row-major-or-not view of a matrix inside a slice.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// Whether every element a rows×cols view with these strides reaches is in `len`.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    (rows - 1)
        .checked_mul(rs)
        .zip((cols - 1).checked_mul(cs))
        .and_then(|(a, b)| a.checked_add(b))
        .is_some_and(|last| last < len)
}

/// Below this many multiply-adds a product runs on one thread.
const PARALLEL_WORK: usize = 1 << 18;

/// `c = a · b` (or `c += a · b` with `accumulate`), `c` dense row-major m×n.
pub fn sgemm(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dims differ");
    assert!(
        fits(a.data.len(), m, k, a.row_stride, a.col_stride)
            && fits(b.data.len(), k, n, b.row_stride, b.col_stride)
            && fits(c.len(), m, n, n, 1),
        "matrix views overrun their buffers"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let par = if threads > 1 && m * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `fits` checked above that every element the three views address
    // lies inside its slice; `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef, b: MatRef) -> Vec<f32> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    c[i * b.cols + j] += a.data[i * a.row_stride + p * a.col_stride]
                        * b.data[p * b.row_stride + j * b.col_stride];
                }
            }
        }
        c
    }

    #[test]
    fn matches_naive_with_transposes() {
        let a: Vec<f32> = (0..12).map(|x| x as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..20).map(|x| (x as f32).sin()).collect();
        let am = MatRef::row_major(&a, 3, 4);
        let bm = MatRef::row_major(&b, 4, 5);
        let mut c = vec![0.0; 15];
        sgemm(am, bm, &mut c, false, 1);
        let want = naive(am, bm);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // b^T^T through a transposed view
        let bt: Vec<f32> = crate::backend::cpu::util::transpose(&b, &[4, 5], &[1, 0]);
        let btm = MatRef::row_major(&bt, 5, 4).t();
        let mut c2 = vec![1.0; 15];
        sgemm(am, btm, &mut c2, true, 2);
        for (x, y) in c2.iter().zip(&want) {
            assert!((x - (y + 1.0)).abs() < 1e-5);
        }
    }
}
