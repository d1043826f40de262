//! Scale layers: `act((x * scale + shift) ^ power)` per tensor, channel or
//! element, the activation when the Scale+Activation fusion left one.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::ir::{Activation, Network, ScaleMode, ScaleParams};
use crate::tensor::Tensor;

pub struct Scale {
    mode: ScaleMode,
    axis: usize,
    shift: Option<Vec<f32>>,
    scale: Option<Vec<f32>>,
    power: Option<Vec<f32>>,
    activation: Option<Activation>,
}

impl Scale {
    pub fn new(net: &Network, p: &ScaleParams) -> Self {
        let get = |w: Option<_>| {
            w.map(|id| {
                net.weights(id)
                    .to_f32()
                    .as_f32()
                    .unwrap_or_default()
                    .to_vec()
            })
        };
        Scale {
            mode: p.mode,
            axis: p.channel_axis,
            shift: get(p.shift),
            scale: get(p.scale),
            power: get(p.power),
            activation: p.activation,
        }
    }
}

impl Op for Scale {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let dims = x.shape();
        // The input is viewed as [outer, groups, inner]: each group shares one coefficient.
        let (groups, inner) = match self.mode {
            ScaleMode::Uniform => (1, x.len()),
            ScaleMode::Channel => (dims[self.axis], dims[self.axis + 1..].iter().product()),
            ScaleMode::Elementwise => (dims[self.axis..].iter().product(), 1),
        };
        for w in [&self.scale, &self.shift, &self.power]
            .into_iter()
            .flatten()
        {
            if w.len() != groups {
                return Err(format!("{} coefficients for {groups} groups", w.len()));
            }
        }
        let mut v = f32_data(x)?.into_owned();
        for (i, val) in v.iter_mut().enumerate() {
            let c = (i / inner.max(1)) % groups.max(1);
            let mut y = *val;
            if let Some(s) = &self.scale {
                y *= s[c];
            }
            if let Some(s) = &self.shift {
                y += s[c];
            }
            if let Some(p) = &self.power {
                y = y.powf(p[c]);
            }
            if let Some(a) = self.activation {
                y = a.apply(y);
            }
            *val = y;
        }
        Ok(vec![float_tensor(x.dtype(), dims.to_vec(), v)?])
    }
}
