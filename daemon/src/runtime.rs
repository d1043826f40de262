//! The daemon as a whole: engines, sources and pipelines started from a
//! config, the server, health for the watchdog, reload on SIGHUP, and the
//! graceful stop on SIGTERM/SIGINT.
//!
//! One pipeline failing (a missing engine, an absent camera) never stops
//! the others: it is reported as failed or waiting, and the rest serve.

use crate::config::{self, Config};
use crate::engines::{self, LoadedEngine};
use crate::error::Result;
use crate::health::Health;
use crate::hub::{Hub, Outbox};
use crate::notify::Notifier;
use crate::pipeline::PipelineHandle;
use crate::postprocess::Registry;
use crate::server::{Clients, Server};
use crate::sources::runner::SourceHandle;
use crossbeam_channel::{bounded, select, Receiver};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub struct Limits {
    pub max_clients: usize,
    pub client_queue: usize,
    pub max_message_bytes: usize,
}

/// What is running now; replaced piece by piece on reload.
pub struct State {
    pub config: Config,
    pub engines: BTreeMap<String, Arc<LoadedEngine>>,
    pub sources: BTreeMap<String, Arc<SourceHandle>>,
    pub pipelines: BTreeMap<String, Arc<PipelineHandle>>,
    /// Pipelines (and engines) that could not start, and why.
    pub failed: BTreeMap<String, String>,
    pub engine_errors: BTreeMap<String, String>,
}

/// Shared by the main loop, the server and its client threads.
pub struct Shared {
    pub hub: Arc<Hub>,
    pub state: RwLock<State>,
    pub limits: Limits,
    pub clients: Clients,
    pub registry: Registry,
    /// systemd's notify socket (a no-op outside systemd).
    pub notifier: Arc<Notifier>,
    pub started: Instant,
}

impl State {
    /// The same engines, sources and pipelines (shared, not copied).
    fn snapshot(&self) -> State {
        State {
            config: self.config.clone(),
            engines: self.engines.clone(),
            sources: self.sources.clone(),
            pipelines: self.pipelines.clone(),
            failed: self.failed.clone(),
            engine_errors: self.engine_errors.clone(),
        }
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pipeline(&self, name: &str) -> Option<Arc<PipelineHandle>> {
        self.read().pipelines.get(name).cloned()
    }

    /// Whether the config defines the pipeline (running or not).
    pub fn has_pipeline(&self, name: &str) -> bool {
        self.read().config.pipelines.contains_key(name)
    }

    pub fn pipeline_names(&self) -> Vec<String> {
        self.read().config.pipelines.keys().cloned().collect()
    }

    pub fn failure(&self, name: &str) -> Option<String> {
        self.read().failed.get(name).cloned()
    }

    pub fn source(&self, name: &str) -> Option<Arc<SourceHandle>> {
        self.read().sources.get(name).cloned()
    }

    pub fn list(&self) -> Value {
        let s = self.read();
        let mut pipelines = Vec::new();
        for (name, cfg) in &s.config.pipelines {
            match s.pipelines.get(name) {
                Some(p) => pipelines.push(p.describe()),
                None => pipelines.push(json!({
                    "name": name, "source": cfg.source, "engine": cfg.engine,
                    "postprocess": cfg.postprocess.kind,
                    "health": Health::Failed(s.failed.get(name).cloned().unwrap_or_default()),
                })),
            }
        }
        let sources: Vec<Value> = s
            .sources
            .iter()
            .map(|(n, src)| json!({"name": n, "kind": src.config.kind.name(), "status": src.status.state()}))
            .collect();
        json!({"type": "list", "pipelines": pipelines, "sources": sources})
    }

    pub fn stats(&self, you: &Outbox) -> Value {
        let s = self.read();
        let mut pipelines = serde_json::Map::new();
        for (name, p) in &s.pipelines {
            let mut v = p.stats.to_json();
            v["health"] = json!(p.health());
            v["placement"] = p.placement.clone();
            v["subscribers"] = json!(self.hub.subscribers(name));
            pipelines.insert(name.clone(), v);
        }
        for (name, why) in &s.failed {
            pipelines.insert(name.clone(), json!({"health": Health::Failed(why.clone())}));
        }
        let sources: serde_json::Map<String, Value> = s
            .sources
            .iter()
            .map(|(n, src)| {
                let drops: serde_json::Map<String, Value> = src
                    .fanout
                    .drops()
                    .into_iter()
                    .map(|(p, d)| (p, json!(d)))
                    .collect();
                (
                    n.clone(),
                    json!({"kind": src.config.kind.name(), "status": src.status.state(),
                           "frames": src.status.frames.load(std::sync::atomic::Ordering::Relaxed),
                           "errors": src.status.errors.load(std::sync::atomic::Ordering::Relaxed),
                           "drops": drops}),
                )
            })
            .collect();
        json!({
            "type": "stats",
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "pipelines": pipelines,
            "sources": sources,
            "clients": {
                "connected": self.clients.count(),
                "max": self.limits.max_clients,
                "dropped_messages": self.clients.dropped() + self.hub.dropped_by_gone_clients(),
            },
            "you": {"client": you.client, "dropped_messages": you.dropped(),
                    "sent_messages": you.sent.load(std::sync::atomic::Ordering::Relaxed)},
        })
    }

    /// Whether the watchdog should be fed, and a one-line status.
    pub fn health(&self) -> (bool, String) {
        let s = self.read();
        let (mut running, mut waiting, mut stalled) = (0, Vec::new(), Vec::new());
        for (name, p) in &s.pipelines {
            match p.health() {
                Health::Running => running += 1,
                Health::Waiting(why) => waiting.push(format!("{name}: {why}")),
                Health::Stalled(why) | Health::Failed(why) => {
                    stalled.push(format!("{name}: {why}"))
                }
            }
        }
        let mut line = format!("{running} pipeline(s) running");
        if !waiting.is_empty() {
            line.push_str(&format!(
                ", {} waiting ({})",
                waiting.len(),
                waiting.join("; ")
            ));
        }
        if !s.failed.is_empty() {
            let f: Vec<String> = s.failed.iter().map(|(n, w)| format!("{n}: {w}")).collect();
            line.push_str(&format!(", {} failed ({})", f.len(), f.join("; ")));
        }
        if !stalled.is_empty() {
            line.push_str(&format!(
                ", {} STALLED ({})",
                stalled.len(),
                stalled.join("; ")
            ));
        }
        line.push_str(&format!("; {} client(s)", self.clients.count()));
        (stalled.is_empty(), line)
    }
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub kept: Vec<String>,
    pub restarted: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub failed: Vec<String>,
}

pub struct Daemon {
    pub shared: Arc<Shared>,
    server: Option<Server>,
}

/// Engines, sources and pipelines for `config`, reusing from `old` what did
/// not change.
fn build_state(
    config: Config,
    old: Option<&State>,
    hub: &Arc<Hub>,
    registry: &Registry,
    notifier: &Notifier,
    report: &mut ReloadReport,
) -> State {
    let state_dir = &config.daemon.state_dir;
    if let Err(e) = std::fs::create_dir_all(state_dir) {
        log::warn!(
            "cannot create the state dir {} ({e}); engines built from ONNX will not be cached",
            state_dir.display()
        );
    }
    let mut engines = BTreeMap::new();
    let mut engine_errors = BTreeMap::new();
    for (name, ecfg) in &config.engines {
        let used = config.pipelines.values().any(|p| &p.engine == name);
        if !used {
            continue;
        }
        if let Some(e) = old
            .and_then(|o| o.engines.get(name))
            .filter(|e| &e.config == ecfg)
        {
            engines.insert(name.clone(), e.clone());
            continue;
        }
        let t = Instant::now();
        let loaded = crate::building::with_heartbeat(name, notifier, crate::building::BEAT, |st| {
            engines::load(name, ecfg, state_dir, st)
        });
        match loaded {
            Ok(e) => {
                log::info!(
                    "engine '{name}': ready in {:.2} s",
                    t.elapsed().as_secs_f64()
                );
                engines.insert(name.clone(), Arc::new(e));
            }
            // On a reload, a running engine whose new settings do not load
            // (a missing or broken model) keeps running as it was: a bad
            // edit must not take down pipelines that worked. The next
            // reload tries the new settings again.
            Err(e) => match old.and_then(|o| o.engines.get(name)) {
                Some(running) => {
                    log::error!("{e}; its pipelines keep the engine they run");
                    engines.insert(name.clone(), running.clone());
                }
                None => {
                    log::error!("{e}; pipelines using it stay down");
                    engine_errors.insert(name.clone(), e.to_string());
                }
            },
        }
    }
    let mut sources = BTreeMap::new();
    for (name, scfg) in &config.sources {
        if let Some(s) = old
            .and_then(|o| o.sources.get(name))
            .filter(|s| &s.config == scfg)
        {
            sources.insert(name.clone(), s.clone());
            continue;
        }
        match SourceHandle::start(name, scfg) {
            Ok(s) => {
                sources.insert(name.clone(), Arc::new(s));
            }
            Err(e) => log::error!("source '{name}': cannot start its thread: {e}"),
        }
    }
    let mut pipelines = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (name, pcfg) in &config.pipelines {
        let (Some(engine), Some(source)) = (engines.get(&pcfg.engine), sources.get(&pcfg.source))
        else {
            let why = engine_errors
                .get(&pcfg.engine)
                .cloned()
                .unwrap_or_else(|| format!("source '{}' did not start", pcfg.source));
            failed.insert(name.clone(), why);
            report.failed.push(name.clone());
            continue;
        };
        let previous = old.and_then(|o| o.pipelines.get(name));
        if let Some(p) = previous {
            let same = p.config == *pcfg
                && old.is_some_and(|o| {
                    o.engines
                        .get(&pcfg.engine)
                        .is_some_and(|e| Arc::ptr_eq(e, engine))
                        && o.sources
                            .get(&pcfg.source)
                            .is_some_and(|s| Arc::ptr_eq(s, source))
                });
            if same {
                pipelines.insert(name.clone(), p.clone());
                report.kept.push(name.clone());
                continue;
            }
            // The old one must let go of its queue before the new attaches.
            p.stop();
        }
        match PipelineHandle::start(name, pcfg, engine, source, hub, registry) {
            Ok(p) => {
                log::info!(
                    "pipeline '{name}': {} -> {} -> {} ({}x{} input)",
                    pcfg.source,
                    pcfg.engine,
                    pcfg.postprocess.kind,
                    p.input.width,
                    p.input.height
                );
                pipelines.insert(name.clone(), Arc::new(p));
                if previous.is_some() {
                    report.restarted.push(name.clone());
                } else {
                    report.started.push(name.clone());
                }
            }
            Err(e) => {
                log::error!("{e}");
                failed.insert(name.clone(), e.to_string());
                report.failed.push(name.clone());
            }
        }
    }
    State {
        config,
        engines,
        sources,
        pipelines,
        failed,
        engine_errors,
    }
}

impl Daemon {
    /// Loads engines, starts sources and pipelines, then listens.
    /// Builds that take long report to `notifier` (and feed its watchdog).
    pub fn start(config: Config, registry: Registry, notifier: Arc<Notifier>) -> Result<Self> {
        let hub = Arc::new(Hub::default());
        let d = &config.daemon;
        let limits = Limits {
            max_clients: d.max_clients,
            client_queue: d.client_queue,
            max_message_bytes: d.max_message_bytes,
        };
        let (socket, mode, group) = (d.socket.clone(), d.socket_mode, d.socket_group.clone());
        let mut report = ReloadReport::default();
        let state = build_state(config, None, &hub, &registry, &notifier, &mut report);
        let shared = Arc::new(Shared {
            hub,
            state: RwLock::new(state),
            limits,
            clients: Clients::default(),
            registry,
            notifier,
            started: Instant::now(),
        });
        let server = Server::start(&socket, mode, group.as_deref(), shared.clone())?;
        log::info!("listening on {}", socket.display());
        Ok(Daemon {
            shared,
            server: Some(server),
        })
    }

    /// Applies a new (valid) config: changed pipelines restart, the others
    /// keep running without a dropped frame. Engines are loaded (or built)
    /// before the state is swapped, so clients are served meanwhile.
    pub fn reload(&self, config: Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        let old = self.shared.read().snapshot();
        if config.daemon != old.config.daemon {
            log::set_max_level(config.daemon.log_level);
            let mut d = config.daemon.clone();
            d.log_level = old.config.daemon.log_level;
            if d != old.config.daemon {
                log::warn!(
                    "reload: [daemon] settings other than log_level take effect at the next start"
                );
            }
        }
        let new = build_state(
            config,
            Some(&old),
            &self.shared.hub,
            &self.shared.registry,
            &self.shared.notifier,
            &mut report,
        );
        for (name, p) in &old.pipelines {
            if !new.pipelines.get(name).is_some_and(|n| Arc::ptr_eq(n, p)) {
                p.stop();
                if !new.config.pipelines.contains_key(name) {
                    report.stopped.push(name.clone());
                }
            }
        }
        *self.shared.state.write().unwrap_or_else(|e| e.into_inner()) = new;
        // Sources and engines nobody uses any more go with `old` (sources
        // stop their threads when dropped).
        drop(old);
        report
    }

    /// Stops sources and pipelines (finishing the frame in work), flushes
    /// clients' outboxes for up to `grace`, closes connections and removes
    /// the socket.
    pub fn shutdown(mut self, grace: Duration) {
        {
            let mut s = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            for p in s.pipelines.values() {
                p.stop();
            }
            for src in s.sources.values() {
                src.stop();
            }
            s.pipelines.clear();
            s.sources.clear();
        }
        if let Some(mut server) = self.server.take() {
            server.shutdown(grace);
        }
    }
}

/// Signals the main loop acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Stop,
    Reload,
}

/// A thread turning SIGTERM/SIGINT/SIGHUP into [`Signal`]s.
pub fn signals() -> std::io::Result<Receiver<Signal>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut sigs = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = bounded(16);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in sigs.forever() {
                let sig = if s == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Stop
                };
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// Runs the daemon until SIGTERM/SIGINT: READY once engines are loaded and
/// the socket listens, STATUS on changes, WATCHDOG while healthy, reload on
/// SIGHUP (an invalid config is rejected and the running one stays).
pub fn serve(config_path: &Path, config: Config, registry: Registry) -> Result<()> {
    let signals = signals().map_err(|e| crate::Error::io("signal handler", e))?;
    let notifier = Arc::new(Notifier::from_env());
    let daemon = Daemon::start(config, registry.clone(), notifier.clone())?;
    let (_, status) = daemon.shared.health();
    log::info!("ready: {status}");
    notifier.ready(&status);
    let watchdog = notifier.watchdog();
    // Ping at half the watchdog period, and look at health at least each second.
    let tick = watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 2).min(Duration::from_secs(1))
    });
    let mut last_status = status;
    let mut was_healthy = true;
    loop {
        select! {
            recv(signals) -> s => match s {
                Ok(Signal::Reload) => {
                    notifier.reloading();
                    log::info!("reloading {}", config_path.display());
                    match config::load(config_path, &registry) {
                        Ok(c) => {
                            for w in config::check(&c) {
                                log::warn!("{}: {w}", config_path.display());
                            }
                            let r = daemon.reload(c);
                            log::info!(
                                "reloaded: kept {:?}, restarted {:?}, started {:?}, stopped {:?}, failed {:?}",
                                r.kept, r.restarted, r.started, r.stopped, r.failed
                            );
                        }
                        Err(e) => log::error!("reload rejected, the running config stays:\n{e}"),
                    }
                    let (_, s) = daemon.shared.health();
                    notifier.ready(&s);
                    last_status = s;
                }
                Ok(Signal::Stop) | Err(_) => break,
            },
            default(tick) => {}
        }
        let (healthy, status) = daemon.shared.health();
        if healthy {
            if watchdog.is_some() {
                notifier.watchdog_ping();
            }
        } else if was_healthy {
            log::error!("a pipeline is stalled; watchdog pings stop so that systemd can restart the daemon: {status}");
        }
        was_healthy = healthy;
        if status != last_status {
            notifier.status(&status);
            // Clients come and go often (each `jetrtctl status`); only a
            // change of the pipelines is worth a line in the journal.
            if pipelines_part(&status) != pipelines_part(&last_status) {
                log::info!("status: {status}");
            }
            last_status = status;
        }
    }
    log::info!("stopping: draining pipelines and clients");
    notifier.stopping();
    daemon.shutdown(Duration::from_secs(2));
    log::info!("stopped");
    Ok(())
}

/// The status line without its client count.
fn pipelines_part(status: &str) -> &str {
    status.rsplit_once("; ").map_or(status, |(p, _)| p)
}
