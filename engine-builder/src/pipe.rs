//! Command-line tools end quietly when their reader goes away.
//!
//! Rust ignores SIGPIPE, so `engine-builder ops | head` used to panic on
//! the closed pipe (exit 101 and a backtrace). A tool whose output is for
//! a pipe takes the default action instead, as `cat` or `ls` do: the
//! process ends, silently, when it writes to a pipe nobody reads. Only
//! for the CLIs: a server writing to sockets keeps SIGPIPE ignored.

/// Restores SIGPIPE's default action; call first thing in a CLI's main.
pub fn die_quietly_on_closed_pipe() {
    // SAFETY: signal() with SIG_DFL installs no handler code; called once
    // at start-up before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
