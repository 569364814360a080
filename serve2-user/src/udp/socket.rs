//! The daemon's UDP sockets at the system-call level: binding with the
//! dialled address reported on every datagram (IP_RECVORIGDSTADDR,
//! IPV6_RECVORIGDSTADDR), receiving batches with `recvmmsg`, and sending a
//! reply from a chosen local address (IP_PKTINFO, IPV6_PKTINFO).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ListenAddress;

/// Datagrams taken from the kernel per `recvmmsg`.
pub const BATCH: usize = 16;
/// The largest datagram received whole (bigger ones are truncated and
/// dropped).
pub const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer asked for on the daemon's socket (the kernel caps it at
/// `net.core.rmem_max`): bursts of new flows wait there while serve2 works.
const SOCKET_RECEIVE_BUFFER: usize = 4 << 20;

/// Binds the socket for `udpAddress`: `":port"` is one dual-stack `[::]`
/// socket, as for TCP.
pub fn bind(address: &ListenAddress) -> io::Result<std::net::UdpSocket> {
    let at = address.socket_addr();
    let socket = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
    if at.is_ipv6() {
        socket.set_only_v6(matches!(address, ListenAddress::Addr(_)))?;
    }
    prepare(&socket, at.is_ipv6())?;
    socket.bind(&at.into())?;
    Ok(socket.into())
}

/// Binds the socket the kernel steers UDP ports to: `at` is `[::]:0` in
/// the daemon (dual-stack), `127.0.0.1:0` in tests.
pub fn bind_steered(at: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
    if at.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    prepare(&socket, at.is_ipv6())?;
    socket.bind(&at.into())?;
    Ok(socket.into())
}

/// Non-blocking, a large receive buffer, and the dialled address on every
/// datagram (for IPv4 datagrams on a dual-stack socket too).
pub(super) fn prepare(socket: &Socket, ipv6: bool) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    // Best effort: the default still works, it only drops sooner.
    let _ = socket.set_recv_buffer_size(SOCKET_RECEIVE_BUFFER);
    set_flag(socket.as_raw_fd(), libc::SOL_IP, libc::IP_RECVORIGDSTADDR)?;
    if ipv6 {
        set_flag(socket.as_raw_fd(), libc::SOL_IPV6, libc::IPV6_RECVORIGDSTADDR)?;
    }
    Ok(())
}

/// Binds an unconnected socket to `dialled`.
///
/// SO_REUSEADDR lets it share the port with serve2's own backend-facing
/// sockets: under `"all"` a client may dial a port in the ephemeral range
/// that one of them holds. Those set SO_REUSEADDR only once connected
/// ([`upstream_socket`]), so two of them never share an
/// ephemeral port (and a 4-tuple) with each other. IP_FREEBIND: the address
/// may be one the kernel treats as local through a route, not an interface.
pub fn bind_reply(dialled: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(dialled), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if dialled.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&dialled.into())?;
    Ok(socket.into())
}

/// A socket connected to `backend` from an ephemeral port.
///
/// Non-blocking from creation, and bound by `connect` itself (the kernel
/// picks the port and the source address): two system calls fewer per new
/// flow than binding first. SO_REUSEADDR is set only after the port is
/// taken: set before, two backend sockets could be given the same
/// ephemeral port and, to one backend, share a 4-tuple; set after, a reply
/// socket may still bind the same port for a client that dialled it (see
/// [`bind_reply`]).
pub fn upstream_socket(backend: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(backend), Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
    socket.connect(&backend.into())?;
    socket.set_reuse_address(true)?;
    Ok(socket.into())
}

/// Sets an integer socket option to 1.
pub(super) fn set_flag(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the option value is a live c_int of the size given.
    let result = unsafe {
        libc::setsockopt(fd, level, name, (&raw const one).cast(), size_of::<libc::c_int>() as libc::socklen_t)
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

thread_local! {
    /// One receive buffer per thread for every flow's replies and every
    /// reply socket: a flow owns no buffer of its own, so 65536 idle flows
    /// cost no 64 KiB each.
    static RECEIVE_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; MAX_DATAGRAM]);
}

/// Runs `receive` with this thread's receive buffer ([`MAX_DATAGRAM`]
/// bytes). Not reentrant: `receive` must not call it again.
pub(super) fn with_receive_buffer<R>(receive: impl FnOnce(&mut [u8]) -> R) -> R {
    RECEIVE_BUFFER.with_borrow_mut(|buffer| receive(buffer))
}

/// One received datagram's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The client (IPv4-mapped addresses as IPv4).
    pub source: SocketAddr,
    /// The address and port it dialled, from the datagram's header.
    pub dialled: Option<SocketAddr>,
}

/// Control space for one IPv4 and one IPv6 original-destination message.
const CONTROL_WORDS: usize = 16;

/// Buffers for one `recvmmsg` of [`BATCH`] datagrams, reused.
#[derive(Debug)]
pub struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    /// Of the last receive: (buffer index, length, addresses, truncated).
    received: Vec<(usize, usize, Addresses, bool)>,
    /// Whether the last receive took fewer than [`BATCH`]: the socket's
    /// queue was empty after it.
    drained: bool,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Buffers for [`BATCH`] datagrams of up to [`MAX_DATAGRAM`] bytes.
    pub fn new() -> Self {
        Self {
            buffers: (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
            // SAFETY: an all-zero sockaddr_storage is a valid (AF_UNSPEC) value.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            controls: vec![[0u64; CONTROL_WORDS]; BATCH],
            received: Vec::with_capacity(BATCH),
            drained: false,
        }
    }

    /// Receives what is queued on `fd`, up to [`BATCH`] datagrams, without
    /// waiting (`WouldBlock` when there is nothing).
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received.clear();
        let mut iovecs: [libc::iovec; BATCH] =
            std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is valid.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovecs[i] = libc::iovec { iov_base: self.buffers[i].as_mut_ptr().cast(), iov_len: self.buffers[i].len() };
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&raw mut self.names[i]).cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &raw mut iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = self.controls[i].as_mut_ptr().cast();
            header.msg_controllen = size_of::<[u64; CONTROL_WORDS]>();
        }
        // SAFETY: every header points at live buffers of the lengths given,
        // all owned by `self` or this frame and unmoved until it returns.
        let count = unsafe {
            libc::recvmmsg(fd, headers.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        let count = usize::try_from(count).map_err(|_| io::Error::last_os_error())?;
        self.drained = count < BATCH;
        for (index, header) in headers[..count].iter().enumerate() {
            let message = &header.msg_hdr;
            // SAFETY: the kernel filled msg_name with msg_namelen bytes.
            let source = unsafe { socket_addr(message.msg_name.cast(), message.msg_namelen) };
            let truncated = message.msg_flags & libc::MSG_TRUNC != 0;
            // SAFETY: the kernel wrote msg_controllen bytes of control
            // messages into the buffer msg_control points at.
            let dialled = unsafe { original_destination(message) };
            let Some(source) = source else { continue };
            let addresses = Addresses { source: canonical(source), dialled: dialled.map(canonical) };
            self.received.push((index, header.msg_len as usize, addresses, truncated));
        }
        Ok(self.received.len())
    }

    /// Whether the last [`RecvBatch::receive`] left the socket's queue empty.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// The datagrams the last [`RecvBatch::receive`] kept.
    pub fn len(&self) -> usize {
        self.received.len()
    }

    /// Whether it kept none.
    pub fn is_empty(&self) -> bool {
        self.received.is_empty()
    }

    /// The `i`th datagram of the last [`RecvBatch::receive`], with its
    /// addresses and whether it was truncated.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], Addresses, bool)> {
        let (index, len, addresses, truncated) = *self.received.get(i)?;
        Some((self.buffers.get(index)?.get(..len)?, addresses, truncated))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// Reads a socket address the kernel wrote.
///
/// # Safety
/// `name` points at `len` readable bytes.
unsafe fn socket_addr(name: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: the caller's promise; the family decides the layout, and the
    // length is checked before each wider read.
    unsafe {
        match i32::from((*name).ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let v4 = std::ptr::read_unaligned(name.cast::<libc::sockaddr_in>());
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(v4.sin_port))))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                let v6 = std::ptr::read_unaligned(name.cast::<libc::sockaddr_in6>());
                let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                let port = u16::from_be(v6.sin6_port);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, port, v6.sin6_flowinfo, v6.sin6_scope_id)))
            }
            _ => None,
        }
    }
}

/// The IP_ORIGDSTADDR or IPV6_ORIGDSTADDR control message of a received
/// datagram.
///
/// # Safety
/// `message` is a header `recvmsg`/`recvmmsg` filled.
unsafe fn original_destination(message: &libc::msghdr) -> Option<SocketAddr> {
    // SAFETY: the CMSG_* walk stays within msg_control/msg_controllen, and
    // each payload is read unaligned with its length checked.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(message);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let payload = (*cmsg).cmsg_len as usize - (libc::CMSG_DATA(cmsg) as usize - cmsg as usize);
            let original = (level == libc::SOL_IP && kind == libc::IP_ORIGDSTADDR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_ORIGDSTADDR);
            if original {
                let mut storage: libc::sockaddr_storage = zeroed();
                let len = payload.min(size_of::<libc::sockaddr_storage>());
                std::ptr::copy_nonoverlapping(libc::CMSG_DATA(cmsg), (&raw mut storage).cast::<u8>(), len);
                return socket_addr(&storage, len as libc::socklen_t);
            }
            cmsg = libc::CMSG_NXTHDR(message, cmsg);
        }
        None
    }
}

/// Sends `data` to `to` from local address `from` (IP_PKTINFO or
/// IPV6_PKTINFO), on a socket bound to a wildcard address: the reply leaves
/// from the address the client dialled, whatever the routing table prefers.
/// `ipv6_socket` says whether `fd` is an AF_INET6 socket (IPv4 peers are
/// then addressed IPv4-mapped).
pub fn send_from(fd: RawFd, ipv6_socket: bool, data: &[u8], to: SocketAddr, from: IpAddr) -> io::Result<usize> {
    // SAFETY: all-zero sockaddr_storage and msghdr are valid values.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let name_len = write_socket_addr(&mut name, to, ipv6_socket);
    let (mut control, control_len) = source_control(from)?;
    let mut iov = libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() };
    // SAFETY: an all-zero msghdr is valid.
    let mut message: libc::msghdr = unsafe { zeroed() };
    message.msg_name = (&raw mut name).cast();
    message.msg_namelen = name_len;
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = control_len;
    // SAFETY: every pointer in `message` is to a live local of the length given.
    let sent = unsafe { libc::sendmsg(fd, &message, libc::MSG_DONTWAIT) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// The control message that makes `from` a datagram's source address
/// (IP_PKTINFO or IPV6_PKTINFO), and its length.
pub(super) fn source_control(from: IpAddr) -> io::Result<([u64; 8], usize)> {
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; it only frames `control` for the
    // CMSG_* macros. CMSG_SPACE is a pure size computation; the control
    // buffer holds either payload (64 bytes ≥ CMSG_SPACE of in6_pktinfo),
    // and the header is written inside it.
    unsafe {
        let mut message: libc::msghdr = zeroed();
        message.msg_control = control.as_mut_ptr().cast();
        let (level, kind, payload): (libc::c_int, libc::c_int, Vec<u8>) = match from.to_canonical() {
            IpAddr::V4(v4) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr { s_addr: u32::from(v4).to_be() },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                (libc::SOL_IP, libc::IP_PKTINFO, as_bytes(&info))
            }
            IpAddr::V6(v6) => {
                let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: v6.octets() }, ipi6_ifindex: 0 };
                (libc::SOL_IPV6, libc::IPV6_PKTINFO, as_bytes(&info))
            }
        };
        message.msg_controllen = libc::CMSG_SPACE(payload.len() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&message);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the source address"));
        }
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload.len() as u32) as usize;
        std::ptr::copy_nonoverlapping(payload.as_ptr(), libc::CMSG_DATA(cmsg), payload.len());
        Ok((control, message.msg_controllen))
    }
}

/// The bytes of a plain C struct.
fn as_bytes<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: T is a plain C struct of size_of::<T>() initialised bytes.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

/// Writes `to` into `storage` (IPv4-mapped for an AF_INET6 socket),
/// returning its length.
pub(super) fn write_socket_addr(
    storage: &mut libc::sockaddr_storage,
    to: SocketAddr,
    ipv6_socket: bool,
) -> libc::socklen_t {
    let to = match to {
        SocketAddr::V4(v4) if ipv6_socket => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        other => other,
    };
    let address = socket2::SockAddr::from(to);
    let len = (address.len() as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: copying `len` bytes of one socket address into storage of at
    // least that size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            address.as_ptr().cast::<u8>(),
            (storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        )
    };
    len as libc::socklen_t
}
