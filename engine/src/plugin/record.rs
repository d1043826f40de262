//! A plugin's results held against what the engine recorded of them at
//! build time: every backend checks each run's outputs here, so a plugin
//! that changes behaviour between build and run is caught by name.

use crate::dtype::DataType;
use crate::ir::{PluginDim, PluginParams};

/// Checks the outputs a plugin layer produced (type and dims of each)
/// against the layer's record; `inputs` are the dims of its inputs.
pub fn check_outputs(
    params: &PluginParams,
    outputs: &[(DataType, &[usize])],
    inputs: &[&[usize]],
) -> Result<(), String> {
    let spec = &params.outputs;
    if outputs.len() != spec.len() {
        return Err(format!(
            "plugin {} produced {} outputs where the engine records {}",
            params.describe(),
            outputs.len(),
            spec.len()
        ));
    }
    for (k, ((dtype, dims), o)) in outputs.iter().zip(spec).enumerate() {
        let fits = dims.len() == o.dims.len()
            && dims.iter().zip(&o.dims).all(|(&n, d)| match d {
                PluginDim::Known(m) => n == *m,
                PluginDim::SameAs { input, axis } => inputs
                    .get(*input)
                    .and_then(|i| i.get(*axis))
                    .is_some_and(|&m| m == n),
                PluginDim::DataDependent { bound: Some(b) } => n <= *b,
                PluginDim::DataDependent { bound: None } | PluginDim::Unknown => true,
            });
        if !fits || *dtype != o.dtype {
            return Err(format!(
                "plugin {} produced output {k} as {} {}, which does not fit the engine's record {:?} {:?}",
                params.describe(),
                dtype,
                crate::shape::format_dims(dims),
                o.dtype,
                o.dims
            ));
        }
    }
    Ok(())
}
