//! Kernel-direct routes: a steered port whose policy only forwards to a
//! socket listening in this network namespace gets that socket itself in
//! the program's DIRECT map, so the kernel hands new connections straight
//! to the backend — no accept, no second connection, no relay in serve2.
//!
//! serve2 borrows the backend's listening socket with `pidfd_getfd` (root,
//! or CAP_SYS_PTRACE over the backend), puts it in the map and closes its
//! copy at once: the map does not keep the socket open, so when the backend
//! closes it the slot empties by itself and the program falls back to the
//! daemon, which forwards as it would without the route. A refresh every
//! second notices a new listener (a restarted backend) and routes to it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::ports::PortSet;

/// One route: the ports, the backend's address, and the listener in the map.
#[derive(Debug, Clone)]
pub struct DirectRoute {
    /// The policy's steered ports.
    pub ports: PortSet,
    /// The `forward` target.
    pub target: SocketAddr,
    /// The socket inode now in the map, if any.
    pub inode: Option<u64>,
    /// Why the last attempt to borrow the listener failed (logged once).
    pub last_error: Option<String>,
}

/// A copy of the socket with `inode`, taken from the process holding it.
pub(super) fn take_socket(inode: u64) -> io::Result<OwnedFd> {
    let (pid, fd) = owner_of(inode)?.ok_or_else(|| io::Error::other("no process of ours can see its owner"))?;
    // SAFETY: plain syscalls; each result is checked before it is used and
    // the descriptors returned are ours to own.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let copy = libc::syscall(libc::SYS_pidfd_getfd, std::os::fd::AsRawFd::as_raw_fd(&pidfd), fd, 0);
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(copy as i32))
    }
}

/// A (pid, fd) holding the socket `inode`.
fn owner_of(inode: u64) -> io::Result<Option<(i32, i32)>> {
    let wanted = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Some(number) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            if std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == wanted.as_str()) {
                return Ok(Some((pid, number)));
            }
        }
    }
    Ok(None)
}
