//! File sources: one image, a folder of images (in name order) or a y4m
//! video, played at a fixed rate, looping by default. Files are read as
//! they are played, so a file that vanishes or turns unreadable shows up
//! at once as a waiting source (and comes back when the file does).

use super::y4m::Y4mReader;
use super::{Pacer, Source, SourceError};
use crate::frame::{Frame, PixelFormat};
use std::path::{Path, PathBuf};
use std::time::Duration;

const IMAGE_EXTS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "ppm", "pgm"];

enum Media {
    Images { files: Vec<PathBuf>, next: usize },
    Y4m(Box<Y4mReader<std::fs::File>>),
}

pub struct FileSource {
    path: PathBuf,
    media: Media,
    looping: bool,
    pacer: Pacer,
}

fn unavailable(path: &Path, msg: impl std::fmt::Display) -> SourceError {
    SourceError::Unavailable(format!("{}: {msg}", path.display()))
}

fn is_y4m(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("y4m"))
}

fn open_y4m(path: &Path) -> Result<Y4mReader<std::fs::File>, SourceError> {
    let f = std::fs::File::open(path).map_err(|e| unavailable(path, e))?;
    Y4mReader::new(f).map_err(|e| unavailable(path, e))
}

impl FileSource {
    pub fn open(path: &Path, fps: f64, looping: bool) -> Result<Self, SourceError> {
        let meta = std::fs::metadata(path).map_err(|e| unavailable(path, e))?;
        let media = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| unavailable(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| IMAGE_EXTS.iter().any(|x| e.eq_ignore_ascii_case(x)))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(unavailable(
                    path,
                    format!("the folder holds no images ({})", IMAGE_EXTS.join(", ")),
                ));
            }
            Media::Images { files, next: 0 }
        } else if is_y4m(path) {
            Media::Y4m(Box::new(open_y4m(path)?))
        } else {
            Media::Images {
                files: vec![path.to_path_buf()],
                next: 0,
            }
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            media,
            looping,
            pacer: Pacer::new(fps),
        })
    }
}

impl Source for FileSource {
    fn next(&mut self, timeout: Duration) -> Result<Option<Frame>, SourceError> {
        if !self.pacer.wait(timeout) {
            return Ok(None);
        }
        match &mut self.media {
            Media::Images { files, next } => {
                if *next == files.len() {
                    if !self.looping {
                        return Err(SourceError::Ended);
                    }
                    *next = 0;
                }
                let p = &files[*next];
                *next += 1;
                let img = image::open(p).map_err(|e| unavailable(p, e))?.to_rgb8();
                let (w, h) = img.dimensions();
                Ok(Some(Frame::now(w, h, PixelFormat::Rgb, img.into_raw())))
            }
            Media::Y4m(r) => {
                let data = match r.next_frame().map_err(|e| unavailable(&self.path, e))? {
                    Some(d) => d,
                    None if self.looping => {
                        // Reopen by name: a file replaced or removed meanwhile
                        // is noticed here.
                        **r = open_y4m(&self.path)?;
                        r.next_frame()
                            .map_err(|e| unavailable(&self.path, e))?
                            .ok_or_else(|| unavailable(&self.path, "the video has no frames"))?
                    }
                    None => return Err(SourceError::Ended),
                };
                Ok(Some(Frame::now(r.width, r.height, r.format, data)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y4m(frames: &[u8]) -> Vec<u8> {
        let mut f = b"YUV4MPEG2 W2 H2 F30:1 C420jpeg\n".to_vec();
        for &v in frames {
            f.extend_from_slice(b"FRAME\n");
            f.extend_from_slice(&[v; 6]);
        }
        f
    }

    fn next(s: &mut FileSource) -> Result<Frame, SourceError> {
        loop {
            if let Some(f) = s.next(Duration::from_secs(1))? {
                return Ok(f);
            }
        }
    }

    #[test]
    fn a_y4m_video_loops_and_a_vanished_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clip.y4m");
        std::fs::write(&p, y4m(&[10, 20])).unwrap();
        let mut s = FileSource::open(&p, 1000.0, true).unwrap();
        let seen: Vec<u8> = (0..3).map(|_| next(&mut s).unwrap().data[0]).collect();
        assert_eq!(seen, vec![10, 20, 10]);
        assert_eq!(next(&mut s).unwrap().format, PixelFormat::I420);
        std::fs::remove_file(&p).unwrap();
        // The open file plays to its end; reopening for the loop fails.
        let e = next(&mut s).unwrap_err().to_string();
        assert!(e.contains("clip.y4m"), "{e}");
        assert!(FileSource::open(&p, 30.0, true).is_err());
    }

    #[test]
    fn without_loop_a_source_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("one.y4m");
        std::fs::write(&p, y4m(&[5])).unwrap();
        let mut s = FileSource::open(&p, 1000.0, false).unwrap();
        assert_eq!(next(&mut s).unwrap().data[0], 5);
        assert!(matches!(next(&mut s), Err(SourceError::Ended)));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = FileSource::open(&empty, 30.0, true)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds no images"), "{e}");
    }
}
