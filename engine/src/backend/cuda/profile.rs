//! Per-layer GPU time: a pair of CUDA events around each layer's work on
//! the stream, read after the run has finished.

use super::device::{cu, Gpu};
use super::probe;
use crate::backend::LayerTime;
use crate::error::{Error, Result};
use crate::ir::Network;
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::sync::Arc;

type ElapsedFn = unsafe extern "C" fn(*mut f32, sys::CUevent, sys::CUevent) -> sys::CUresult;

pub struct Profiler {
    gpu: Arc<Gpu>,
    events: Vec<(sys::CUevent, sys::CUevent)>,
    recorded: Vec<bool>,
    totals: Vec<(f64, usize)>,
    elapsed: ElapsedFn,
}

// SAFETY: events are handles of a process-wide context, used by one
// executor at a time.
unsafe impl Send for Profiler {}

impl Profiler {
    pub fn new(gpu: &Arc<Gpu>, layers: usize) -> Result<Self> {
        // CUDA 12.8 renamed the function; the driver has one or both.
        let elapsed = probe::libraries()?
            .driver_symbol::<ElapsedFn>(&["cuEventElapsedTime_v2", "cuEventElapsedTime"])
            .ok_or_else(|| Error::Device("the CUDA driver has no cuEventElapsedTime".into()))?;
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
        })
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

    /// Adds the times of the run just finished.
    pub fn collect(&mut self) -> Result<()> {
        for (i, rec) in self.recorded.iter_mut().enumerate() {
            if !std::mem::take(rec) {
                continue;
            }
            let mut ms = 0f32;
            // SAFETY: both events were recorded on the stream, which has
            // finished; `ms` is valid for writes.
            let s = unsafe { (self.elapsed)(&mut ms, self.events[i].0, self.events[i].1) };
            cu("reading an event time", s.result())?;
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
