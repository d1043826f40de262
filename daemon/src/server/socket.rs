//! Binding the listening socket: a stale file from a crashed daemon is
//! removed, a live daemon on the same path is an error, anything that is
//! not a socket is left alone; the socket gets the configured mode and
//! group before it appears at its path.

use crate::error::{Error, Result};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Socket {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

pub fn bind(path: &Path, mode: u32, group: Option<&str>) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(
                path,
                "exists and is not a socket; remove it or set another daemon.socket",
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(err(
                path,
                "another daemon is listening on it; stop it first or set another daemon.socket",
            ));
        }
        log::info!(
            "removing stale socket {} (left by a daemon that did not stop cleanly)",
            path.display()
        );
        std::fs::remove_file(path)
            .map_err(|e| err(path, format!("cannot remove the stale socket: {e}")))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(err(
                path,
                format!("folder {} does not exist", dir.display()),
            ));
        }
    }
    // Bound under a temporary name, given its mode and group, then renamed
    // into place: no client can connect while it still has the mode the
    // umask gave it.
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| err(path, format!("cannot listen: {e}")))?;
    let ready = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err(path, format!("cannot set mode {mode:o}: {e}")))?;
        if let Some(g) = group {
            let gid = group_id(g)
                .ok_or_else(|| err(path, format!("no group named '{g}' (daemon.socket_group)")))?;
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(|e| err(path, format!("cannot give the socket to group '{g}': {e}")))?;
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| err(path, format!("cannot move the socket into place: {e}")))
    })();
    if let Err(e) = ready {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// A group's id, by name or number.
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: group is plain data that getgrnam_r fills in; all-zero is a
    // valid (null pointers) value for it.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: a NUL-terminated name,
    // a group struct, a buffer with its true length and a result slot.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_live_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sock");
        let l = bind(&p, 0o600, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Bound under a temporary name and moved into place: only it is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A live listener on the path: refused.
        let e = bind(&p, 0o600, None).unwrap_err().to_string();
        assert!(e.contains("another daemon"), "{e}");
        // The listener gone, the file stays: stale, replaced.
        drop(l);
        assert!(p.exists());
        let _l = bind(&p, 0o660, Some("0")).unwrap();
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = bind(&f, 0o600, None).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-jetrt"), None);
    }
}
