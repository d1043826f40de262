//! A client for jetrtd's socket, used by `jetrtctl` and the tests: connect
//! with a timeout, send requests, read replies and subscribed results.
//! Results that arrive while waiting for a reply are kept, in order, for
//! [`Client::next_result`].

use crate::frame::PixelFormat;
use crate::protocol::{encode, read_frame, FrameError};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to {path}: {error} (is jetrtd running, and may this user open the socket?)"
    )]
    Connect { path: String, error: std::io::Error },
    #[error("the daemon closed the connection")]
    Closed,
    #[error("no reply within the timeout")]
    Timeout,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("the daemon sent something unreadable: {0}")]
    Protocol(String),
    #[error("the daemon answered {code}: {message}")]
    Daemon { code: String, message: String },
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Closed => ClientError::Closed,
            FrameError::TooLarge { len, max } => {
                ClientError::Protocol(format!("a frame of {len} bytes is over {max}"))
            }
            FrameError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                ClientError::Timeout
            }
            FrameError::Io(e) => ClientError::Io(e),
        }
    }
}

/// A message from the daemon, with its binary frame if it announced one.
#[derive(Clone, Debug)]
pub struct Message {
    pub json: Value,
    pub binary: Option<Vec<u8>>,
}

impl Message {
    pub fn kind(&self) -> &str {
        self.json.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    pending: VecDeque<Message>,
    next_id: u64,
    max_frame: usize,
}

impl Client {
    /// Connects; replies must come within `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        let connect_err = |error| ClientError::Connect {
            path: path.display().to_string(),
            error,
        };
        let s = UnixStream::connect(path).map_err(connect_err)?;
        s.set_read_timeout(Some(timeout)).map_err(ClientError::Io)?;
        s.set_write_timeout(Some(timeout))
            .map_err(ClientError::Io)?;
        let r = s.try_clone().map_err(ClientError::Io)?;
        Ok(Client {
            writer: s,
            reader: BufReader::new(r),
            pending: VecDeque::new(),
            next_id: 1,
            max_frame: 1 << 30,
        })
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.writer
            .set_read_timeout(Some(timeout))
            .map_err(ClientError::Io)
    }

    /// Sends a request (and its binary frame), as is.
    pub fn send(&mut self, req: &Value, binary: Option<&[u8]>) -> Result<(), ClientError> {
        self.writer
            .write_all(&encode(req, binary))
            .map_err(ClientError::Io)
    }

    /// Reads the next message from the socket.
    pub fn read(&mut self) -> Result<Message, ClientError> {
        let frame = read_frame(&mut self.reader, self.max_frame)?;
        let json: Value =
            serde_json::from_slice(&frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let binary = match json.get("binary").and_then(|b| b.get("bytes")) {
            Some(_) => Some(read_frame(&mut self.reader, self.max_frame)?),
            None => None,
        };
        Ok(Message { json, binary })
    }

    /// Sends a request with a fresh id and waits for its reply; an error
    /// reply becomes [`ClientError::Daemon`].
    pub fn call(&mut self, mut req: Value, binary: Option<&[u8]>) -> Result<Message, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        req["id"] = json!(id);
        self.send(&req, binary)?;
        loop {
            let m = self.read()?;
            if m.json.get("id") == Some(&json!(id)) {
                if m.kind() == "error" {
                    return Err(daemon_error(&m.json));
                }
                return Ok(m);
            }
            self.pending.push_back(m);
        }
    }

    pub fn hello(&mut self, name: &str) -> Result<Value, ClientError> {
        Ok(self
            .call(json!({"op": "hello", "client": name, "protocol": crate::protocol::PROTOCOL_VERSION}), None)?
            .json)
    }

    pub fn list(&mut self) -> Result<Value, ClientError> {
        Ok(self.call(json!({"op": "list"}), None)?.json)
    }

    pub fn stats(&mut self) -> Result<Value, ClientError> {
        Ok(self.call(json!({"op": "stats"}), None)?.json)
    }

    pub fn subscribe(&mut self, pipeline: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "subscribe", "pipeline": pipeline}), None)
            .map(|_| ())
    }

    pub fn unsubscribe(&mut self, pipeline: &str) -> Result<(), ClientError> {
        self.call(json!({"op": "unsubscribe", "pipeline": pipeline}), None)
            .map(|_| ())
    }

    /// Runs a pipeline on an image (packed pixels, or a JPEG with `Mjpeg`).
    pub fn infer_image(
        &mut self,
        pipeline: &str,
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &[u8],
    ) -> Result<Message, ClientError> {
        self.call(
            json!({"op": "infer", "pipeline": pipeline,
                   "image": {"format": format, "width": width, "height": height}}),
            Some(data),
        )
    }

    /// Runs a pipeline's engine on a float32 tensor, skipping preprocessing.
    pub fn infer_tensor(
        &mut self,
        pipeline: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Message, ClientError> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.call(
            json!({"op": "infer", "pipeline": pipeline,
                   "tensor": {"dtype": "float32", "shape": shape}}),
            Some(&bytes),
        )
    }

    /// Pushes a frame to a `push` source; returns its sequence number.
    pub fn push(
        &mut self,
        source: &str,
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &[u8],
    ) -> Result<u64, ClientError> {
        let m = self.call(
            json!({"op": "push", "source": source,
                   "image": {"format": format, "width": width, "height": height}}),
            Some(data),
        )?;
        m.json
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| ClientError::Protocol("push reply without seq".into()))
    }

    /// The next result of a subscription (or any unsolicited message).
    pub fn next_result(&mut self) -> Result<Message, ClientError> {
        match self.pending.pop_front() {
            Some(m) => Ok(m),
            None => self.read(),
        }
    }
}

fn daemon_error(v: &Value) -> ClientError {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    ClientError::Daemon {
        code: s("code"),
        message: s("message"),
    }
}
