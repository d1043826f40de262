//! A moving, deterministic test pattern: frame `n` is a function of `n`
//! alone ([`render`]), so a test can rebuild the very frame a result came
//! from (its `seq`) and check the daemon against `engine-builder run`.

use super::{Pacer, Source, SourceError};
use crate::frame::{Frame, PixelFormat};
use std::time::Duration;

pub struct Synthetic {
    width: u32,
    height: u32,
    n: u64,
    pacer: Pacer,
}

impl Synthetic {
    pub fn new(width: u32, height: u32, fps: f64) -> Self {
        Synthetic {
            width,
            height,
            n: 0,
            pacer: Pacer::new(fps),
        }
    }
}

/// Frame `n` of the pattern as packed RGB8: diagonal colour ramps that
/// scroll with `n`, and a bright square that crosses the frame.
pub fn render(n: u64, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as u64, height as u64);
    let side = (w.min(h) / 4).max(1);
    let sx = (n * 3) % w.max(1);
    let sy = (h.saturating_sub(side)) / 2;
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let in_square = x >= sx && x < sx + side && y >= sy && y < sy + side;
            if in_square {
                out.extend_from_slice(&[250, 250, 240]);
            } else {
                out.extend_from_slice(&[
                    ((x * 255 / w.max(1) + n * 2) % 256) as u8,
                    ((y * 255 / h.max(1) + n) % 256) as u8,
                    (((x + y) * 2 + n * 5) % 256) as u8,
                ]);
            }
        }
    }
    out
}

impl Source for Synthetic {
    fn next(&mut self, timeout: Duration) -> Result<Option<Frame>, SourceError> {
        if !self.pacer.wait(timeout) {
            return Ok(None);
        }
        let data = render(self.n, self.width, self.height);
        self.n += 1;
        Ok(Some(Frame::now(
            self.width,
            self.height,
            PixelFormat::Rgb,
            data,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_moving() {
        assert_eq!(render(7, 32, 24), render(7, 32, 24));
        assert_ne!(render(7, 32, 24), render(8, 32, 24));
        assert_eq!(render(0, 32, 24).len(), 32 * 24 * 3);
    }
}
