//! A proxied connection's state on an io_uring worker, and how its
//! operations are named in `user_data`.

use io_uring::types;

/// A socket as the ring names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sock {
    /// A direct descriptor: a slot of the ring's registered file table.
    Fixed(u32),
    /// A regular file descriptor.
    Fd(std::os::fd::RawFd),
}

/// Builds an entry for `sock`, whichever kind it is: the opcodes take
/// `types::Fixed` and `types::Fd` as distinct types.
macro_rules! on_sock {
    ($sock:expr, $target:ident => $build:expr) => {
        match $sock {
            $crate::uring::conn::Sock::Fixed(slot) => {
                let $target = ::io_uring::types::Fixed(slot);
                $build
            }
            $crate::uring::conn::Sock::Fd(fd) => {
                let $target = ::io_uring::types::Fd(fd);
                $build
            }
        }
    };
}
pub(crate) use on_sock;

/// What an operation was, in the low byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// The listener's multishot accept.
    Accept = 1,
    /// The first read from the client.
    FirstRecv,
    /// Creating the backend socket (regular descriptors only).
    Socket,
    /// Set-up steps completing only on failure (CQE_SKIP_SUCCESS): the
    /// backend socket (direct), TCP_NODELAY, connect.
    Setup,
    /// A read from the client, relayed up.
    UpRecv,
    /// A write to the backend.
    UpSend,
    /// A read from the backend, relayed down.
    DownRecv,
    /// A write to the client.
    DownSend,
    /// Shutdowns and closes (CQE_SKIP_SUCCESS; failures are ignored).
    Teardown,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::Accept,
        Op::FirstRecv,
        Op::Socket,
        Op::Setup,
        Op::UpRecv,
        Op::UpSend,
        Op::DownRecv,
        Op::DownSend,
        Op::Teardown,
    ];

    /// `user_data` naming this operation of connection `index`.
    pub fn user_data(self, index: u32) -> u64 {
        (u64::from(index) << 8) | self as u64
    }

    /// The operation and connection index `user_data` names.
    pub fn parse(user_data: u64) -> Option<(Op, u32)> {
        let op = Op::ALL.into_iter().find(|op| *op as u64 == user_data & 0xff)?;
        Some((op, (user_data >> 8) as u32))
    }
}

/// One direction of the relay.
#[derive(Debug)]
pub struct Direction {
    pub buffer: Box<[u8]>,
    /// Bytes in `buffer` read and not yet all written.
    pub len: usize,
    pub sent: usize,
    /// Its source ended (and its destination was shut down for writing).
    pub done: bool,
}

impl Direction {
    pub fn new(buffer: Box<[u8]>) -> Self {
        Direction { buffer, len: 0, sent: 0, done: false }
    }
}

/// A connection: its sockets, both directions, and how many of its counted
/// operations the kernel still holds (it is freed only at zero, so no
/// completion can name a freed or reused index).
#[derive(Debug)]
pub struct Conn {
    pub client: Sock,
    pub backend: Option<Sock>,
    pub up: Direction,
    pub down: Direction,
    pub in_flight: u32,
    /// Something failed: both sockets were shut down to end pending reads.
    pub failed: bool,
}

impl Conn {
    pub fn new(client: Sock) -> Self {
        let (up, down) = crate::relay::buffers();
        Conn { client, backend: None, up: Direction::new(up), down: Direction::new(down), in_flight: 0, failed: false }
    }
}

/// `Fixed` or `Fd` for the accepted result `res`.
pub fn accepted(res: i32, direct: bool) -> Sock {
    if direct { Sock::Fixed(res as u32) } else { Sock::Fd(res) }
}

/// The slot of a direct descriptor, for the set-up of a backend socket.
pub fn slot(sock: Sock) -> Option<types::DestinationSlot> {
    match sock {
        Sock::Fixed(slot) => types::DestinationSlot::try_from_slot_target(slot).ok(),
        Sock::Fd(_) => None,
    }
}
