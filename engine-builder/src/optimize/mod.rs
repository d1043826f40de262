//! Optimizer passes over the network IR. Each takes a network and returns a
//! new one; `optimize` runs them in order and checks the invariants after
//! each.

mod const_fold;
mod conv_act;
mod dead_layers;
mod gelu;
mod linear_scale;
mod rewrite;
mod scale_fold;
mod shuffle_elim;

pub use const_fold::fold_constants;
pub use conv_act::fuse_conv_activation;
pub use dead_layers::remove_dead_layers;
pub use gelu::fuse_gelu;
pub use linear_scale::fold_linear_scales;
pub use scale_fold::fold_scales;
pub use shuffle_elim::eliminate_shuffles;

use jetrt_engine::ir::Network;
use jetrt_engine::Result;

/// A named pass, for progress and reports.
pub type Pass = (&'static str, fn(&Network) -> Result<Network>);

pub const PASSES: &[Pass] = &[
    ("constant folding", fold_constants),
    ("shuffle elimination", eliminate_shuffles),
    ("dead layer removal", remove_dead_layers),
    ("scale folding", fold_scales),
    ("linear scale folding", fold_linear_scales),
    ("GELU recognition", fuse_gelu),
    ("activation epilogue fusion", fuse_conv_activation),
    ("dead layer removal", remove_dead_layers),
];

/// Runs every pass.
pub fn optimize(net: &Network) -> Result<Network> {
    let mut net = net.clone();
    for (_, pass) in PASSES {
        net = pass(&net)?;
        net.check()?;
    }
    Ok(net)
}

#[cfg(test)]
mod tests;
