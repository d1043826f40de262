//! Keeping a run's worker threads awake between its parallel sections.
//!
//! Between two layers the pool's other workers find no work, and after a
//! few tens of microseconds go to sleep; waking them for the next layer
//! costs about as much again, on every layer. For the length of a run each
//! other worker instead holds a task that keeps looking for work (running
//! the layers' jobs as they come) until the run ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// While alive, `workers` tasks on the current pool run whatever work its
/// threads post, never sleeping; dropping it lets them finish.
pub(super) struct KeepWarm(Arc<AtomicBool>);

impl KeepWarm {
    /// Call from inside the pool (`ThreadPool::install`).
    pub fn start(workers: usize) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let home = rayon::current_thread_index();
        for _ in 0..workers {
            let r = running.clone();
            rayon::spawn(move || {
                // The run's own thread may pick a task up while it waits for
                // a job of its own: there it must return at once, or the run
                // could never finish.
                if rayon::current_thread_index() == home {
                    return;
                }
                let mut idle = 0u32;
                while r.load(Ordering::Acquire) {
                    if rayon::yield_now() == Some(rayon::Yield::Executed) {
                        idle = 0;
                        continue;
                    }
                    idle += 1;
                    // Now and then let the OS run something else: other
                    // pipelines' threads may be waiting for this core.
                    if idle.is_multiple_of(64) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        KeepWarm(running)
    }
}

impl Drop for KeepWarm {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
