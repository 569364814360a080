//! `udp-pingpong`: FLOWS flows (one thread each) keep WINDOW datagrams of
//! SIZE bytes in flight to an echo, for SECONDS: every echo that comes back
//! is answered with a new datagram at once. A round trip is one datagram
//! each way through the system under test.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::batch::Batch;
use super::{ECHO_WAIT, flow_socket, open_flow};

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub flows: usize,
    pub window: usize,
    pub size: usize,
    pub seconds: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Result {
    /// Echoes received, each for a datagram sent (the round trips).
    pub round_trips: u64,
    pub seconds: f64,
    /// Round trips per second.
    pub datagrams_per_sec: f64,
    /// Payload bytes echoed per second (each byte counted once).
    pub bytes_per_sec: f64,
    /// Datagrams whose echo did not come back within the wait.
    pub lost: u64,
    /// Echoes of the wrong length.
    pub misroutes: u64,
    /// Flows that could not be opened or failed.
    pub errors: u64,
    pub ok: u64,
}

#[derive(Debug, Default)]
struct FlowTally {
    round_trips: u64,
    lost: u64,
    misroutes: u64,
}

pub fn run(target: SocketAddr, shape: Shape) -> anyhow::Result<Result> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(shape.seconds);
    let threads: Vec<_> =
        (0..shape.flows).map(|index| std::thread::spawn(move || flow(index, target, shape, deadline))).collect();
    let mut result = Result::default();
    for thread in threads {
        match thread.join() {
            Ok(Ok(tally)) => {
                result.round_trips += tally.round_trips;
                result.lost += tally.lost;
                result.misroutes += tally.misroutes;
                result.ok += 1;
            }
            Ok(Err(e)) => {
                eprintln!("udp-pingpong: {e}");
                result.errors += 1;
            }
            Err(_) => result.errors += 1,
        }
    }
    result.seconds = start.elapsed().as_secs_f64();
    result.datagrams_per_sec = result.round_trips as f64 / result.seconds;
    result.bytes_per_sec = (result.round_trips * shape.size as u64) as f64 / result.seconds;
    Ok(result)
}

fn flow(index: usize, target: SocketAddr, shape: Shape, deadline: Instant) -> std::io::Result<FlowTally> {
    // A shorter wait than a new flow's: a lost datagram must not stall the window long.
    let socket = flow_socket(index, target, ECHO_WAIT)?;
    if !open_flow(&socket)? {
        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the flow's first datagram was not echoed"));
    }
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let fd = socket.as_raw_fd();
    let mut out = Batch::new(shape.window, shape.size, false);
    out.fill(&vec![0xa5; shape.size]);
    let mut replies = Batch::new(shape.window, shape.size + 1, false);
    let mut tally = FlowTally::default();
    out.send(fd, shape.window, shape.size)?;
    let mut in_flight = shape.window;
    while Instant::now() < deadline {
        match replies.recv(fd) {
            Ok(n) => {
                for i in 0..n {
                    if replies.datagram(i).len() == shape.size {
                        tally.round_trips += 1;
                    } else {
                        tally.misroutes += 1;
                    }
                }
                out.send(fd, n, shape.size)?;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                // Nothing for 200 ms: what was in flight is lost; refill the window.
                tally.lost += in_flight as u64;
                out.send(fd, shape.window, shape.size)?;
                in_flight = shape.window;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(tally)
}
