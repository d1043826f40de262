//! Per-layer GPU time: a pair of CUDA events around each layer's work on
//! the stream, read after the run has finished. Each profiled run starts
//! behind a gate (`gate.rs`), so the layers run back to back and their
//! times are the GPU's, not the host's launch gaps.

use super::device::{cu, Gpu};
use super::gate::{self, ElapsedFn, Gate};
use crate::backend::LayerTime;
use crate::error::Result;
use crate::ir::Network;
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::sync::Arc;

/// How long a profiled run's gate holds the stream: longer than the host
/// takes to enqueue a large network's layers (a few microseconds each).
const GATE_MS: f64 = 30.0;

pub struct Profiler {
    gpu: Arc<Gpu>,
    events: Vec<(sys::CUevent, sys::CUevent)>,
    recorded: Vec<bool>,
    totals: Vec<(f64, usize)>,
    elapsed: ElapsedFn,
    gate: Gate,
}

// SAFETY: events are handles of a process-wide context, used by one
// executor at a time.
unsafe impl Send for Profiler {}

impl Profiler {
    pub fn new(gpu: &Arc<Gpu>, layers: usize) -> Result<Self> {
        let elapsed = gate::elapsed_fn()?;
        let gate = Gate::new(gpu)?;
        gpu.bind()?;
        let mut events = Vec::with_capacity(layers);
        for _ in 0..layers {
            let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
            let a = cu("creating an event", result::event::create(flags))?;
            let b = cu("creating an event", result::event::create(flags))?;
            events.push((a, b));
        }
        Ok(Profiler {
            gpu: gpu.clone(),
            events,
            recorded: vec![false; layers],
            totals: vec![(0.0, 0); layers],
            elapsed,
            gate,
        })
    }

    /// Holds the stream while a run's layers are enqueued.
    pub fn begin_run(&self, stream: sys::CUstream) -> Result<()> {
        self.gate.hold(stream, GATE_MS)
    }

    pub fn start(&mut self, layer: usize, stream: sys::CUstream) -> Result<()> {
        // SAFETY: a live event of this context and the context's stream.
        cu("recording an event", unsafe {
            result::event::record(self.events[layer].0, stream)
        })
    }

    pub fn stop(&mut self, layer: usize, stream: sys::CUstream) -> Result<()> {
        self.recorded[layer] = true;
        // SAFETY: as above.
        cu("recording an event", unsafe {
            result::event::record(self.events[layer].1, stream)
        })
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
            let ms = gate::elapsed(self.elapsed, self.events[i].0, self.events[i].1)?;
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
                    .map(|o| format!("-> {}", crate::shape::format_shape(&o.shape)))
                    .unwrap_or_default(),
                total_ms: ms,
                runs: n,
            })
            .collect()
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            for &(a, b) in &self.events {
                // SAFETY: created in `new`, destroyed once.
                unsafe {
                    let _ = result::event::destroy(a);
                    let _ = result::event::destroy(b);
                }
            }
        }
    }
}
