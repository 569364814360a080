//! Pipes for splice(2), lent per transfer burst from a small pool: an idle
//! connection holds none, a busy one holds one per busy direction, and most
//! bursts reuse a pipe instead of creating one. When no splicing relay is
//! left, the pool is emptied, so an idle daemon holds no pipe at all.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes a pipe can hold. Larger pipes mean fewer splice calls per byte:
/// 1 MiB (the unprivileged maximum, `fs.pipe-max-size`) moved bulk data
/// markedly faster than the 64 KiB default in our measurements. Pages are
/// only used while data sits in the pipe.
const PIPE_SIZE: usize = 1 << 20;

/// Idle pipes kept at most.
const POOL_CAPACITY: usize = 16;

/// An empty, non-blocking pipe.
#[derive(Debug)]
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into `fds` on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are fresh and owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Best effort: without it the pipe keeps its default size.
        // SAFETY: F_SETPIPE_SZ on a pipe we own; the result is the new size.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
        let size = usize::try_from(size).unwrap_or(64 * 1024);
        Ok(Pipe { read, write, size })
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Its capacity in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
}

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
static ACTIVE_RELAYS: AtomicUsize = AtomicUsize::new(0);

fn pool() -> std::sync::MutexGuard<'static, Vec<Pipe>> {
    // A panic while holding the lock cannot leave the Vec inconsistent.
    POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An empty pipe from the pool, or a new one.
pub(super) fn take() -> io::Result<Pipe> {
    // Not `match pool().pop()`: that would hold the lock while creating.
    let pooled = pool().pop();
    pooled.map_or_else(Pipe::new, Ok)
}

/// Returns an EMPTY pipe to the pool (or closes it if the pool is full). A
/// pipe with bytes still in it must be dropped instead.
pub(super) fn give_back(pipe: Pipe) {
    let mut pool = pool();
    if pool.len() < POOL_CAPACITY {
        pool.push(pipe);
    }
}

/// Marks a relay direction as splicing; the pool is emptied when the last
/// one ends (short exchanges, which never splice, never touch the count).
#[derive(Debug)]
pub(super) struct PoolUser(());

impl PoolUser {
    pub fn new() -> Self {
        ACTIVE_RELAYS.fetch_add(1, Ordering::AcqRel);
        PoolUser(())
    }
}

impl Drop for PoolUser {
    fn drop(&mut self) {
        if ACTIVE_RELAYS.fetch_sub(1, Ordering::AcqRel) == 1 {
            let drained = std::mem::take(&mut *pool());
            drop(drained);
        }
    }
}
