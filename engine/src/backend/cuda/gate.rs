//! Holding a stream while work is enqueued behind it, and timing that work
//! with a pair of events.
//!
//! At batch 1 many kernels take a few microseconds, less than the host
//! needs to enqueue them (cuDNN and cuBLAS calls cost 5-20 us of host
//! time each). Events recorded around work the GPU reaches as soon as it
//! is enqueued then measure the host, not the GPU. A gate (the `spin`
//! kernel of `kernels/clock.cu`) keeps the stream busy while the host
//! enqueues, so the work behind it runs back to back, as it does when a
//! CUDA graph replays it.

use super::device::{cu, Gpu};
use super::launch::{self, Func};
use super::probe;
use crate::error::{Error, Result};
use cudarc::driver::{result, sys};
use std::sync::Arc;

/// `cuEventElapsedTime`, under the name the driver has.
pub type ElapsedFn = unsafe extern "C" fn(*mut f32, sys::CUevent, sys::CUevent) -> sys::CUresult;

/// The driver's event-timing function (CUDA 12.8 renamed it; a driver
/// has one or both names).
pub fn elapsed_fn() -> Result<ElapsedFn> {
    probe::libraries()?
        .driver_symbol::<ElapsedFn>(&["cuEventElapsedTime_v2", "cuEventElapsedTime"])
        .ok_or_else(|| Error::Device("the CUDA driver has no cuEventElapsedTime".into()))
}

/// Milliseconds between two recorded events whose stream has finished.
pub fn elapsed(f: ElapsedFn, a: sys::CUevent, b: sys::CUevent) -> Result<f32> {
    let mut ms = 0f32;
    // SAFETY: both events were recorded and have completed (the caller
    // synchronized their stream); `ms` is valid for writes.
    let s = unsafe { f(&mut ms, a, b) };
    cu("reading an event time", s.result())?;
    Ok(ms)
}

/// The `spin` kernel on one GPU.
#[derive(Clone, Copy)]
pub struct Gate {
    spin: Func,
}

impl Gate {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Self> {
        Ok(Gate {
            spin: launch::function(gpu, "spin")?,
        })
    }

    /// Holds `stream` for `ms` milliseconds from when the GPU reaches this.
    pub fn hold(&self, stream: sys::CUstream, ms: f64) -> Result<()> {
        let ns = (ms * 1e6) as i64;
        launch::launch(stream, self.spin, 1, &ns)
    }
}

/// Two events and a gate: the GPU time of work enqueued by a closure.
pub struct Timer {
    gpu: Arc<Gpu>,
    gate: Gate,
    start: sys::CUevent,
    stop: sys::CUevent,
    elapsed: ElapsedFn,
}

// SAFETY: events are handles of a process-wide context, used by one
// executor at a time.
unsafe impl Send for Timer {}

/// Calls per timing: enough to average out a kernel of a few
/// microseconds, few enough to enqueue well within the gate.
const REPS: usize = 8;
/// How long the gate holds the stream while the reps are enqueued.
const GATE_MS: f64 = 2.0;

impl Timer {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Self> {
        let gate = Gate::new(gpu)?;
        let elapsed = elapsed_fn()?;
        gpu.bind()?;
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let start = cu("creating an event", result::event::create(flags))?;
        let stop = match cu("creating an event", result::event::create(flags)) {
            Ok(e) => e,
            Err(e) => {
                // SAFETY: created just above, destroyed once.
                let _ = unsafe { result::event::destroy(start) };
                return Err(e);
            }
        };
        Ok(Timer {
            gpu: gpu.clone(),
            gate,
            start,
            stop,
            elapsed,
        })
    }

    /// The GPU milliseconds one call of `f` enqueues on `stream`: two
    /// calls to warm up (a first call may load or build its kernels),
    /// then [`REPS`] calls behind a gate, averaged.
    pub fn time(&self, stream: sys::CUstream, mut f: impl FnMut() -> Result<()>) -> Result<f32> {
        let sync = || {
            // SAFETY: a live stream of the bound context.
            cu("waiting for a timing", unsafe {
                result::stream::synchronize(stream)
            })
        };
        self.gpu.bind()?;
        f()?;
        f()?;
        sync()?;
        self.gate.hold(stream, GATE_MS)?;
        // SAFETY: live events of this context and a stream of it.
        cu("recording an event", unsafe {
            result::event::record(self.start, stream)
        })?;
        for _ in 0..REPS {
            f()?;
        }
        // SAFETY: as above.
        cu("recording an event", unsafe {
            result::event::record(self.stop, stream)
        })?;
        sync()?;
        Ok(elapsed(self.elapsed, self.start, self.stop)? / REPS as f32)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: created in `new`, destroyed once.
            unsafe {
                let _ = result::event::destroy(self.start);
                let _ = result::event::destroy(self.stop);
            }
        }
    }
}
