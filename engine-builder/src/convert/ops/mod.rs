//! The built-in converters, one file per family of ONNX ops.

mod activation;
mod affine_grid;
mod center_crop_pad;
mod col2im;
mod compress;
mod conv;
mod dft;
mod elementwise;
mod gather_nd;
mod loss;
mod matmul;
mod max_unpool;
mod moments;
mod norm;
mod onehot;
pub mod plugin;
mod pool;
mod quantize;
mod recurrent;
mod reduce;
mod resize;
mod reverse_sequence;
mod rotary;
mod scatter;
mod shape;
mod window;

use super::Registry;
use crate::onnx::MAX_OPSET;

/// Registers every built-in converter; each declares the opsets (from the
/// op's first version to the newest known) whose semantics it implements.
pub fn register_all(r: &mut Registry) {
    let mut add =
        |op: &str, since: u32, f: super::ConvertFn| r.register("", op, since..=MAX_OPSET, f);
    activation::register(&mut add);
    affine_grid::register(&mut add);
    center_crop_pad::register(&mut add);
    col2im::register(&mut add);
    compress::register(&mut add);
    dft::register(&mut add);
    conv::register(&mut add);
    elementwise::register(&mut add);
    gather_nd::register(&mut add);
    loss::register(&mut add);
    matmul::register(&mut add);
    max_unpool::register(&mut add);
    moments::register(&mut add);
    norm::register(&mut add);
    onehot::register(&mut add);
    plugin::register(&mut add);
    pool::register(&mut add);
    quantize::register(&mut add);
    recurrent::register(&mut add);
    reduce::register(&mut add);
    resize::register(&mut add);
    scatter::register(&mut add);
    reverse_sequence::register(&mut add);
    rotary::register(&mut add);
    shape::register(&mut add);
    window::register(&mut add);
}

/// How converter families register: op type, first opset, function.
pub(crate) type Add<'a> = dyn FnMut(&str, u32, super::ConvertFn) + 'a;
