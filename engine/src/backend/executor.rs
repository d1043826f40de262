//! An execution context of a loaded plan: TensorRT's `IExecutionContext`.
//!
//! I/O is bound, not passed: the caller sets the input dims once (buffers
//! are planned then, never during a run), writes each input into the
//! context's own host buffer (pinned memory on a GPU backend) or binds it
//! to device memory it owns, enqueues a run on the context's stream, waits,
//! and reads the outputs where they were bound. A run allocates nothing.
//! [`Executor::run`] wraps the whole sequence for callers that hold host
//! tensors.

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Time spent in one layer over every run since the context was made.
#[derive(Clone, Debug)]
pub struct LayerTime {
    pub layer: String,
    pub kind: String,
    /// Parameters and output dims, for telling layers apart.
    pub detail: String,
    pub total_ms: f64,
    pub runs: usize,
}

/// A loaded plan ready to run, with its own buffers, stream and threads.
/// Inputs and outputs are numbered as the network's.
pub trait Executor: Send {
    /// Sets the dims of every input for the runs that follow (TensorRT's
    /// `setInputShape`); the dims must lie in the network's profiles, which
    /// the caller has checked. Buffers are planned here.
    fn set_input_dims(&mut self, dims: &[Vec<usize>]) -> Result<()>;

    /// The input dims last set, if any.
    fn input_dims(&self) -> Option<&[Vec<usize>]>;

    /// The host buffer input `i` is read from: its little-endian elements
    /// at the dims set, to be written before [`Executor::enqueue`].
    fn input_host(&mut self, i: usize) -> Result<&mut [u8]>;

    /// Starts a run on the bound inputs. On a GPU backend it returns once
    /// the work is queued on the context's stream.
    fn enqueue(&mut self) -> Result<()>;

    /// Waits for the run enqueued last; a failure inside it is reported here.
    fn synchronize(&mut self) -> Result<()>;

    /// How many outputs the network has.
    fn output_count(&self) -> usize;

    /// The element type of output `o`.
    fn output_dtype(&self, o: usize) -> DataType;

    /// The dims of output `o`: for the dims set, and after a run for what
    /// it produced (a data-dependent dim is its bound until then).
    fn output_dims(&self, o: usize) -> Result<Vec<usize>>;

    /// The host buffer output `o` is written to, valid after
    /// [`Executor::synchronize`]: its little-endian elements at
    /// [`Executor::output_dims`].
    fn output_host(&self, o: usize) -> Result<&[u8]>;

    /// Reads input `i` from device memory the caller owns instead of the
    /// host buffer (`None` goes back to the host buffer).
    ///
    /// # Safety
    /// `ptr` must be device memory of the context's device holding the
    /// input's elements at the dims set, and stay valid and unchanged
    /// until every run enqueued while it is bound has finished.
    unsafe fn bind_device_input(&mut self, i: usize, ptr: Option<u64>) -> Result<()> {
        let _ = (i, ptr);
        Err(Error::Unsupported {
            backend: "this",
            what: "device memory inputs".into(),
        })
    }

    /// Writes output `o` to device memory the caller owns instead of the
    /// host buffer (`None` goes back to the host buffer).
    ///
    /// # Safety
    /// `ptr` must be device memory of the context's device with room for
    /// the output at its dims, valid until every run enqueued while it is
    /// bound has finished.
    unsafe fn bind_device_output(&mut self, o: usize, ptr: Option<u64>) -> Result<()> {
        let _ = (o, ptr);
        Err(Error::Unsupported {
            backend: "this",
            what: "device memory outputs".into(),
        })
    }

    /// Makes the inputs and outputs device-resident, as a framework's
    /// tensors kept on the GPU are: the host inputs as written now are
    /// uploaded once into device buffers the context owns, and the outputs
    /// go to device buffers it owns, so later runs copy nothing to or from
    /// the host (the host output buffers are no longer written). For
    /// benchmarks against such frameworks; setting the input dims again
    /// undoes it.
    fn keep_io_on_device(&mut self) -> Result<()> {
        Err(Error::Unsupported {
            backend: "this",
            what: "device-resident inputs and outputs".into(),
        })
    }

    /// Feeds input `i` from raw camera frames (`frame`'s format and size)
    /// converted on the device into the input at the dims set (batch 1):
    /// each run reads the frame written to [`Executor::frame_host`] in place
    /// of the input's host buffer. Setting the input dims again, or `None`,
    /// unbinds it. Backends without device frame conversion say so.
    fn bind_frame_input(
        &mut self,
        i: usize,
        frame: Option<&crate::preprocess::FrameInput>,
    ) -> Result<()> {
        let _ = (i, frame);
        Err(Error::Unsupported {
            backend: "this",
            what: "converting camera frames on the device".into(),
        })
    }

    /// The host buffer the bound frame is written to: its bytes in the
    /// frame's format, packed.
    fn frame_host(&mut self) -> Result<&mut [u8]> {
        Err(Error::Unsupported {
            backend: "this",
            what: "converting camera frames on the device".into(),
        })
    }

    /// Per-layer times, when the context was made with `profile`.
    fn layer_times(&self) -> Option<Vec<LayerTime>> {
        None
    }

    /// Forgets the per-layer times so far (a profile's warm-up runs, whose
    /// first calls load kernels and libraries).
    fn reset_layer_times(&mut self) {}

    /// Device memory the context holds, in bytes (GPU backends).
    fn device_memory(&self) -> Option<u64> {
        None
    }

    /// Runs on host tensors already checked against the network's inputs:
    /// binds them, runs, and copies the outputs out.
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let dims: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        if self.input_dims() != Some(dims.as_slice()) {
            self.set_input_dims(&dims)?;
        }
        for (i, t) in inputs.iter().enumerate() {
            let src = t.as_bytes();
            let dst = self.input_host(i)?;
            if dst.len() != src.len() {
                return Err(Error::Input {
                    name: format!("#{i}"),
                    msg: format!(
                        "{} bytes given where the context holds {}",
                        src.len(),
                        dst.len()
                    ),
                });
            }
            dst.copy_from_slice(src);
        }
        self.run_bound()
    }

    /// Runs on the inputs as bound (host buffers written, device pointers
    /// or frames) and copies the outputs out as host tensors.
    fn run_bound(&mut self) -> Result<Vec<Tensor>> {
        self.enqueue()?;
        self.synchronize()?;
        (0..self.output_count())
            .map(|o| {
                let dims = self.output_dims(o)?;
                Tensor::from_le_bytes(self.output_dtype(o), &dims, self.output_host(o)?)
            })
            .collect()
    }
}
