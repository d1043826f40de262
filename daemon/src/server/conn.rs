//! One client connection: the reader turns frames into requests (an
//! unreadable or oversized one gets an error reply and the connection goes
//! on), the writer drains the client's outbox into the socket.

use super::handler::{self, error};
use crate::hub::{Inbox, Outbox};
use crate::protocol::{read_frame, FrameError, Request};
use crate::runtime::Shared;
use serde_json::Value;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a write may make no progress before the writer looks whether
/// the connection is closing (then it gives up on a client that does not
/// read, which would otherwise hold its thread and socket forever).
const WRITE_STALL: Duration = Duration::from_millis(500);

/// Writes all of `buf`; false when the client is gone, or stalls the
/// write while the connection is closing.
fn write_frame(stream: &mut UnixStream, buf: &[u8], closing: &AtomicBool) -> bool {
    let mut off = 0;
    while off < buf.len() {
        match stream.write(&buf[off..]) {
            Ok(0) => return false,
            Ok(n) => off += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if closing.load(Ordering::Relaxed) {
                    return false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Writes the client's replies (first) and results until it goes or the
/// connection closes with both drained.
pub fn write_loop(mut stream: UnixStream, inbox: &Inbox, closing: &AtomicBool) {
    let _ = stream.set_write_timeout(Some(WRITE_STALL));
    loop {
        let next = match inbox.replies.try_recv() {
            Ok(w) => Ok(w),
            Err(_) => crossbeam_channel::select! {
                recv(inbox.replies) -> m => m.map_err(|_| ()),
                recv(inbox.results) -> m => m.map_err(|_| ()),
                default(Duration::from_millis(100)) => {
                    if closing.load(Ordering::Relaxed)
                        && inbox.replies.is_empty()
                        && inbox.results.is_empty()
                    {
                        break;
                    }
                    continue;
                }
            },
        };
        match next {
            Ok(w) => {
                if !write_frame(&mut stream, &w, closing) {
                    break;
                }
            }
            Err(()) => break,
        }
    }
    // The reader may be waiting for room in the replies: nothing will be
    // written any more.
    closing.store(true, Ordering::Relaxed);
}

/// Whether a request announces a binary frame after it. Decided on the
/// JSON alone, so that a request rejected for a bad field still has its
/// payload consumed and the stream stays in step.
fn announces_binary(v: &Value) -> bool {
    match v.get("op").and_then(Value::as_str) {
        Some("push") => true,
        Some("infer") => v.get("image").is_some() || v.get("tensor").is_some(),
        _ => false,
    }
}

pub fn read_loop(
    stream: UnixStream,
    id: u64,
    outbox: &Outbox,
    shared: &Arc<Shared>,
    closing: &AtomicBool,
) {
    let max = shared.limits.max_message_bytes;
    let mut r = BufReader::new(stream);
    let reply = |v: Value| outbox.reply(Arc::new(crate::protocol::encode(&v, None)));
    loop {
        // A client that does not read its replies is not read either.
        while !outbox.reply_room() && !closing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let frame = match read_frame(&mut r, max) {
            Ok(f) => f,
            Err(FrameError::Closed) => break,
            Err(FrameError::TooLarge { len, max }) => {
                reply(error(
                    None,
                    "too_large",
                    format!("a frame of {len} bytes is over the limit of {max} bytes (daemon.max_message_bytes); it was skipped"),
                ));
                continue;
            }
            Err(FrameError::Io(e)) => {
                log::debug!("client {id}: {e}");
                break;
            }
        };
        let value: Value = match serde_json::from_slice(&frame) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                reply(error(
                    None,
                    "bad_request",
                    "a message must be a JSON object with an \"op\"",
                ));
                continue;
            }
            Err(e) => {
                reply(error(
                    None,
                    "bad_request",
                    format!("not a JSON message: {e}"),
                ));
                continue;
            }
        };
        let msg_id = value.get("id").cloned();
        let binary = if announces_binary(&value) {
            match read_frame(&mut r, max) {
                Ok(b) => Some(b),
                Err(FrameError::TooLarge { len, max }) => {
                    reply(error(
                        msg_id.as_ref(),
                        "too_large",
                        format!("the binary frame of {len} bytes is over the limit of {max} bytes (daemon.max_message_bytes); it was skipped"),
                    ));
                    continue;
                }
                Err(FrameError::Closed) => break,
                Err(FrameError::Io(e)) => {
                    log::debug!("client {id}: {e}");
                    break;
                }
            }
        } else {
            None
        };
        match serde_json::from_value::<Request>(value) {
            Ok(req) => handler::handle(req, msg_id.as_ref(), binary, id, outbox, shared),
            Err(e) => reply(error(
                msg_id.as_ref(),
                "bad_request",
                format!("invalid request: {e}"),
            )),
        }
    }
    shared.hub.remove_client(outbox);
    closing.store(true, Ordering::Relaxed);
    let mut map = shared.clients.map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = map.remove(&id) {
        if c.outbox.dropped() > 0 {
            log::info!(
                "client {id} ({}) disconnected; it lost {} messages it did not read in time",
                c.peer,
                c.outbox.dropped()
            );
        } else {
            log::debug!("client {id} ({}) disconnected", c.peer);
        }
    }
}
