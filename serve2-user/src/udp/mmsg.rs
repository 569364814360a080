//! Datagrams moved a batch per system call: `sendmmsg` for what the
//! dispatcher forwards to backends in one turn ([`Outbox`]) and for a
//! flow's replies, `recvmmsg` for the replies waiting on a backend socket
//! ([`with_reply_batch`]).
//!
//! Each call that wakes a peer on this host may hand it the CPU: one call
//! per batch instead of one per datagram is one wake-up and one switch per
//! batch (docs/PERFORMANCE.md, "UDP", has the figures).

use std::io;
use std::mem::zeroed;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::socket::MAX_DATAGRAM;

/// Most datagrams per `sendmmsg` or `recvmmsg`.
pub const MMSG_BATCH: usize = 16;

/// Where every datagram of one `sendmmsg` goes: nowhere named (a connected
/// socket), or one address, optionally with one control message (the
/// reply's source address).
#[derive(Clone, Copy)]
pub(super) struct Destination<'a> {
    pub name: Option<(&'a libc::sockaddr_storage, libc::socklen_t)>,
    pub control: Option<&'a [u64]>,
    pub control_len: usize,
}

impl Destination<'_> {
    /// A connected socket's: no name, no control message.
    pub const CONNECTED: Destination<'static> = Destination { name: None, control: None, control_len: 0 };
}

/// Sends `datagrams` in order without waiting, [`MMSG_BATCH`] per call.
/// One that the kernel refuses (a full buffer, an ICMP error) is skipped,
/// as the network would drop it. Returns how many were refused.
pub(super) fn send_all(fd: RawFd, datagrams: &[&[u8]], to: Destination<'_>) -> usize {
    let mut refused = 0;
    let mut next = 0;
    while next < datagrams.len() {
        let chunk = &datagrams[next..(next + MMSG_BATCH).min(datagrams.len())];
        match send_chunk(fd, chunk, to) {
            Ok(0) => {
                refused += 1;
                next += 1;
            }
            Ok(sent) => next += sent,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // The first of the chunk failed: drop it, go on with the rest.
                refused += 1;
                next += 1;
            }
        }
    }
    refused
}

/// One `sendmmsg` of up to [`MMSG_BATCH`] datagrams; how many left.
fn send_chunk(fd: RawFd, chunk: &[&[u8]], to: Destination<'_>) -> io::Result<usize> {
    let mut iovecs: [libc::iovec; MMSG_BATCH] =
        std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
    // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is valid.
    let mut headers: [libc::mmsghdr; MMSG_BATCH] = unsafe { zeroed() };
    for (i, datagram) in chunk.iter().enumerate() {
        // sendmmsg only reads through iov_base.
        iovecs[i] = libc::iovec { iov_base: datagram.as_ptr().cast_mut().cast(), iov_len: datagram.len() };
        let header = &mut headers[i].msg_hdr;
        header.msg_iov = &raw mut iovecs[i];
        header.msg_iovlen = 1;
        if let Some((name, len)) = to.name {
            header.msg_name = std::ptr::from_ref(name).cast_mut().cast();
            header.msg_namelen = len;
        }
        if let Some(control) = to.control {
            header.msg_control = control.as_ptr().cast_mut().cast();
            header.msg_controllen = to.control_len;
        }
    }
    // SAFETY: each header points at live data, name and control buffers of
    // the lengths given, which the kernel only reads.
    let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), chunk.len() as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// What the dispatcher forwards in one turn, sent a flow at a time when
/// the turn ends: each flow's datagrams in their order, in one call.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Every datagram's bytes (a PROXY header, if any, before its data).
    bytes: Vec<u8>,
    /// (index in `sockets`, start, length) in arrival order.
    entries: Vec<(usize, usize, usize)>,
    sockets: Vec<Arc<UdpSocket>>,
}

impl Outbox {
    /// Queues `data` (after `header`) for `socket`.
    pub fn push(&mut self, socket: &Arc<UdpSocket>, header: Option<&[u8]>, data: &[u8]) {
        let index = match self.sockets.iter().position(|s| Arc::ptr_eq(s, socket)) {
            Some(index) => index,
            None => {
                self.sockets.push(socket.clone());
                self.sockets.len() - 1
            }
        };
        let start = self.bytes.len();
        self.bytes.extend_from_slice(header.unwrap_or_default());
        self.bytes.extend_from_slice(data);
        self.entries.push((index, start, self.bytes.len() - start));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sends everything queued; returns how many datagrams were refused.
    pub fn flush(&mut self) -> usize {
        let mut refused = 0;
        let mut datagrams: Vec<&[u8]> = Vec::with_capacity(self.entries.len());
        for (index, socket) in self.sockets.iter().enumerate() {
            datagrams.clear();
            let mine = self.entries.iter().filter(|entry| entry.0 == index);
            datagrams.extend(mine.map(|&(_, start, len)| &self.bytes[start..start + len]));
            refused += send_all(socket.as_raw_fd(), &datagrams, Destination::CONNECTED);
        }
        self.bytes.clear();
        self.entries.clear();
        self.sockets.clear();
        refused
    }
}

/// Receive buffers for one `recvmmsg` on a connected socket.
struct ReplyBatch {
    buffers: Vec<Vec<u8>>,
    lengths: [usize; MMSG_BATCH],
}

thread_local! {
    /// One batch of reply buffers per thread, shared by every flow (a flow
    /// owns no buffer: idle flows cost no memory for one). Pages are only
    /// touched as far as datagrams reach.
    static REPLY_BATCH: std::cell::RefCell<ReplyBatch> = std::cell::RefCell::new(ReplyBatch {
        buffers: (0..MMSG_BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
        lengths: [0; MMSG_BATCH],
    });
}

/// Receives what waits on the connected socket `fd` (up to
/// [`MMSG_BATCH`] datagrams, `WouldBlock` if none) and hands them to
/// `deliver` with this thread's buffers. Not reentrant.
pub(super) fn with_reply_batch<R>(fd: RawFd, deliver: impl FnOnce(&[&[u8]]) -> R) -> io::Result<R> {
    REPLY_BATCH.with_borrow_mut(|batch| {
        let mut iovecs: [libc::iovec; MMSG_BATCH] =
            std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        // SAFETY: an all-zero mmsghdr is valid.
        let mut headers: [libc::mmsghdr; MMSG_BATCH] = unsafe { zeroed() };
        for i in 0..MMSG_BATCH {
            iovecs[i] = libc::iovec { iov_base: batch.buffers[i].as_mut_ptr().cast(), iov_len: batch.buffers[i].len() };
            headers[i].msg_hdr.msg_iov = &raw mut iovecs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer of the length given.
        let count = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                MMSG_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let count = usize::try_from(count).map_err(|_| io::Error::last_os_error())?;
        for (length, header) in batch.lengths.iter_mut().zip(&headers[..count]) {
            *length = header.msg_len as usize;
        }
        let mut datagrams: [&[u8]; MMSG_BATCH] = [&[]; MMSG_BATCH];
        for (i, datagram) in datagrams[..count].iter_mut().enumerate() {
            *datagram = &batch.buffers[i][..batch.lengths[i]];
        }
        Ok(deliver(&datagrams[..count]))
    })
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket as StdSocket;
    use std::time::Duration;

    use super::*;

    fn backend() -> StdSocket {
        let socket = StdSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket
    }

    fn upstream(to: &StdSocket) -> Arc<UdpSocket> {
        let socket = super::super::socket::upstream_socket(to.local_addr().unwrap()).unwrap();
        Arc::new(UdpSocket::from_std(socket).unwrap())
    }

    fn next(socket: &StdSocket) -> Vec<u8> {
        let mut buffer = [0u8; 256];
        let n = socket.recv(&mut buffer).unwrap();
        buffer[..n].to_vec()
    }

    #[tokio::test]
    async fn the_outbox_sends_each_flow_its_datagrams_in_order_headers_first() {
        let (a, b) = (backend(), backend());
        let (to_a, to_b) = (upstream(&a), upstream(&b));
        let mut outbox = Outbox::default();
        outbox.push(&to_a, None, b"a1");
        outbox.push(&to_b, Some(b"H:"), b"b1");
        outbox.push(&to_a, None, b"a2");
        outbox.push(&to_b, Some(b"H:"), b"b2");
        assert!(!outbox.is_empty());
        assert_eq!(outbox.flush(), 0);
        assert!(outbox.is_empty());
        assert_eq!([next(&a), next(&a)], [b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!([next(&b), next(&b)], [b"H:b1".to_vec(), b"H:b2".to_vec()]);
    }

    #[tokio::test]
    async fn more_than_a_batch_all_arrive_in_order_and_replies_come_a_batch_at_a_time() {
        let a = backend();
        let to_a = upstream(&a);
        let mut outbox = Outbox::default();
        let count = MMSG_BATCH * 2 + 3;
        for i in 0..count {
            outbox.push(&to_a, None, format!("{i}").as_bytes());
        }
        assert_eq!(outbox.flush(), 0);
        // The backend answers each; the flow's socket takes them a batch at a time.
        for i in 0..count {
            let got = next(&a);
            assert_eq!(got, format!("{i}").into_bytes());
            a.send_to(&got, to_a.local_addr().unwrap()).unwrap();
        }
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.len() < count {
            assert!(std::time::Instant::now() < deadline, "only {} replies", seen.len());
            match with_reply_batch(to_a.as_raw_fd(), |datagrams| {
                assert!(datagrams.len() <= MMSG_BATCH);
                datagrams.iter().map(|d| d.to_vec()).collect::<Vec<_>>()
            }) {
                Ok(batch) => seen.extend(batch),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
        let expected: Vec<Vec<u8>> = (0..count).map(|i| format!("{i}").into_bytes()).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_refused_datagram_is_counted_and_the_rest_still_go() {
        let a = backend();
        let socket = StdSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(a.local_addr().unwrap()).unwrap();
        let too_big = vec![0u8; 70_000];
        let datagrams: [&[u8]; 3] = [b"one", &too_big, b"three"];
        assert_eq!(send_all(socket.as_raw_fd(), &datagrams, Destination::CONNECTED), 1);
        assert_eq!([next(&a), next(&a)], [b"one".to_vec(), b"three".to_vec()]);
    }
}
