//! A pipeline: frames from a source -> pixel conversion, resize and
//! normalization -> its engine -> a postprocessor -> subscribers. Each runs
//! on its own thread with its own execution context (on a GPU, its own
//! stream), so pipelines never wait on each other; the same thread answers
//! clients' `infer` requests for it, so its engine runs one thing at a
//! time. On a GPU backend a frame crosses to the device once, as it came
//! from the camera (MJPEG decoded first), and is converted, resized and
//! normalized there, in the same CUDA graph as the engine.

use crate::config::PipelineConfig;
use crate::engines::LoadedEngine;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::health::{Health, Progress};
use crate::hub::{Hub, Outbox};
use crate::pixel;
use crate::postprocess::{EngineInfo, Output, Postprocessor, Registry};
use crate::protocol::encode;
use crate::sources::fanout::FrameRx;
use crate::sources::runner::SourceHandle;
use crate::sources::status::{SourceState, SourceStatus};
use crate::stats::PipelineStats;
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use jetrt_engine::engine::Context;
use jetrt_engine::engine_file::Preprocess;
use jetrt_engine::preprocess::rgb_to_tensor;
use jetrt_engine::preprocess::{FrameInput, PixelFormat};
use jetrt_engine::shape::Dim;
use jetrt_engine::{DataType, Tensor};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `infer` requests waiting per pipeline; more are refused as busy.
const INFER_QUEUE: usize = 8;

/// How a frame becomes the engine's input.
#[derive(Clone, Debug)]
pub struct ImageInput {
    pub height: usize,
    pub width: usize,
    pub pre: Preprocess,
}

/// The engine's input geometry and the preprocessing to use: the engine's
/// record, overridden by the pipeline's `[preprocess]`. The same rules as
/// `engine-builder run --image`.
pub fn image_input(
    engine: &LoadedEngine,
    cfg: &PipelineConfig,
) -> std::result::Result<ImageInput, String> {
    let net = engine.engine.network();
    let input = match net.inputs.as_slice() {
        [i] => i,
        v => {
            return Err(format!(
                "a camera pipeline needs an engine with one input; this one has {}",
                v.len()
            ))
        }
    };
    let dims = &input.info.shape;
    if input.info.dtype != DataType::F32 || dims.len() != 4 || dims[1] != Dim::Known(3) {
        return Err(format!(
            "a camera pipeline needs a float32 Nx3xHxW input; '{}' is {} {}",
            input.name,
            input.info.dtype,
            jetrt_engine::shape::format_shape(dims)
        ));
    }
    let mut pre = engine
        .engine
        .header()
        .preprocess
        .clone()
        .unwrap_or_default();
    let o = &cfg.preprocess;
    if o.input_size.is_some() {
        pre.input_size = o.input_size;
    }
    pre.mean = o.mean.unwrap_or(pre.mean);
    pre.std = o.std.unwrap_or(pre.std);
    pre.color = o.color.unwrap_or(pre.color);
    let [height, width] = match (dims[2].known(), dims[3].known(), pre.input_size) {
        (Some(h), Some(w), _) => [h, w],
        (_, _, Some(hw)) => hw,
        _ => return Err("the engine's input size is dynamic; set preprocess.input_size".into()),
    };
    Ok(ImageInput { height, width, pre })
}

pub enum InferInput {
    Image(Frame),
    Tensor(Tensor),
}

/// A client's `infer`, answered into its outbox.
pub struct InferJob {
    pub id: Option<Value>,
    pub input: InferInput,
    pub reply: Outbox,
}

pub struct PipelineHandle {
    pub name: String,
    pub config: PipelineConfig,
    pub stats: Arc<PipelineStats>,
    pub progress: Arc<Progress>,
    pub input: ImageInput,
    /// The engine's input as declared (dims and profile), which a tensor
    /// sent with `infer` must fit.
    pub tensor_input: Vec<jetrt_engine::ir::Input>,
    pub labels: Vec<String>,
    pub outputs: Vec<String>,
    /// Where the pipeline's context runs: backend, device, GPU memory.
    pub placement: Value,
    /// Why the pipeline stopped by itself (a GPU fault), if it did.
    failure: Arc<Mutex<Option<String>>>,
    source_status: Arc<SourceStatus>,
    frames: FrameRx,
    infer_tx: Sender<InferJob>,
    stop_tx: Sender<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    source: Arc<SourceHandle>,
}

impl PipelineHandle {
    /// Makes the pipeline's context and postprocessor and starts its thread.
    pub fn start(
        name: &str,
        config: &PipelineConfig,
        engine: &LoadedEngine,
        source: &Arc<SourceHandle>,
        hub: &Arc<Hub>,
        registry: &Registry,
    ) -> Result<Self> {
        let fail = |msg: String| Error::Pipeline {
            name: name.to_string(),
            msg,
        };
        let input = image_input(engine, config).map_err(fail)?;
        let header = engine.engine.header();
        let post = registry
            .build(
                &config.postprocess.kind,
                &config.postprocess.params,
                &EngineInfo {
                    outputs: &header.outputs,
                    labels: &header.labels,
                },
            )
            .map_err(|e| fail(format!("postprocess: {e}")))?;
        let ctx = engine.context()?;
        let placement = json!({
            "backend": ctx.backend().name(),
            "device": engine.config.device,
            "gpu_memory_bytes": ctx.device_memory(),
        });
        let (frames, queue) = source.fanout.attach(name);
        let stats = Arc::new(PipelineStats::new(queue.drop_counter()));
        let progress = Arc::new(Progress::default());
        let (infer_tx, infer_rx) = bounded(INFER_QUEUE);
        let (stop_tx, stop_rx) = bounded(1);
        let failure = Arc::new(Mutex::new(None));
        let worker = Worker {
            name: name.to_string(),
            ctx,
            input: input.clone(),
            post,
            hub: hub.clone(),
            stats: stats.clone(),
            progress: progress.clone(),
            min_interval: config.max_rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next_due: None,
            infer_seq: 0,
            errors_logged: 0,
            device_frames: true,
            bound: None,
            failure: failure.clone(),
        };
        let rx = frames.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pipe-{name}"))
            .spawn(move || worker.run(&rx, &infer_rx, &stop_rx))
            .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
        Ok(PipelineHandle {
            name: name.to_string(),
            config: config.clone(),
            stats,
            progress,
            input,
            tensor_input: engine.engine.network().inputs.clone(),
            labels: header.labels.clone(),
            outputs: header.outputs.iter().map(|o| o.name.clone()).collect(),
            placement,
            failure,
            source_status: source.status.clone(),
            frames,
            infer_tx,
            stop_tx,
            thread: Mutex::new(Some(thread)),
            source: source.clone(),
        })
    }

    /// Queues an `infer`; says why not when the pipeline is busy or gone.
    pub fn infer(&self, job: InferJob) -> std::result::Result<(), &'static str> {
        self.infer_tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => "busy",
            TrySendError::Disconnected(_) => "stopped",
        })
    }

    pub fn health(&self) -> Health {
        let timeout = self.config.stall_timeout;
        let finished = self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|t| t.is_finished());
        if finished {
            let why = self
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Health::Failed(why.unwrap_or_else(|| "its thread ended".into()));
        }
        let rate_wait = self
            .config
            .max_rate
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
        if let Some(why) = crate::health::stall(
            self.progress.busy_for(),
            self.progress.idle_for(),
            !self.frames.is_empty(),
            timeout,
            rate_wait,
        ) {
            return Health::Stalled(why);
        }
        match self.source_status.state() {
            SourceState::Streaming | SourceState::ClientFed => Health::Running,
            SourceState::Waiting(why) => Health::Waiting(why),
            SourceState::Starting => Health::Waiting("the source is starting".into()),
            SourceState::Ended => Health::Waiting("the source reached its end".into()),
            SourceState::Stopped => Health::Waiting("the source is stopped".into()),
        }
    }

    pub fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "source": self.config.source,
            "engine": self.config.engine,
            "postprocess": self.config.postprocess.kind,
            "input": {"width": self.input.width, "height": self.input.height},
            "labels": self.labels,
            "outputs": self.outputs,
            "max_rate": self.config.max_rate,
            "health": self.health(),
            "placement": self.placement,
        })
    }

    /// Stops the thread after the frame in work, and waits for it.
    pub fn stop(&self) {
        let _ = self.stop_tx.try_send(());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Only the first stop detaches: by a later one (the handle dropped
        // after a restart) a new pipeline of the same name owns the queue.
        if let Some(t) = thread {
            if t.join().is_err() {
                log::error!("pipeline '{}': its thread panicked", self.name);
            }
            self.source.fanout.detach(&self.name);
        }
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    name: String,
    ctx: Context,
    input: ImageInput,
    post: Box<dyn Postprocessor>,
    hub: Arc<Hub>,
    stats: Arc<PipelineStats>,
    progress: Arc<Progress>,
    min_interval: Option<Duration>,
    next_due: Option<Instant>,
    infer_seq: u64,
    errors_logged: u64,
    /// Whether frames may go to the device as they are (until the backend
    /// says it cannot convert them there).
    device_frames: bool,
    /// The frame format the context's input is bound to, if any.
    bound: Option<FrameInput>,
    failure: Arc<Mutex<Option<String>>>,
}

/// A processed input.
struct Done {
    output: Output,
    engine_ms: f64,
}

impl Worker {
    fn run(mut self, frames: &FrameRx, infers: &Receiver<InferJob>, stop: &Receiver<()>) {
        loop {
            select! {
                recv(stop) -> _ => return,
                recv(infers) -> j => match j {
                    Ok(j) => self.infer(j),
                    Err(_) => return,
                },
                recv(frames) -> f => match f {
                    Ok(f) => {
                        let Some(f) = self.pace(f, frames, infers, stop) else { return };
                        if let Err(fault) = self.frame(&f) {
                            // The GPU context is unusable after a fault: this
                            // pipeline stops, saying why; the others go on.
                            log::error!("pipeline '{}': {fault}; it stops", self.name);
                            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(fault);
                            return;
                        }
                    }
                    Err(_) => return,
                },
            }
        }
    }

    /// Waits until `max_rate` allows the next result, serving `infer`
    /// meanwhile, then takes the newest frame. `None`: stop.
    fn pace(
        &mut self,
        mut f: Arc<Frame>,
        frames: &FrameRx,
        infers: &Receiver<InferJob>,
        stop: &Receiver<()>,
    ) -> Option<Arc<Frame>> {
        let (Some(interval), Some(due)) = (self.min_interval, self.next_due) else {
            if let Some(i) = self.min_interval {
                self.next_due = Some(Instant::now() + i);
            }
            return Some(f);
        };
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            select! {
                recv(stop) -> _ => return None,
                recv(infers) -> j => if let Ok(j) = j { self.infer(j) },
                default(due - now) => break,
            }
        }
        while let Ok(newer) = frames.try_recv() {
            self.stats
                .skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f = newer;
        }
        // The next result is due one interval after this one, or after now
        // when this one came late (no burst to catch up).
        let now = Instant::now();
        let late_base = now.checked_sub(interval).unwrap_or(due);
        self.next_due = Some(due.max(late_base) + interval);
        Some(f)
    }

    fn image(&mut self, f: &Frame) -> std::result::Result<Done, String> {
        if self.device_frames {
            if let Some(done) = self.image_on_device(f)? {
                return Ok(done);
            }
        }
        let (rgb, w, h) = pixel::to_rgb(f).map_err(|e| e.to_string())?;
        let t = rgb_to_tensor(
            &rgb,
            w as usize,
            h as usize,
            self.input.height,
            self.input.width,
            &self.input.pre,
        );
        self.tensor(t)
    }

    /// The frame through the device's own conversion: `None` when the
    /// backend has none (the cpu path then serves this and later frames).
    fn image_on_device(&mut self, f: &Frame) -> std::result::Result<Option<Done>, String> {
        let decoded;
        let (format, w, h, data): (PixelFormat, usize, usize, &[u8]) =
            match pixel::raw_frame(&f.data, f.width, f.height, f.format)
                .map_err(|e| e.to_string())?
            {
                Some((raw, data)) => (raw, f.width as usize, f.height as usize, data),
                None => {
                    let (rgb, w, h) = pixel::to_rgb(f).map_err(|e| e.to_string())?;
                    decoded = rgb;
                    (PixelFormat::Rgb, w as usize, h as usize, &decoded)
                }
            };
        let spec = FrameInput {
            format,
            width: w,
            height: h,
            pre: self.input.pre.clone(),
        };
        let t0 = Instant::now();
        if self.bound.as_ref() != Some(&spec) {
            let dims = vec![vec![1, 3, self.input.height, self.input.width]];
            if self.ctx.executor().input_dims() != Some(dims.as_slice()) {
                self.ctx.set_input_dims(&dims).map_err(|e| e.to_string())?;
            }
            match self.ctx.executor().bind_frame_input(0, Some(&spec)) {
                Ok(()) => self.bound = Some(spec),
                Err(jetrt_engine::Error::Unsupported { .. }) => {
                    self.device_frames = false;
                    return Ok(None);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let ex = self.ctx.executor();
        let outputs = ex
            .frame_host()
            .map(|host| host.copy_from_slice(data))
            .and_then(|()| ex.run_bound())
            .map_err(|e| e.to_string())?;
        let engine_ms = t0.elapsed().as_secs_f64() * 1e3;
        let output = self.post.process(&outputs)?;
        Ok(Some(Done { output, engine_ms }))
    }

    fn tensor(&mut self, t: Tensor) -> std::result::Result<Done, String> {
        if self.bound.take().is_some() {
            // The input goes back to taking tensors.
            self.ctx
                .executor()
                .bind_frame_input(0, None)
                .map_err(|e| e.to_string())?;
        }
        let t0 = Instant::now();
        let outputs = self.ctx.run(vec![t]).map_err(|e| e.to_string())?;
        let engine_ms = t0.elapsed().as_secs_f64() * 1e3;
        let output = self.post.process(&outputs)?;
        Ok(Done { output, engine_ms })
    }

    /// Runs one frame; `Err` is a device fault that ends the pipeline.
    fn frame(&mut self, f: &Frame) -> std::result::Result<(), String> {
        self.progress.begin();
        let done = self.image(f);
        self.progress.end();
        match done {
            Ok(d) => {
                let latency_ms = f.captured.elapsed().as_secs_f64() * 1e3;
                self.stats.record(latency_ms, d.engine_ms);
                if self.hub.has_subscribers(&self.name) {
                    let w = Arc::new(result_message(
                        &self.name,
                        f.seq,
                        f.timestamp(),
                        latency_ms,
                        &d,
                        None,
                    ));
                    self.hub.publish(&self.name, &w);
                }
            }
            Err(e) => {
                self.stats
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The first error and then every 100th, so a bad stream
                // cannot flood the journal.
                if self.errors_logged.is_multiple_of(100) {
                    log::warn!("pipeline '{}': frame {}: {e}", self.name, f.seq);
                }
                self.errors_logged += 1;
                if is_device_fault(&e) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn infer(&mut self, job: InferJob) {
        self.stats
            .infers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seq = self.infer_seq;
        self.infer_seq += 1;
        let t0 = Instant::now();
        let (done, ts) = match job.input {
            InferInput::Image(f) => (self.image(&f), f.timestamp()),
            InferInput::Tensor(t) => (self.tensor(t), now_ts()),
        };
        let w = match done {
            Ok(d) => {
                let latency_ms = t0.elapsed().as_secs_f64() * 1e3;
                result_message(&self.name, seq, ts, latency_ms, &d, job.id.as_ref())
            }
            Err(e) => encode(
                &json!({"type": "error", "id": job.id, "code": "infer_failed",
                        "message": format!("pipeline '{}': {e}", self.name)}),
                None,
            ),
        };
        job.reply.reply(Arc::new(w));
    }
}

/// Whether an error is the GPU failing (a CUDA call, an allocation), after
/// which its context cannot be trusted, rather than one frame being bad.
fn is_device_fault(msg: &str) -> bool {
    msg.contains("CUDA:") || msg.contains("cuDNN:") || msg.contains("cuBLAS:")
}

fn now_ts() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn result_message(
    pipeline: &str,
    seq: u64,
    timestamp: f64,
    latency_ms: f64,
    d: &Done,
    id: Option<&Value>,
) -> Vec<u8> {
    let mut j = json!({
        "type": "result",
        "pipeline": pipeline,
        "seq": seq,
        "timestamp": timestamp,
        "latency_ms": latency_ms,
        "engine_ms": d.engine_ms,
        "output": d.output.json,
    });
    if let Some(id) = id {
        j["id"] = id.clone();
    }
    if let Some(b) = &d.output.binary {
        j["binary"] = json!({"bytes": b.len()});
    }
    encode(&j, d.output.binary.as_deref())
}
