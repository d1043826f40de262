//! The Unix socket server: an accept thread, and per client a reader
//! thread (requests in, replies into the outbox) and a writer thread (the
//! outbox out to the socket). A client that stops reading only fills its
//! own bounded outbox, which drops its oldest messages; pipelines and other
//! clients never wait for it.

pub mod conn;
pub mod handler;
pub mod peer;
pub mod socket;

use crate::error::Result;
use crate::hub::Outbox;
use crate::protocol::encode;
use crate::runtime::Shared;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A connected client, as the server tracks it.
pub struct ClientEntry {
    pub stream: UnixStream,
    pub outbox: Outbox,
    pub peer: String,
    pub closing: Arc<AtomicBool>,
    pub writer: Option<JoinHandle<()>>,
    pub reader: Option<JoinHandle<()>>,
}

#[derive(Default)]
pub struct Clients {
    pub map: Mutex<std::collections::BTreeMap<u64, ClientEntry>>,
    next_id: AtomicU64,
}

impl Clients {
    pub fn count(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Messages lost by connected clients.
    pub fn dropped(&self) -> u64 {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(|c| c.outbox.dropped()).sum()
    }
}

pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the socket (handling a stale one) and starts accepting.
    pub fn start(path: &Path, mode: u32, group: Option<&str>, shared: Arc<Shared>) -> Result<Self> {
        let listener = socket::bind(path, mode, group)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| crate::Error::io(path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (s, sh) = (stop.clone(), shared.clone());
        let accept = std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(&listener, &s, &sh))
            .map_err(|e| crate::Error::io(path, e))?;
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
            shared,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, lets each client's writer flush for up to `grace`,
    /// closes every connection and removes the socket file.
    pub fn shutdown(&mut self, grace: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let clients: Vec<ClientEntry> = {
            let mut m = self
                .shared
                .clients
                .map
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *m).into_values().collect()
        };
        for c in &clients {
            c.closing.store(true, Ordering::Relaxed);
        }
        let deadline = Instant::now() + grace;
        for mut c in clients {
            if let Some(w) = c.writer.take() {
                while !w.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                let _ = w.join();
            }
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            if let Some(r) = c.reader.take() {
                let _ = r.join();
            }
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove socket {}: {e}", self.path.display());
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown(Duration::ZERO);
        }
    }
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, shared: &Arc<Shared>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => admit(stream, shared),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn admit(mut stream: UnixStream, shared: &Arc<Shared>) {
    // Accepted sockets inherit nothing from the listener on Linux, but be explicit.
    let _ = stream.set_nonblocking(false);
    let peer = peer::describe(&stream);
    let max = shared.limits.max_clients;
    let clients = &shared.clients;
    let mut map = clients.map.lock().unwrap_or_else(|e| e.into_inner());
    // Reap clients whose threads are done.
    map.retain(|_, c| !c.reader.as_ref().is_some_and(|r| r.is_finished()));
    if map.len() >= max {
        drop(map);
        log::warn!("refused a client ({peer}): {max} clients are connected (daemon.max_clients)");
        let msg = encode(
            &serde_json::json!({"type": "error", "code": "too_many_clients",
                "message": format!("the daemon serves at most {max} clients (daemon.max_clients); try again later")}),
            None,
        );
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        let _ = stream.write_all(&msg);
        return;
    }
    let id = clients.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let (outbox, inbox) = Outbox::new(id, shared.limits.client_queue);
    let closing = Arc::new(AtomicBool::new(false));
    let (Ok(wstream), Ok(rstream)) = (stream.try_clone(), stream.try_clone()) else {
        log::warn!("cannot serve a client ({peer}): no file descriptors left");
        return;
    };
    let cl = closing.clone();
    let writer = std::thread::Builder::new()
        .name(format!("client{id}-w"))
        .spawn(move || conn::write_loop(wstream, &inbox, &cl));
    let (sh, ob, cl) = (shared.clone(), outbox.clone(), closing.clone());
    let reader = std::thread::Builder::new()
        .name(format!("client{id}-r"))
        .spawn(move || conn::read_loop(rstream, id, &ob, &sh, &cl));
    match (writer, reader) {
        (Ok(w), Ok(r)) => {
            log::debug!("client {id} connected ({peer})");
            map.insert(
                id,
                ClientEntry {
                    stream,
                    outbox,
                    peer,
                    closing,
                    writer: Some(w),
                    reader: Some(r),
                },
            );
        }
        _ => {
            closing.store(true, Ordering::Relaxed);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            log::warn!("cannot serve a client ({peer}): no threads left");
        }
    }
}
