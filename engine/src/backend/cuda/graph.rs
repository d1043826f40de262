//! A whole run as one CUDA graph: the input copies, every layer's kernels
//! and library calls, and the output copies, captured from the stream once
//! per plan and then replayed with one launch. At batch 1 a network is
//! bound by launch overhead, which this removes; the captured work reads
//! and writes the same buffers each time (the plan's arena and pinned I/O),
//! so a replay computes exactly what the eager run did.

use super::device::{cu, Gpu};
use crate::error::Result;
use cudarc::driver::{result, sys};
use std::sync::Arc;

pub struct Graph {
    gpu: Arc<Gpu>,
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

// SAFETY: graph handles belong to a process-wide context and are used by
// one executor at a time.
unsafe impl Send for Graph {}

impl Graph {
    /// Captures what `work` enqueues on `stream` (nothing runs while
    /// capturing). Capture ends even when `work` fails, and its error is
    /// returned; a graph that does not instantiate is an error too.
    pub fn capture(
        gpu: &Arc<Gpu>,
        stream: sys::CUstream,
        work: impl FnOnce() -> Result<()>,
    ) -> Result<Graph> {
        gpu.bind()?;
        // SAFETY: the stream is the caller's own and alive. Relaxed mode:
        // library calls made while capturing (cuBLAS, cuDNN) may do host
        // work that stricter modes forbid.
        cu("starting a graph capture", unsafe {
            result::stream::begin_capture(
                stream,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        })?;
        let done = work();
        // SAFETY: capture was begun on this stream above.
        let ended = unsafe { result::stream::end_capture(stream) };
        let graph = match (done, ended) {
            (Ok(()), Ok(g)) => g,
            (Err(e), Ok(g)) => {
                // SAFETY: a graph from end_capture, destroyed once.
                let _ = unsafe { result::graph::destroy(g) };
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
            (Ok(()), Err(e)) => return cu("ending a graph capture", Err(e)),
        };
        // SAFETY: a graph just captured; instantiated once.
        let exec =
            match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
                Ok(x) => x,
                Err(e) => {
                    // SAFETY: as above.
                    let _ = unsafe { result::graph::destroy(graph) };
                    return cu("instantiating the captured graph", Err(e));
                }
            };
        Ok(Graph {
            gpu: gpu.clone(),
            graph,
            exec,
        })
    }

    /// Enqueues one replay on `stream`.
    pub fn launch(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: an instantiated graph of this context; the buffers it
        // refers to belong to the plan that owns it, alive as long as it.
        cu("launching the graph", unsafe {
            result::graph::launch(self.exec, stream)
        })
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: created in `capture`, destroyed once.
            unsafe {
                let _ = result::graph::exec_destroy(self.exec);
                let _ = result::graph::destroy(self.graph);
            }
        }
    }
}
