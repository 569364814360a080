//! UDP flows: the `udpAddress` sockets and the ones the kernel steers
//! `steer.udpPorts` to (each a SO_REUSEPORT group of one socket per
//! worker thread, the kernel hashing each client to one) take every client
//! datagram; `maxFlows` and `maxFlowsPerSource` hold across all of them. A flow is a
//! (client address, dialled address) pair; its first datagrams are
//! buffered — at most [`MAX_BUFFERED_DATAGRAMS`] and [`MAX_BUFFERED_BYTES`],
//! for at most `detectTimeout` — until the `udp` block's protocols decide,
//! then replayed in order to the backend; later ones go straight on.
//! Replies reach the client from the address and port it dialled. Idle
//! flows are ended on a timer (`idleTimeout` until the backend answers,
//! `establishedTimeout` after). A flow that matched nothing and has no
//! default is dropped and forgotten: the source's next datagram is
//! detected afresh.
//!
//! [`server::UdpServer`] is the engine; [`router`] picks a flow's `udp`
//! block by dialled port; [`kinds`] are the detectors; [`socket`] binds and
//! talks to the kernel. Which UDP ports steering takes is decided with the
//! TCP ones, in `steer/plan.rs`.

mod admission;
mod flow;
pub mod group;
mod header;
pub mod kinds;
pub mod metrics;
mod mmsg;
mod reply;
pub mod router;
mod routing;
pub mod server;
pub mod set;
pub mod socket;
pub mod stats;
mod table;

pub use router::UdpRouter;
pub use server::UdpServer;
pub use stats::UdpStatus;

/// Most datagrams a new flow buffers before its protocol is known.
pub const MAX_BUFFERED_DATAGRAMS: usize = 8;
/// Most bytes a new flow buffers before its protocol is known (its first
/// datagram is always kept, whatever its size).
pub const MAX_BUFFERED_BYTES: usize = 16 * 1024;
