//! The wire protocol (docs/protocol.md): length-prefixed frames, each a
//! JSON message or, when the message before it announces one, a binary
//! payload (an image, a tensor, a class map).

pub mod framing;
pub mod messages;

pub use framing::{encode, read_frame, FrameError, LEN_BYTES};
pub use messages::{ImageDesc, Request, TensorDesc};

/// Bumped on incompatible changes; `hello` reports it.
pub const PROTOCOL_VERSION: u32 = 1;
