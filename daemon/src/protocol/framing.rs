//! Frames: a 4-byte big-endian length, then that many bytes. A frame over
//! the receiver's cap is skipped (read and discarded, never buffered) and
//! reported, so the connection stays usable after it.

use std::io::{self, Read};

pub const LEN_BYTES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// A frame over the cap; its bytes were skipped.
    #[error("a frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; LEN_BYTES];
    // A clean close is one that comes before any byte of a frame.
    let mut got = 0;
    while got < LEN_BYTES {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        let skipped = io::copy(&mut r.take(len as u64), &mut io::sink())?;
        if (skipped as usize) < len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        return Err(FrameError::TooLarge { len, max });
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// A JSON message, and the binary frame it announces if any, as the bytes
/// to write. Encoded once, shared by every subscriber.
pub fn encode(json: &serde_json::Value, binary: Option<&[u8]>) -> Vec<u8> {
    let text = serde_json::to_vec(json).unwrap_or_else(|_| b"{}".to_vec());
    let mut out =
        Vec::with_capacity(text.len() + binary.map_or(0, |b| b.len() + LEN_BYTES) + LEN_BYTES);
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(&text);
    if let Some(b) = binary {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_caps() {
        let msg = encode(&serde_json::json!({"op": "list"}), Some(&[1, 2, 3]));
        let mut r = &msg[..];
        let a = read_frame(&mut r, 100).unwrap();
        assert_eq!(a, br#"{"op":"list"}"#);
        assert_eq!(read_frame(&mut r, 100).unwrap(), vec![1, 2, 3]);
        assert!(matches!(read_frame(&mut r, 100), Err(FrameError::Closed)));
        // Over the cap: skipped, and the next frame still reads.
        let mut two = encode(&serde_json::json!({"pad": "x".repeat(200)}), None);
        two.extend(encode(&serde_json::json!(1), None));
        let mut r = &two[..];
        assert!(matches!(
            read_frame(&mut r, 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(read_frame(&mut r, 100).unwrap(), b"1");
        // Cut short.
        let mut r = &[0u8, 0, 0, 9, 1][..];
        assert!(matches!(read_frame(&mut r, 100), Err(FrameError::Io(_))));
    }
}
