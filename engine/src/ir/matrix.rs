//! A MatrixMultiply's geometry on concrete dims, the same for every
//! backend: each operand's batch dims and stored matrix, and the product's
//! m x k times k x n after the operands' ops.

use super::MatrixOp;

/// The geometry of `op0(A) x op1(B)`.
#[derive(Debug, PartialEq, Eq)]
pub struct MatrixDims<'a> {
    /// Each operand's leading (batch) dims.
    pub batch_a: &'a [usize],
    pub batch_b: &'a [usize],
    /// Each operand's stored matrix as (rows, cols), before its op; a
    /// vector is one row.
    pub a: (usize, usize),
    pub b: (usize, usize),
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

/// (batch dims, rows, cols) of an operand as stored, before its op.
fn split(dims: &[usize], op: MatrixOp) -> Result<(&[usize], usize, usize), String> {
    match op {
        MatrixOp::Vector => dims
            .split_last()
            .map(|(&k, b)| (b, 1, k))
            .ok_or_else(|| "vector operand of rank 0".to_string()),
        _ if dims.len() < 2 => Err("matrix operand of rank < 2".into()),
        _ => {
            let r = dims.len();
            Ok((&dims[..r - 2], dims[r - 2], dims[r - 1]))
        }
    }
}

/// The geometry of a product of operands of dims `a` and `b`; an error
/// names an operand of too low a rank or inner dims that differ.
pub fn matrix_dims<'a>(
    a: &'a [usize],
    op0: MatrixOp,
    b: &'a [usize],
    op1: MatrixOp,
) -> Result<MatrixDims<'a>, String> {
    let (batch_a, ar, ac) = split(a, op0)?;
    let (batch_b, br, bc) = split(b, op1)?;
    // Left operand: Vector is a 1×K row; right operand: Vector is a K×1 column.
    let (m, k) = if op0 == MatrixOp::Transpose {
        (ac, ar)
    } else {
        (ar, ac)
    };
    let (k2, n) = match op1 {
        MatrixOp::None => (br, bc),
        MatrixOp::Transpose => (bc, br),
        MatrixOp::Vector => (bc, 1),
    };
    if k != k2 {
        return Err(format!("inner dims differ: {k} and {k2}"));
    }
    Ok(MatrixDims {
        batch_a,
        batch_b,
        a: (ar, ac),
        b: (br, bc),
        m,
        k,
        n,
    })
}

/// Whether a product's batch folds into the rows of one product: B is the
/// same matrix for every batch element (its batch dims all 1), A's are
/// stored back to back untransposed, and there is a batch to fold. A
/// Linear on a 4-D activation (ConvNeXt, transformers) is then one GEMM of
/// [batch * m, k] x [k, n] instead of `batch` small ones.
pub fn batch_folds_into_rows(batch_a: &[usize], batch_b: &[usize], op0: MatrixOp) -> bool {
    op0 != MatrixOp::Transpose
        && batch_a.iter().product::<usize>() > 1
        && batch_b.iter().all(|&d| d == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_pick_rows_inner_and_columns() {
        let d = matrix_dims(
            &[2, 3, 4],
            MatrixOp::Transpose,
            &[2, 5, 3],
            MatrixOp::Transpose,
        )
        .unwrap();
        assert_eq!((d.m, d.k, d.n), (4, 3, 5));
        assert_eq!((d.batch_a, d.a, d.b), (&[2][..], (3, 4), (5, 3)));
        let v = matrix_dims(&[7], MatrixOp::Vector, &[7], MatrixOp::Vector).unwrap();
        assert_eq!((v.m, v.k, v.n, v.a), (1, 7, 1, (1, 7)));
        assert_eq!(
            matrix_dims(&[2, 3], MatrixOp::None, &[4, 5], MatrixOp::None),
            Err("inner dims differ: 3 and 4".into())
        );
        assert!(matrix_dims(&[3], MatrixOp::None, &[3, 1], MatrixOp::None).is_err());
        assert!(matrix_dims(&[], MatrixOp::Vector, &[3, 1], MatrixOp::None).is_err());
    }

    #[test]
    fn a_shared_weight_folds_the_batch() {
        let fold = |a: &[usize], op0, b: &[usize]| {
            let g = matrix_dims(a, op0, b, MatrixOp::None).unwrap();
            batch_folds_into_rows(g.batch_a, g.batch_b, op0)
        };
        assert!(fold(&[1, 56, 56, 96], MatrixOp::None, &[1, 1, 96, 384]));
        assert!(fold(&[2, 56, 56, 96], MatrixOp::None, &[96, 384]));
        assert!(!fold(&[1, 1, 56, 96], MatrixOp::None, &[1, 1, 96, 384]));
        assert!(!fold(&[2, 56, 96], MatrixOp::None, &[2, 96, 384]));
        assert!(!fold(&[2, 96, 56], MatrixOp::Transpose, &[96, 384]));
    }
}
