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

/// Dims and permutation with size-1 dims dropped and input dims that stay
/// adjacent (and in order) in the output merged: the same data movement
/// with as few, as long, loops as possible.
fn collapse(dims: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = perm.iter().copied().filter(|&a| dims[a] != 1).collect();
    // Groups of output-adjacent axes that are also input-adjacent.
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (first input axis, last input axis)
    for &a in &kept {
        match groups.last_mut() {
            Some((_, last)) if (*last + 1..a).all(|x| dims[x] == 1) && a > *last => *last = a,
            _ => groups.push((a, a)),
        }
    }
    let mut by_input: Vec<usize> = (0..groups.len()).collect();
    by_input.sort_by_key(|&g| groups[g].0);
    let merged: Vec<usize> = by_input
        .iter()
        .map(|&g| (groups[g].0..=groups[g].1).map(|a| dims[a]).product())
        .collect();
    // Output order of the groups, as indices into `merged`.
    let mut new_perm = vec![0; groups.len()];
    for (pos, &g) in by_input.iter().enumerate() {
        new_perm[g] = pos;
    }
    (merged, new_perm)
}

/// Copies `src` (dims `dims`) into a new vector laid out as `perm` of it:
/// contiguous runs are copied whole, the rest gathered along the innermost
/// output dim.
pub fn transpose<T: Copy>(src: &[T], dims: &[usize], perm: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(src.len());
    transpose_into(src, dims, perm, &mut out);
    out
}

/// As [`transpose`], appending to `out`.
pub fn transpose_into<T: Copy>(src: &[T], dims: &[usize], perm: &[usize], out: &mut Vec<T>) {
    let (d, p) = collapse(dims, perm);
    if d.len() <= 1 {
        out.extend_from_slice(src);
        return;
    }
    let s = strides(&d);
    let out_dims = permute_dims(&d, &p);
    let in_strides: Vec<usize> = p.iter().map(|&i| s[i]).collect();
    let r = out_dims.len();
    let (inner, step) = (out_dims[r - 1], in_strides[r - 1]);
    for_each_offset(&out_dims[..r - 1], [&in_strides[..r - 1]], |_, [o]| {
        if step == 1 {
            out.extend_from_slice(&src[o..o + inner]);
        } else {
            out.extend((0..inner).map(|j| src[o + j * step]));
        }
    });
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
    fn collapse_merges_adjacent_axes() {
        // ShuffleNet's channel shuffle: the 28x28 planes move whole.
        assert_eq!(
            collapse(&[1, 58, 2, 28, 28], &[0, 2, 1, 3, 4]),
            (vec![58, 2, 784], vec![1, 0, 2])
        );
        assert_eq!(collapse(&[2, 3, 4], &[0, 1, 2]), (vec![24], vec![0]));
        let v: Vec<i32> = (0..2 * 58 * 16).collect();
        let t = transpose(&v, &[1, 58, 2, 4, 4], &[0, 2, 1, 3, 4]);
        // element (0, g, c, y, x) of the output is (0, c, g, y, x) of the input
        assert_eq!(t[16], v[2 * 16]);
        assert_eq!(t[58 * 16], v[16]);
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
