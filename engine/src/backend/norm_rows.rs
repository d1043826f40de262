//! A normalization over trailing dims (LayerNorm) seen as contiguous rows,
//! for the backends' row kernels: the general kernels walk any statistics
//! split, while rows of contiguous values can be read once and in order.

/// `rows` rows of `cols` contiguous values; scale and bias advance by
/// their step along a row (1: a value per element, 0: one for all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rows {
    pub rows: usize,
    pub cols: usize,
    pub scale_step: usize,
    pub bias_step: usize,
}

/// The rows of a normalization of `dims` over `axes` (`groups` channel
/// groups) whose scale and bias have dims `scale` and `bias` (broadcast to
/// `dims`, equal rank), when it has that form: the axes are the trailing
/// dims, no channel groups, and scale and bias each either vary along a
/// row exactly as its elements do or are one value.
pub(crate) fn rows(
    dims: &[usize],
    axes: &[usize],
    groups: usize,
    scale: &[usize],
    bias: &[usize],
) -> Option<Rows> {
    let lead = dims.len().checked_sub(axes.len())?;
    let trailing = (lead..dims.len()).all(|i| axes.contains(&i));
    if !trailing || axes.is_empty() || (groups > 1 && !axes.contains(&1)) {
        return None;
    }
    let step = |s: &[usize]| -> Option<usize> {
        if s.len() != dims.len() {
            return None;
        }
        let wide = |i: usize| dims[i] > 1;
        // Along the leading dims: one value for every row.
        if (0..lead).any(|i| wide(i) && s[i] != 1) {
            return None;
        }
        if (lead..dims.len()).all(|i| !wide(i) || s[i] == 1) {
            Some(0)
        } else if (lead..dims.len()).all(|i| s[i] == dims[i]) {
            Some(1)
        } else {
            None
        }
    };
    Some(Rows {
        rows: dims[..lead].iter().product(),
        cols: dims[lead..].iter().product(),
        scale_step: step(scale)?,
        bias_step: step(bias)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_norms_are_rows_and_others_are_not() {
        let d = [2, 3, 4];
        let r = |scale_step, bias_step, rows, cols| {
            Some(Rows {
                rows,
                cols,
                scale_step,
                bias_step,
            })
        };
        // LayerNorm over the last dim, over the last two; scalar bias.
        assert_eq!(rows(&d, &[2], 1, &[1, 1, 4], &[1, 1, 4]), r(1, 1, 6, 4));
        assert_eq!(rows(&d, &[1, 2], 1, &[1, 3, 4], &[1, 1, 1]), r(1, 0, 2, 12));
        assert_eq!(rows(&d, &[2, 1], 1, &[1, 3, 4], &[1, 3, 4]), r(1, 1, 2, 12));
        // A leading axis, a scale varying across rows or along part of a
        // row, a group norm, a scale of the wrong rank.
        assert_eq!(rows(&d, &[0], 1, &[2, 1, 1], &[2, 1, 1]), None);
        assert_eq!(rows(&d, &[2], 1, &[2, 1, 4], &[1, 1, 4]), None);
        assert_eq!(rows(&d, &[1, 2], 1, &[1, 1, 4], &[1, 1, 4]), None);
        assert_eq!(rows(&d, &[2], 3, &[1, 1, 4], &[1, 1, 4]), None);
        assert_eq!(rows(&d, &[2], 1, &[4], &[4]), None);
    }
}
