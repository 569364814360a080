//! One io_uring per worker: set-up flags, the direct-descriptor table, and
//! pushing whole link chains.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, squeue};

/// Submission queue entries; completions get [`CQ_FACTOR`] times as many
/// (a multishot accept can post many at once).
const SQ_ENTRIES: u32 = 1024;
const CQ_FACTOR: u32 = 8;

/// How a ring is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSetup {
    /// SINGLE_ISSUER + DEFER_TASKRUN: completions are processed only when
    /// the worker asks for them (no task-work interrupts). The ring's fd
    /// then cannot drive an epoll loop without an extra enter, so the hybrid
    /// leaves it off.
    pub defer_taskrun: bool,
    /// Direct descriptors: a table of `2 * direct_slots` registered files,
    /// the first half for multishot accept to allocate from, the second
    /// half handed out by the worker for backend sockets.
    pub direct_slots: Option<u32>,
}

/// An io_uring with its completions copied out in batches.
pub struct Ring {
    ring: IoUring,
    /// (user_data, result, flags) of the completions last drained.
    drained: Vec<(u64, i32, u32)>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("fd", &self.ring.as_raw_fd()).finish_non_exhaustive()
    }
}

impl Ring {
    /// Creates the ring (on the thread that will use it: SINGLE_ISSUER).
    pub fn new(setup: RingSetup) -> io::Result<Self> {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(SQ_ENTRIES * CQ_FACTOR).setup_submit_all();
        if setup.defer_taskrun {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        let ring = builder.build(SQ_ENTRIES)?;
        if let Some(slots) = setup.direct_slots {
            ring.submitter().register_files_sparse(2 * slots)?;
            register_file_alloc_range(ring.as_raw_fd(), 0, slots)?;
        }
        Ok(Ring { ring, drained: Vec::with_capacity((SQ_ENTRIES * CQ_FACTOR) as usize) })
    }

    /// The ring's descriptor (pollable: readable while completions wait).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }

    /// Queues `chain` (entries linked by their own flags) as a whole: a
    /// chain split across two submissions would end at the split.
    ///
    /// # Safety
    /// Every buffer, address and option value the entries point to must stay
    /// valid until their completions arrive.
    pub unsafe fn push(&mut self, chain: &[squeue::Entry]) -> io::Result<()> {
        loop {
            // SAFETY: the caller keeps what the entries point to alive.
            if unsafe { self.ring.submission().push_multiple(chain) }.is_ok() {
                return Ok(());
            }
            // Full: hand what is queued to the kernel to make room.
            self.submit(0)?;
        }
    }

    /// Submits what is queued and waits for at least `want` completions
    /// (`want = 0`: only submits, but still runs deferred completions).
    pub fn submit(&mut self, want: usize) -> io::Result<()> {
        loop {
            match self.ring.submitter().submit_and_wait(want) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: the caller drains it first.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies out every completion posted so far; the slice is valid until
    /// the next call.
    pub fn drain(&mut self) -> Vec<(u64, i32, u32)> {
        let mut drained = std::mem::take(&mut self.drained);
        drained.clear();
        drained.extend(self.ring.completion().map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())));
        drained
    }

    /// Gives back the vector [`Ring::drain`] returned, to be reused.
    pub fn recycle(&mut self, drained: Vec<(u64, i32, u32)>) {
        self.drained = drained;
    }
}

/// IORING_REGISTER_FILE_ALLOC_RANGE (Linux 6.0), which the io-uring crate
/// does not wrap: the slots auto-allocation (multishot accept) may use.
fn register_file_alloc_range(ring: std::os::fd::RawFd, offset: u32, len: u32) -> io::Result<()> {
    const IORING_REGISTER_FILE_ALLOC_RANGE: libc::c_uint = 25;
    #[repr(C)]
    struct FileIndexRange {
        off: u32,
        len: u32,
        resv: u64,
    }
    let range = FileIndexRange { off: offset, len, resv: 0 };
    // SAFETY: the kernel reads one io_uring_file_index_range from `range`,
    // which outlives the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring,
            IORING_REGISTER_FILE_ALLOC_RANGE,
            &range as *const FileIndexRange,
            0,
        )
    };
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
