//! A minimal YUV4MPEG2 (y4m) reader: 4:2:0 and mono streams, which is what
//! `ffmpeg -pix_fmt yuv420p out.y4m` and GStreamer's y4menc write.

use crate::frame::PixelFormat;
use std::io::{BufRead, BufReader, Read};

/// The largest frame side accepted from a file.
const MAX_SIDE: usize = 16384;

pub struct Y4mReader<R> {
    r: BufReader<R>,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    frame_len: usize,
}

fn read_line<R: Read>(r: &mut BufReader<R>, max: usize) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(max as u64)
        .read_until(b'\n', &mut buf)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err("a header line is too long or cut short".into());
    }
    buf.pop();
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| "a header line is not text".into())
}

impl<R: Read> Y4mReader<R> {
    pub fn new(inner: R) -> Result<Self, String> {
        let mut r = BufReader::new(inner);
        let header = read_line(&mut r, 1024)?.ok_or("the file is empty")?;
        let mut fields = header.split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err("not a y4m file (no YUV4MPEG2 signature)".into());
        }
        let (mut w, mut h, mut format) = (0usize, 0usize, PixelFormat::I420);
        for f in fields {
            let (tag, val) = f.split_at(f.len().min(1));
            match tag {
                "W" => w = val.parse().map_err(|_| format!("bad width '{val}'"))?,
                "H" => h = val.parse().map_err(|_| format!("bad height '{val}'"))?,
                "C" => {
                    format = match val {
                        "420jpeg" | "420paldv" | "420mpeg2" | "420" => PixelFormat::I420,
                        "mono" => PixelFormat::Gray,
                        other => {
                            return Err(format!(
                                "colour space C{other} is not supported (use 4:2:0, e.g. ffmpeg -pix_fmt yuv420p)"
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        if !(1..=MAX_SIDE).contains(&w) || !(1..=MAX_SIDE).contains(&h) {
            return Err(format!("frame size {w}x{h} is missing or too large"));
        }
        let frame_len = format.frame_len(w, h).unwrap_or(0);
        Ok(Y4mReader {
            r,
            width: w as u32,
            height: h as u32,
            format,
            frame_len,
        })
    }

    /// The next frame's bytes; `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, String> {
        let Some(line) = read_line(&mut self.r, 1024)? else {
            return Ok(None);
        };
        if !line.starts_with("FRAME") {
            return Err("expected a FRAME marker".into());
        }
        let mut data = vec![0u8; self.frame_len];
        match self.r.read_exact(&mut data) {
            Ok(()) => Ok(Some(data)),
            // A file cut short mid-frame ends there.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frames_and_rejects_garbage() {
        let mut f = b"YUV4MPEG2 W2 H2 F30:1 Ip A1:1 C420jpeg\n".to_vec();
        for i in 0..2u8 {
            f.extend_from_slice(b"FRAME\n");
            f.extend_from_slice(&[i; 6]);
        }
        let mut r = Y4mReader::new(&f[..]).unwrap();
        assert_eq!((r.width, r.height, r.format), (2, 2, PixelFormat::I420));
        assert_eq!(r.next_frame().unwrap(), Some(vec![0; 6]));
        assert_eq!(r.next_frame().unwrap(), Some(vec![1; 6]));
        assert_eq!(r.next_frame().unwrap(), None);
        assert!(Y4mReader::new(&b"P6 2 2\n"[..]).is_err());
        assert!(Y4mReader::new(&b"YUV4MPEG2 W2 H2 C444\n"[..]).is_err());
        assert!(Y4mReader::new(&b"YUV4MPEG2 W0 H2\n"[..]).is_err());
    }
}
