//! Cast between element types, with the semantics of [`Tensor::cast`].

use super::{Ctx, Op, OpResult};
use crate::dtype::DataType;
use crate::tensor::Tensor;

pub struct Cast(pub DataType);

impl Op for Cast {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        Ok(vec![inputs[0].cast(self.0)])
    }
}
