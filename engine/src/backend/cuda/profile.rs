//! Per-layer GPU time: a pair of CUDA events around each layer's work on
//! the stream, read after the run has finished. Each profiled run starts
//! behind a gate (`gate.rs`), so the layers run back to back and their
//! times are the GPU's, not the host's launch gaps.

use super::device::Gpu;
use super::gate::{self, ElapsedFn, Event, Gate};
use crate::backend::LayerTime;
use crate::error::Result;
use crate::ir::Network;
use cudarc::driver::sys;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a profiled run's gate holds the stream: longer than the host
/// takes to enqueue a large network's layers (a few microseconds each).
const GATE_MS: f64 = 30.0;

pub struct Profiler {
    events: Vec<(Event, Event)>,
    recorded: Vec<bool>,
    totals: Vec<(f64, usize)>,
    elapsed: ElapsedFn,
    gate: Gate,
    /// Per layer: the layouts its step reads and writes, for the report
    /// (empty for a plan without channels-last tensors).
    layouts: Vec<&'static str>,
}

impl Profiler {
    pub fn new(gpu: &Arc<Gpu>, layers: usize, layouts: Vec<&'static str>) -> Result<Self> {
        let elapsed = gate::elapsed_fn()?;
        let gate = Gate::new(gpu)?;
        let events = (0..layers)
            .map(|_| Ok((Event::new(gpu)?, Event::new(gpu)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Profiler {
            events,
            recorded: vec![false; layers],
            totals: vec![(0.0, 0); layers],
            elapsed,
            gate,
            layouts,
        })
    }

    /// Holds the stream while a run's layers are enqueued.
    pub fn begin_run(&self, stream: sys::CUstream) -> Result<()> {
        self.gate.hold(stream, GATE_MS)
    }

    pub fn start(&mut self, layer: usize, stream: sys::CUstream) -> Result<()> {
        self.events[layer].0.record(stream)
    }

    pub fn stop(&mut self, layer: usize, stream: sys::CUstream) -> Result<()> {
        self.recorded[layer] = true;
        self.events[layer].1.record(stream)
    }

    /// Forgets the times so far.
    pub fn reset(&mut self) {
        self.totals.iter_mut().for_each(|t| *t = (0.0, 0));
    }

    /// Adds the times of the run just finished.
    pub fn collect(&mut self) -> Result<()> {
        for (i, rec) in self.recorded.iter_mut().enumerate() {
            if !std::mem::take(rec) {
                continue;
            }
            let (a, b) = &self.events[i];
            let ms = gate::elapsed(self.elapsed, a, b)?;
            self.totals[i].0 += ms as f64;
            self.totals[i].1 += 1;
        }
        Ok(())
    }

    /// Times per step; `fused` names the layers a fused step (at the place
    /// of its last layer) runs, first to last.
    pub fn report(&self, net: &Network, fused: &HashMap<usize, Vec<usize>>) -> Vec<LayerTime> {
        net.layers
            .iter()
            .enumerate()
            .zip(&self.totals)
            .filter(|(_, t)| t.1 > 0)
            .map(|((i, l), &(ms, n))| LayerTime {
                layer: fused.get(&i).map_or_else(
                    || l.name.clone(),
                    |ls| {
                        ls.iter()
                            .map(|&j| net.layers[j].name.as_str())
                            .collect::<Vec<_>>()
                            .join("+")
                    },
                ),
                kind: fused.get(&i).map_or_else(
                    || l.kind.name().to_string(),
                    |ls| {
                        ls.iter()
                            .map(|&j| net.layers[j].kind.name())
                            .collect::<Vec<_>>()
                            .join("+")
                    },
                ),
                detail: l
                    .outputs
                    .first()
                    .map(|o| {
                        let shape = crate::shape::format_shape(&o.shape);
                        match self.layouts.get(i) {
                            Some(lay) => format!("-> {shape} {lay}"),
                            None => format!("-> {shape}"),
                        }
                    })
                    .unwrap_or_default(),
                total_ms: ms,
                runs: n,
            })
            .collect()
    }
}
