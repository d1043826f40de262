//! Progress while an engine builds. A first start builds engines from ONNX
//! (minutes on a Jetson Nano), and so may a reload: meanwhile the journal
//! and `systemctl status` say which engine, at which stage and for how
//! long, and the watchdog is fed, since a build is progress, not a stall
//! (with WatchdogSec=30 a reload building for longer got the daemon killed).

use crate::notify::Notifier;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a build in progress is reported and the watchdog fed.
pub const BEAT: Duration = Duration::from_secs(5);
/// How often a build in progress gets a line in the journal.
const LOG_EVERY: Duration = Duration::from_secs(15);

/// Runs `work` (which loads engine `name`, telling its stage through the
/// function it is given) with a thread beating every `beat` until it ends.
pub fn with_heartbeat<T>(
    name: &str,
    notifier: &Notifier,
    beat: Duration,
    work: impl FnOnce(&(dyn Fn(&str) + Sync)) -> T,
) -> T {
    let stage = Mutex::new(String::from("starting"));
    let t0 = Instant::now();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut logged = Instant::now();
            // Ends when `done_tx` is dropped (the work returned or panicked).
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = done_rx.recv_timeout(beat)
            {
                let stage = stage.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let secs = t0.elapsed().as_secs();
                notifier.status(&format!("building engine '{name}': {stage} ({secs} s)"));
                if notifier.watchdog().is_some() {
                    notifier.watchdog_ping();
                }
                if logged.elapsed() >= LOG_EVERY {
                    log::info!("engine '{name}': still building ({stage}, {secs} s so far)");
                    logged = Instant::now();
                }
            }
        });
        let set = |s: &str| *stage.lock().unwrap_or_else(|e| e.into_inner()) = s.to_string();
        let r = work(&set);
        drop(done_tx);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_long_build_reports_its_stage_and_feeds_the_watchdog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_path(&path, Some(Duration::from_secs(30)));
        let beat = Duration::from_millis(100);
        let out = with_heartbeat("tiny", &n, beat, |stage| {
            stage("converting 12 nodes");
            std::thread::sleep(beat * 5 / 2);
            stage("building the cpu plan");
            std::thread::sleep(beat * 2);
            42
        });
        assert_eq!(out, 42);
        rx.set_nonblocking(true).unwrap();
        let mut got = vec![];
        let mut buf = [0u8; 512];
        while let Ok(len) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert!(got.iter().any(|m| m == "WATCHDOG=1"), "{got:?}");
        assert!(
            got.iter()
                .any(|m| m.starts_with("STATUS=building engine 'tiny': converting 12 nodes (")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|m| m.starts_with("STATUS=building engine 'tiny': building the cpu plan (")),
            "{got:?}"
        );
        // Nothing after the work ended.
        std::thread::sleep(beat * 2);
        assert!(rx.recv(&mut buf).is_err());
    }

    #[test]
    fn a_quick_build_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_path(&path, Some(Duration::from_secs(30)));
        with_heartbeat("tiny", &n, Duration::from_secs(5), |stage| {
            stage("converting")
        });
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv(&mut [0u8; 64]).is_err());
    }
}
