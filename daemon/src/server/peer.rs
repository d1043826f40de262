//! Who is on the other end of a connection (SO_PEERCRED), for the log.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// `pid P uid U gid G`, or `unknown peer`.
pub fn describe(stream: &UnixStream) -> String {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes one ucred into the buffer whose true size
    // is passed; the descriptor is valid for the stream's lifetime.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        format!("pid {} uid {} gid {}", cred.pid, cred.uid, cred.gid)
    } else {
        "unknown peer".into()
    }
}
