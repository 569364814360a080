//! Batches of datagrams moved with one `recvmmsg` or `sendmmsg`: the origin
//! and the load generator must cost as little per datagram as they can, or
//! on two shared cores they, not the proxy, set the rate.

use std::io;
use std::os::fd::RawFd;

/// Buffers and headers for up to `count` datagrams of at most `size` bytes,
/// reused from one call to the next.
pub struct Batch {
    size: usize,
    // Boxed slices: the headers point into them, so they must never move.
    buffers: Box<[u8]>,
    iovecs: Box<[libc::iovec]>,
    // Never read here: the headers point into it, so it lives as long.
    _names: Box<[libc::sockaddr_storage]>,
    headers: Box<[libc::mmsghdr]>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("count", &self.headers.len()).field("size", &self.size).finish()
    }
}

impl Batch {
    /// `named`: the datagrams carry their peer's address (an unconnected
    /// socket, replying to each sender); otherwise the socket is connected.
    pub fn new(count: usize, size: usize, named: bool) -> Self {
        let mut buffers = vec![0u8; count * size].into_boxed_slice();
        let mut iovecs: Box<[libc::iovec]> = (0..count)
            .map(|i| libc::iovec { iov_base: buffers[i * size..].as_mut_ptr().cast(), iov_len: size })
            .collect();
        // SAFETY: sockaddr_storage is plain data, valid all zero.
        let mut names: Box<[libc::sockaddr_storage]> = (0..count).map(|_| unsafe { std::mem::zeroed() }).collect();
        let headers = (0..count)
            .map(|i| {
                // SAFETY: mmsghdr is plain data, valid all zero.
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_iov = &mut iovecs[i];
                header.msg_hdr.msg_iovlen = 1;
                if named {
                    header.msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
                }
                header
            })
            .collect();
        Batch { size, buffers, iovecs, _names: names, headers }
    }

    /// Datagram `i`'s bytes after a [`Batch::recv`].
    pub fn datagram(&self, i: usize) -> &[u8] {
        let len = (self.headers[i].msg_len as usize).min(self.size);
        &self.buffers[i * self.size..i * self.size + len]
    }

    /// Fills every buffer with `payload` (cut to the buffer size).
    pub fn fill(&mut self, payload: &[u8]) {
        let len = payload.len().min(self.size);
        for chunk in self.buffers.chunks_mut(self.size) {
            chunk[..len].copy_from_slice(&payload[..len]);
        }
    }

    /// Receives up to the batch's count: blocking for the first (up to the
    /// socket's receive timeout), then what is already queued.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let name_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        for (header, iovec) in self.headers.iter_mut().zip(self.iovecs.iter_mut()) {
            iovec.iov_len = self.size;
            if !header.msg_hdr.msg_name.is_null() {
                header.msg_hdr.msg_namelen = name_len;
            }
        }
        let count = self.headers.len() as libc::c_uint;
        // SAFETY: every header points at a live iovec, buffer and name of
        // this batch, sized as declared.
        let n =
            unsafe { libc::recvmmsg(fd, self.headers.as_mut_ptr(), count, libc::MSG_WAITFORONE, std::ptr::null_mut()) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Sends the first `n` datagrams back where they came from, each as
    /// long as it was received (the echo).
    pub fn echo(&mut self, fd: RawFd, n: usize) -> io::Result<()> {
        for i in 0..n {
            self.iovecs[i].iov_len = self.headers[i].msg_len as usize;
        }
        self.send_first(fd, n)
    }

    /// Sends the first `n` buffers, `len` bytes each, on a connected socket.
    pub fn send(&mut self, fd: RawFd, n: usize, len: usize) -> io::Result<()> {
        for iovec in &mut self.iovecs[..n] {
            iovec.iov_len = len.min(self.size);
        }
        self.send_first(fd, n)
    }

    fn send_first(&mut self, fd: RawFd, n: usize) -> io::Result<()> {
        let mut sent = 0;
        while sent < n {
            let rest = &mut self.headers[sent..n];
            // SAFETY: as in `recv`; the names hold what recvmmsg wrote.
            let done = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
            if done < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            sent += done as usize;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_batch_is_echoed_to_each_sender_at_its_length() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let clients: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for (i, client) in clients.iter().enumerate() {
            client.send_to(&vec![i as u8; 10 + i], server.local_addr().unwrap()).unwrap();
        }
        let mut batch = Batch::new(8, 64, true);
        let mut got = 0;
        while got < 3 {
            let n = batch.recv(server.as_raw_fd()).unwrap();
            batch.echo(server.as_raw_fd(), n).unwrap();
            got += n;
        }
        for (i, client) in clients.iter().enumerate() {
            let mut reply = [0u8; 64];
            let n = client.recv(&mut reply).unwrap();
            assert_eq!(&reply[..n], vec![i as u8; 10 + i].as_slice());
        }
    }
}
