//! Index arithmetic shared by the cpu kernels.

/// Row-major strides of `dims`.
pub fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Strides of an input broadcast to `out` dims: 0 where the input has 1.
pub fn broadcast_strides(input: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(input);
    input
        .iter()
        .zip(out)
        .zip(s)
        .map(|((&i, &o), s)| if i == 1 && o != 1 { 0 } else { s })
        .collect()
}

/// NumPy broadcast of equal-rank concrete dims.
pub fn broadcast_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    if a.len() != b.len() {
        return Err(format!("ranks {} and {} differ", a.len(), b.len()));
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            (1, n) | (n, 1) => Ok(n),
            (x, y) if x == y => Ok(x),
            (x, y) => Err(format!("dims {x} and {y} do not broadcast")),
        })
        .collect()
}

/// Calls `f(out_index, [offset per input])` for every element of `out`, in
/// order, with each input's offset under its own (broadcast) strides.
pub fn for_each_offset<const N: usize>(
    out: &[usize],
    in_strides: [&[usize]; N],
    mut f: impl FnMut(usize, [usize; N]),
) {
    let total: usize = out.iter().product();
    if total == 0 {
        return;
    }
    let rank = out.len();
    let mut idx = vec![0usize; rank];
    let mut offs = [0usize; N];
    for o in 0..total {
        f(o, offs);
        // Increment the multi-index, updating offsets incrementally.
        let mut d = rank;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            for k in 0..N {
                offs[k] += in_strides[k][d];
            }
            if idx[d] < out[d] {
                break;
            }
            for k in 0..N {
                offs[k] -= in_strides[k][d] * out[d];
            }
            idx[d] = 0;
        }
    }
}

/// Dims after permuting by `perm`.
pub fn permute_dims(dims: &[usize], perm: &[usize]) -> Vec<usize> {
    perm.iter().map(|&p| dims[p]).collect()
}

/// Copies `src` (dims `dims`) into a new vector laid out as `perm` of it.
pub fn transpose<T: Copy>(src: &[T], dims: &[usize], perm: &[usize]) -> Vec<T> {
    let out_dims = permute_dims(dims, perm);
    let s = strides(dims);
    let in_strides: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let mut out = Vec::with_capacity(src.len());
    for_each_offset(&out_dims, [&in_strides], |_, [o]| out.push(src[o]));
    out
}

/// Splits `dims` around `axis` into (outer, len, inner) element counts.
pub fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_broadcast() {
        let out = [2, 3];
        let a = broadcast_strides(&[2, 1], &out);
        let b = broadcast_strides(&[1, 3], &out);
        let mut seen = vec![];
        for_each_offset(&out, [&a, &b], |o, [x, y]| seen.push((o, x, y)));
        assert_eq!(
            seen,
            vec![
                (0, 0, 0),
                (1, 0, 1),
                (2, 0, 2),
                (3, 1, 0),
                (4, 1, 1),
                (5, 1, 2)
            ]
        );
    }

    #[test]
    fn transpose_2d_and_3d() {
        let v: Vec<i32> = (0..6).collect();
        assert_eq!(transpose(&v, &[2, 3], &[1, 0]), vec![0, 3, 1, 4, 2, 5]);
        let v: Vec<i32> = (0..24).collect();
        let t = transpose(&v, &[2, 3, 4], &[2, 0, 1]);
        // t[k][i][j] = v[i][j][k]
        assert_eq!(t[0..6], [0, 4, 8, 12, 16, 20]);
        assert_eq!(t[6], 1);
    }
}
