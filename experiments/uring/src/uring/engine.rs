//! The io_uring proxy's state machine: what each completion leads to.
//!
//! Per connection, with direct descriptors: a multishot accept posts the
//! client's slot; one recv gets the first bytes; then one linked chain —
//! socket (into a slot the worker picked), TCP_NODELAY, connect, send of
//! those bytes, recv from the backend — goes in with a single submission,
//! the set-up steps posting nothing unless they fail. The relay then
//! alternates recv and send per direction; an ended direction shuts its
//! destination down for writing (unless the other direction ended too:
//! the close follows at once); both ends are closed when nothing is left
//! in flight. Every completion of one loop turn is handled before the next
//! submission, so a turn's new operations go in with one `io_uring_enter`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types};

use super::conn::{Conn, Op, Sock, accepted, on_sock, slot};
use super::ring::{Ring, RingSetup};

/// Direct descriptors per worker for clients, and as many for backends.
const SLOTS: u32 = 8192;

/// How a worker's engine works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Direct descriptors (registered file table) instead of regular fds.
    pub direct: bool,
    /// SINGLE_ISSUER + DEFER_TASKRUN ring.
    pub defer_taskrun: bool,
    /// Stop after the first exchange and hand both sockets out
    /// ([`Engine::take_handed`]) instead of relaying; needs regular fds.
    pub hand_off: bool,
    /// Half-close with a shutdown(2) call instead of IORING_OP_SHUTDOWN,
    /// which the kernel always runs on an io-wq worker thread; needs
    /// regular fds.
    pub sync_shutdown: bool,
}

/// A connection whose first exchange is done, for another relay.
#[derive(Debug)]
pub struct HandOff {
    pub client: OwnedFd,
    pub backend: OwnedFd,
    pub up: Box<[u8]>,
    pub down: Box<[u8]>,
}

/// One worker's ring, listener and connections.
#[derive(Debug)]
pub struct Engine {
    ring: Ring,
    listener: std::net::TcpListener,
    /// Boxed: entries point into these until their completions arrive.
    target: Box<socket2::SockAddr>,
    nodelay: Box<libc::c_int>,
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    backend_slots: Vec<u32>,
    options: EngineOptions,
    handed: Vec<HandOff>,
    chain: Vec<squeue::Entry>,
}

impl Engine {
    /// Sets up the ring and arms the multishot accept on `listener`.
    pub fn new(listener: std::net::TcpListener, target: SocketAddr, options: EngineOptions) -> io::Result<Self> {
        if (options.hand_off || options.sync_shutdown) && options.direct {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "hand-off and shutdown(2) need regular descriptors",
            ));
        }
        let direct_slots = options.direct.then_some(SLOTS);
        let ring = Ring::new(RingSetup { defer_taskrun: options.defer_taskrun, direct_slots })?;
        let mut engine = Engine {
            ring,
            listener,
            target: Box::new(target.into()),
            nodelay: Box::new(1),
            conns: Vec::new(),
            free: Vec::new(),
            backend_slots: if options.direct { (SLOTS..2 * SLOTS).rev().collect() } else { Vec::new() },
            options,
            handed: Vec::new(),
            chain: Vec::with_capacity(5),
        };
        engine.arm_accept()?;
        Ok(engine)
    }

    /// Serves forever: submit, wait for a completion, handle them all.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            self.ring.submit(1)?;
            self.complete()?;
        }
    }

    /// Submits what is queued without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        self.ring.submit(0)
    }

    /// Handles every completion posted so far.
    pub fn complete(&mut self) -> io::Result<()> {
        let drained = self.ring.drain();
        let mut result = Ok(());
        for &(user_data, res, flags) in &drained {
            if let Err(e) = self.dispatch(user_data, res, flags) {
                result = Err(e);
                break;
            }
        }
        self.ring.recycle(drained);
        result
    }

    /// The ring's descriptor, readable while completions wait.
    pub fn ring_fd(&self) -> RawFd {
        self.ring.fd()
    }

    /// Connections handed off since the last call.
    pub fn take_handed(&mut self) -> std::vec::Drain<'_, HandOff> {
        self.handed.drain(..)
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let flags = if self.options.direct { 0 } else { libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC };
        let accept = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
            .allocate_file_index(self.options.direct)
            .flags(flags)
            .build()
            .user_data(Op::Accept.user_data(0));
        // SAFETY: the entry points to nothing.
        unsafe { self.ring.push(&[accept]) }
    }

    fn dispatch(&mut self, user_data: u64, res: i32, flags: u32) -> io::Result<()> {
        let Some((op, index)) = Op::parse(user_data) else { return Ok(()) };
        match op {
            Op::Accept => {
                if !cqueue::more(flags) {
                    self.arm_accept()?;
                }
                if res >= 0 {
                    self.on_accept(res)?;
                }
                Ok(())
            }
            Op::Teardown => Ok(()),
            // Posted only on failure; the chain's later entries are cancelled.
            Op::Setup => self.fail(index),
            Op::FirstRecv => self.on_first_recv(index, res),
            Op::Socket => self.on_socket(index, res),
            Op::UpRecv => self.on_recv(index, true, res),
            Op::DownRecv => self.on_recv(index, false, res),
            Op::UpSend => self.on_send(index, true, res),
            Op::DownSend => self.on_send(index, false, res),
        }
    }

    fn on_accept(&mut self, res: i32) -> io::Result<()> {
        let mut conn = Conn::new(accepted(res, self.options.direct));
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.conns.push(None);
                (self.conns.len() - 1) as u32
            }
        };
        let recv = recv(conn.client, &mut conn.up.buffer, Op::FirstRecv.user_data(index));
        conn.in_flight = 1;
        self.conns[index as usize] = Some(conn);
        // SAFETY: the buffer is the connection's, kept until it is freed,
        // which waits for every counted operation.
        unsafe { self.ring.push(&[recv]) }
    }

    fn on_first_recv(&mut self, index: u32, res: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else { return Ok(()) };
        conn.in_flight -= 1;
        if res <= 0 {
            return self.fail(index);
        }
        conn.up.len = res as usize;
        conn.up.sent = 0;
        if !self.options.direct {
            let socket = opcode::Socket::new(
                domain(&self.target),
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
            .build()
            .user_data(Op::Socket.user_data(index));
            conn.in_flight += 1;
            // SAFETY: the entry points to nothing.
            return unsafe { self.ring.push(&[socket]) };
        }
        let Some(slot_index) = self.backend_slots.pop() else { return self.fail(index) };
        let backend = Sock::Fixed(slot_index);
        conn.backend = Some(backend);
        self.chain.clear();
        let socket = opcode::Socket::new(domain(&self.target), libc::SOCK_STREAM, 0).file_index(slot(backend)).build();
        self.chain.push(
            socket.flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS).user_data(Op::Setup.user_data(index)),
        );
        self.connect_chain(index)
    }

    fn on_socket(&mut self, index: u32, res: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else { return Ok(()) };
        conn.in_flight -= 1;
        if res < 0 {
            return self.fail(index);
        }
        conn.backend = Some(Sock::Fd(res));
        self.chain.clear();
        self.connect_chain(index)
    }

    /// Appends TCP_NODELAY, connect, the first bytes' send and (when the
    /// ring relays) the backend's first recv to the chain, and queues it.
    fn connect_chain(&mut self, index: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else { return Ok(()) };
        let Some(backend) = conn.backend else { return Ok(()) };
        let setup = squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS;
        let optval = (&raw const *self.nodelay).cast();
        let optlen = std::mem::size_of::<libc::c_int>() as u32;
        let (level, name) = (libc::IPPROTO_TCP as u32, libc::TCP_NODELAY as u32);
        let nodelay = on_sock!(backend, t => opcode::SetSockOpt::new(t, level, name, optval, optlen).build());
        self.chain.push(nodelay.flags(setup).user_data(Op::Setup.user_data(index)));
        let (addr, len) = (self.target.as_ptr().cast(), self.target.len());
        let connect = on_sock!(backend, t => opcode::Connect::new(t, addr, len).build());
        self.chain.push(connect.flags(setup).user_data(Op::Setup.user_data(index)));
        let first = send(backend, &conn.up.buffer[..conn.up.len], Op::UpSend.user_data(index));
        conn.in_flight += 1;
        if self.options.hand_off {
            self.chain.push(first);
        } else {
            self.chain.push(first.flags(squeue::Flags::IO_LINK));
            self.chain.push(recv(backend, &mut conn.down.buffer, Op::DownRecv.user_data(index)));
            conn.in_flight += 1;
        }
        // SAFETY: address, option value and buffers outlive the operations
        // (the engine's boxes; the connection's buffers until it is freed).
        unsafe { self.ring.push(&self.chain) }
    }

    fn on_recv(&mut self, index: u32, up: bool, res: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else { return Ok(()) };
        conn.in_flight -= 1;
        if conn.failed {
            return self.finish_if_idle(index);
        }
        if res < 0 {
            return self.fail(index);
        }
        let Some(backend) = conn.backend else { return self.fail(index) };
        let (to, op) = if up { (backend, Op::UpSend) } else { (conn.client, Op::DownSend) };
        let other_done = if up { conn.down.done } else { conn.up.done };
        let direction = if up { &mut conn.up } else { &mut conn.down };
        if res == 0 {
            direction.done = true;
            if other_done {
                return self.finish_if_idle(index);
            }
            if let (true, Sock::Fd(fd)) = (self.options.sync_shutdown, to) {
                // SAFETY: shutdown on the connection's own open descriptor.
                unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                return Ok(());
            }
            let how = libc::SHUT_WR;
            let shutdown = on_sock!(to, t => opcode::Shutdown::new(t, how).build());
            let shutdown = shutdown.flags(squeue::Flags::SKIP_SUCCESS).user_data(Op::Teardown.user_data(index));
            // SAFETY: the entry points to nothing.
            return unsafe { self.ring.push(&[shutdown]) };
        }
        direction.len = res as usize;
        direction.sent = 0;
        let entry = send(to, &direction.buffer[..direction.len], op.user_data(index));
        conn.in_flight += 1;
        // SAFETY: the connection's buffer, kept until it is freed.
        unsafe { self.ring.push(&[entry]) }
    }

    fn on_send(&mut self, index: u32, up: bool, res: i32) -> io::Result<()> {
        let hand_off = self.options.hand_off;
        let Some(conn) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else { return Ok(()) };
        conn.in_flight -= 1;
        if conn.failed {
            return self.finish_if_idle(index);
        }
        // A cancelled send (its chain failed) or a refused one; 0 cannot progress.
        if res <= 0 {
            return self.fail(index);
        }
        let Some(backend) = conn.backend else { return self.fail(index) };
        let (from, to, op) = if up { (conn.client, backend, Op::UpRecv) } else { (backend, conn.client, Op::DownRecv) };
        let direction = if up { &mut conn.up } else { &mut conn.down };
        direction.sent += res as usize;
        let entry = if direction.sent < direction.len {
            let rest = &direction.buffer[direction.sent..direction.len];
            send(to, rest, if up { Op::UpSend } else { Op::DownSend }.user_data(index))
        } else if up && hand_off {
            return self.hand_off(index);
        } else {
            recv(from, &mut direction.buffer, op.user_data(index))
        };
        conn.in_flight += 1;
        // SAFETY: the connection's buffer, kept until it is freed.
        unsafe { self.ring.push(&[entry]) }
    }

    /// Ends a connection: both sockets shut down, so reads pending on them
    /// complete; it is closed once nothing is in flight.
    fn fail(&mut self, index: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else { return Ok(()) };
        if !conn.failed {
            conn.failed = true;
            self.chain.clear();
            for sock in [Some(conn.client), conn.backend].into_iter().flatten() {
                let shutdown = on_sock!(sock, t => opcode::Shutdown::new(t, libc::SHUT_RDWR).build());
                self.chain.push(shutdown.flags(squeue::Flags::SKIP_SUCCESS).user_data(Op::Teardown.user_data(index)));
            }
            // SAFETY: the entries point to nothing.
            unsafe { self.ring.push(&self.chain)? };
        }
        self.finish_if_idle(index)
    }

    /// Closes and frees the connection if the kernel holds none of its
    /// operations.
    fn finish_if_idle(&mut self, index: u32) -> io::Result<()> {
        let slot_ref = &mut self.conns[index as usize];
        if slot_ref.as_ref().is_none_or(|conn| conn.in_flight > 0) {
            return Ok(());
        }
        let Some(conn) = slot_ref.take() else { return Ok(()) };
        self.free.push(index);
        self.chain.clear();
        for sock in [Some(conn.client), conn.backend].into_iter().flatten() {
            let close = on_sock!(sock, t => opcode::Close::new(t).build());
            self.chain.push(close.flags(squeue::Flags::SKIP_SUCCESS).user_data(Op::Teardown.user_data(index)));
        }
        // A backend slot can be handed out again at once: a later socket
        // into it is issued after this close (entries are issued in order,
        // and a direct close completes inline).
        if let Some(Sock::Fixed(slot_index)) = conn.backend {
            self.backend_slots.push(slot_index);
        }
        // SAFETY: the entries point to nothing.
        unsafe { self.ring.push(&self.chain) }
    }

    fn hand_off(&mut self, index: u32) -> io::Result<()> {
        let Some(conn) = self.conns[index as usize].take() else { return Ok(()) };
        self.free.push(index);
        if let (Sock::Fd(client), Some(Sock::Fd(backend))) = (conn.client, conn.backend) {
            // SAFETY: both descriptors are this connection's, and nothing
            // else closes them: ownership moves to the hand-off.
            let (client, backend) = unsafe { (OwnedFd::from_raw_fd(client), OwnedFd::from_raw_fd(backend)) };
            self.handed.push(HandOff { client, backend, up: conn.up.buffer, down: conn.down.buffer });
        }
        Ok(())
    }
}

fn recv(sock: Sock, buffer: &mut [u8], user_data: u64) -> squeue::Entry {
    let (ptr, len) = (buffer.as_mut_ptr(), buffer.len() as u32);
    on_sock!(sock, t => opcode::Recv::new(t, ptr, len).build()).user_data(user_data)
}

fn send(sock: Sock, bytes: &[u8], user_data: u64) -> squeue::Entry {
    let (ptr, len) = (bytes.as_ptr(), bytes.len() as u32);
    on_sock!(sock, t => opcode::Send::new(t, ptr, len).flags(libc::MSG_NOSIGNAL).build()).user_data(user_data)
}

fn domain(addr: &socket2::SockAddr) -> i32 {
    i32::from(addr.domain())
}
