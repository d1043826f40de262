//! TopK along one axis: values and int32 indices, ties in index order.

use super::{Ctx, Op, OpResult};
use crate::backend::cpu::util::split_at_axis;
use crate::ir::TopKOp;
use crate::tensor::{Tensor, TensorData};

pub struct TopK {
    pub op: TopKOp,
    pub k: usize,
    pub axis: usize,
}

impl Op for TopK {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (outer, n, inner) = split_at_axis(x.shape(), self.axis);
        if self.k > n {
            return Err(format!("k = {} exceeds the axis length {n}", self.k));
        }
        // Compare as f64: exact for every type but int64 beyond 2^53.
        let v = x.to_f64_vec();
        let k = self.k;
        let mut picks = vec![0usize; outer * k * inner];
        let mut order: Vec<usize> = (0..n).collect();
        let key = |a: f64, b: f64| match self.op {
            // NaN sorts as the largest value.
            TopKOp::Max => b
                .partial_cmp(&a)
                .unwrap_or_else(|| b.is_nan().cmp(&a.is_nan())),
            TopKOp::Min => a
                .partial_cmp(&b)
                .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan())),
        };
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| v[(o * n + j) * inner + i];
                order.iter_mut().enumerate().for_each(|(j, x)| *x = j);
                // A stable sort keeps ties in index order.
                order.sort_by(|&p, &q| key(at(p), at(q)));
                for (r, &j) in order.iter().take(k).enumerate() {
                    picks[(o * k + r) * inner + i] = (o * n + j) * inner + i;
                }
            }
        }
        let mut shape = x.shape().to_vec();
        shape[self.axis] = k;
        // A pick's position along the axis is its index.
        let indices: Vec<i32> = picks.iter().map(|p| ((p / inner) % n) as i32).collect();
        macro_rules! gather {
            ($variant:ident, $v:expr) => {
                TensorData::$variant(picks.iter().map(|&p| $v[p]).collect())
            };
        }
        let values = match x.data() {
            TensorData::F32(v) => gather!(F32, v),
            TensorData::F16(v) => gather!(F16, v),
            TensorData::I32(v) => gather!(I32, v),
            TensorData::I64(v) => gather!(I64, v),
            TensorData::U8(v) => gather!(U8, v),
            TensorData::Bool(_) => return Err("TopK does not take bool".into()),
        };
        Ok(vec![
            Tensor::new(shape.clone(), values).map_err(|e| e.to_string())?,
            Tensor::new(shape, TensorData::I32(indices)).map_err(|e| e.to_string())?,
        ])
    }
}
