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

/// A CUDA event of a GPU's context, destroyed with this value.
pub struct Event {
    gpu: Arc<Gpu>,
    raw: sys::CUevent,
}

// SAFETY: an event is a handle of a process-wide context; its owner (one
// executor) uses it from one thread at a time.
unsafe impl Send for Event {}

impl Event {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Self> {
        gpu.bind()?;
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let raw = cu("creating an event", result::event::create(flags))?;
        Ok(Event {
            gpu: gpu.clone(),
            raw,
        })
    }

    /// Records the event on `stream`, a stream of the event's context.
    pub fn record(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: a live event of this context and a stream of it.
        cu("recording an event", unsafe {
            result::event::record(self.raw, stream)
        })
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: created in `new`, destroyed once.
            let _ = unsafe { result::event::destroy(self.raw) };
        }
    }
}

/// Milliseconds from `a` to `b`, both recorded on a stream that has
/// finished.
pub fn elapsed(f: ElapsedFn, a: &Event, b: &Event) -> Result<f32> {
    let mut ms = 0f32;
    // SAFETY: both events were recorded and have completed (the caller
    // synchronized their stream); `ms` is valid for writes.
    let s = unsafe { f(&mut ms, a.raw, b.raw) };
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
    start: Event,
    stop: Event,
    elapsed: ElapsedFn,
}

/// Calls per timing: enough to average out a kernel of a few
/// microseconds, few enough to enqueue well within the gate.
const REPS: usize = 8;
/// How long the gate holds the stream while the reps are enqueued.
const GATE_MS: f64 = 2.0;

impl Timer {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Self> {
        Ok(Timer {
            gpu: gpu.clone(),
            gate: Gate::new(gpu)?,
            start: Event::new(gpu)?,
            stop: Event::new(gpu)?,
            elapsed: elapsed_fn()?,
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
        self.start.record(stream)?;
        for _ in 0..REPS {
            f()?;
        }
        self.stop.record(stream)?;
        sync()?;
        Ok(elapsed(self.elapsed, &self.start, &self.stop)? / REPS as f32)
    }

    /// The fastest of `n` candidates, where `run(i)` enqueues candidate
    /// `i` once on `stream`: its index and milliseconds (see [`pick`]).
    /// `what` names the choice in the debug log.
    pub fn fastest(
        &self,
        stream: sys::CUstream,
        n: usize,
        what: &str,
        mut run: impl FnMut(usize) -> Result<()>,
    ) -> Option<(usize, f32)> {
        pick(n, what, |i| self.time(stream, || run(i)))
    }
}

/// Candidates re-timed after the first round: a timing is sometimes
/// inflated (the clocks still ramping up, another process's work), which
/// could leave the truly fastest behind a slower one; the leaders of the
/// first round are timed again, interleaved, and keep their best time.
const CONTENDERS: usize = 3;
/// Further rounds over the contenders.
const ROUNDS: usize = 2;

/// The index and time of the fastest of `n` candidates by `time(i)`: every
/// candidate is timed once, then the [`CONTENDERS`] fastest are timed
/// [`ROUNDS`] more times in turn and keep their minimum. A candidate whose
/// timing fails is passed over; `None` when none ran.
pub fn pick(
    n: usize,
    what: &str,
    mut time: impl FnMut(usize) -> Result<f32>,
) -> Option<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(n);
    for i in 0..n {
        match time(i) {
            Ok(ms) => best.push((i, ms)),
            Err(e) => log::debug!("{what}: candidate {i} did not run: {e}"),
        }
    }
    best.sort_by(|a, b| a.1.total_cmp(&b.1));
    best.truncate(CONTENDERS);
    if best.len() > 1 {
        for _ in 0..ROUNDS {
            for c in best.iter_mut() {
                if let Ok(ms) = time(c.0) {
                    c.1 = c.1.min(ms);
                }
            }
        }
    }
    let chosen = best.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    if log::log_enabled!(log::Level::Debug) {
        let times: Vec<String> = best
            .iter()
            .map(|(i, ms)| format!("{i}: {:.1} us", ms * 1e3))
            .collect();
        log::debug!(
            "{what}: fastest of {n} {:?} ({})",
            chosen.map(|c| c.0),
            times.join(", ")
        );
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripted timings: candidate `i`'s k-th timing is `script[i][k]`
    /// (the last repeats), or an error for an empty script.
    fn scripted<'a>(script: &'a [&'a [f32]]) -> impl FnMut(usize) -> Result<f32> + 'a {
        let mut calls = vec![0usize; script.len()];
        move |i| {
            let s = script[i];
            let k = calls[i].min(s.len().saturating_sub(1));
            calls[i] += 1;
            s.get(k)
                .copied()
                .ok_or_else(|| Error::Device("did not run".into()))
        }
    }

    #[test]
    fn a_first_timing_inflated_does_not_lose_the_fastest() {
        // Candidate 1 is the fastest but its first timing came in slow.
        let script: &[&[f32]] = &[&[0.030], &[0.040, 0.010], &[0.035], &[0.090]];
        assert_eq!(pick(4, "test", scripted(script)), Some((1, 0.010)));
    }

    #[test]
    fn only_the_leaders_are_timed_again() {
        let mut calls = vec![0usize; 5];
        let times = [0.05f32, 0.01, 0.02, 0.03, 0.04];
        let chosen = pick(5, "test", |i| {
            calls[i] += 1;
            Ok(times[i])
        });
        assert_eq!(chosen, Some((1, 0.01)));
        assert_eq!(calls, [1, 1 + ROUNDS, 1 + ROUNDS, 1 + ROUNDS, 1]);
    }

    #[test]
    fn failing_candidates_are_passed_over() {
        let script: &[&[f32]] = &[&[], &[0.020], &[]];
        assert_eq!(pick(3, "test", scripted(script)), Some((1, 0.020)));
        let none: &[&[f32]] = &[&[], &[]];
        assert_eq!(pick(2, "test", scripted(none)), None);
        assert_eq!(pick(0, "test", scripted(&[])), None);
    }

    #[test]
    fn one_candidate_is_timed_once() {
        let mut calls = 0;
        let chosen = pick(1, "test", |_| {
            calls += 1;
            Ok(0.5)
        });
        assert_eq!((chosen, calls), (Some((0, 0.5)), 1));
    }
}
