//! Measures the two ways a UDP flow can answer its client from the address
//! and port the client dialled (docs/ARCHITECTURE.md, "UDP"):
//!
//! - **per-flow**: one socket per flow, bound to the dialled address:port
//!   (SO_REUSEADDR) and connected to the client; the kernel's connected
//!   lookup hands it the flow's later datagrams, replies are `send`;
//! - **shared**: every datagram through one unconnected socket (batched with
//!   `recvmmsg`) and a flow table, replies `sendto` the client from one
//!   unconnected socket per dialled address:port.
//!
//! Each figure is the time of one datagram sent on loopback and received,
//! in one thread (the kernel does the whole receive path inside `sendto`),
//! with `flows` per-flow sockets on the dialled port.
//!
//! Run it in a network namespace of its own:
//! `unshare -n sh -c 'ip link set lo up && target/release/examples/udp_reply_paths 5000'`
//! (build with `cargo build --release -p serve2 --example udp_reply_paths`).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use socket2::{Domain, Socket, Type};

const ROUNDS: u32 = 200_000;
const BATCH: usize = 32;

fn main() -> anyhow::Result<()> {
    let flows: usize = std::env::args().nth(1).map_or(Ok(5000), |n| n.parse())?;
    println!("kernel {}", std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim());
    for n in [1, flows] {
        measure(n)?;
    }
    Ok(())
}

fn socket(bind: SocketAddr, reuse: bool) -> anyhow::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    socket.set_reuse_address(reuse)?;
    socket.bind(&bind.into())?;
    Ok(socket)
}

fn measure(flows: usize) -> anyhow::Result<()> {
    let dialled: SocketAddr = "127.0.0.1:4500".parse()?;
    // The daemon's socket for the port (a wildcard bind, as `":4500"`).
    let main: UdpSocket = socket("0.0.0.0:4500".parse()?, true)?.into();
    // Per-flow sockets, each connected to a client of its own.
    let mut per_flow = Vec::with_capacity(flows);
    for i in 0..flows {
        let s = socket(dialled, true)?;
        let client: SocketAddr = format!("127.0.0.2:{}", 20_000 + i).parse()?;
        s.connect(&client.into())?;
        per_flow.push(UdpSocket::from(s));
    }
    let flow_client = UdpSocket::bind("127.0.0.2:20000")?;
    let new_client = UdpSocket::bind("127.0.0.3:0")?;
    // Flow 0's backend and its backend-facing socket, the same for both.
    let backend = UdpSocket::bind("127.0.0.4:0")?;
    let upstream = UdpSocket::bind("127.0.0.1:0")?;
    upstream.connect(backend.local_addr()?)?;
    let payload = [0x5au8; 100];
    let mut buf = [0u8; 2048];

    // A datagram of no flow: the unconnected lookup walks the dialled
    // port's bucket, per-flow sockets included, to the daemon's socket.
    let new_flow = per_datagram(|| {
        new_client.send_to(&payload, dialled)?;
        main.recv_from(&mut buf)?;
        Ok(())
    })?;
    // A datagram of flow 0: the connected lookup finds its socket.
    let flow = per_datagram(|| {
        flow_client.send_to(&payload, dialled)?;
        per_flow[0].recv(&mut buf)?;
        Ok(())
    })?;
    // Its reply, `send` on the connected socket.
    let reply_connected = per_datagram(|| {
        per_flow[0].send(&payload)?;
        flow_client.recv(&mut buf)?;
        Ok(())
    })?;
    // The whole flow path, one round trip (client → serve2 → backend →
    // serve2 → client: four datagrams), system calls only.
    let trip_per_flow = per_datagram(|| {
        flow_client.send_to(&payload, dialled)?;
        let n = per_flow[0].recv(&mut buf)?;
        upstream.send(&buf[..n])?;
        let (n, from) = backend.recv_from(&mut buf)?;
        backend.send_to(&buf[..n], from)?;
        let n = upstream.recv(&mut buf)?;
        per_flow[0].send(&buf[..n])?;
        flow_client.recv(&mut buf)?;
        Ok(())
    })?;
    drop(per_flow);

    // Shared: the daemon's socket and one reply socket for the dialled
    // address:port; `flows` clients in a table.
    let table: HashMap<SocketAddr, usize> =
        (0..flows.max(1)).map(|i| (SocketAddr::from(([127, 0, 0, 2], 20_000 + i as u16)), i)).collect();
    let shared_in = per_datagram(|| {
        flow_client.send_to(&payload, dialled)?;
        let (_, from) = main.recv_from(&mut buf)?;
        std::hint::black_box(table.get(&from));
        Ok(())
    })?;
    let shared_in_batched = per_batch(&flow_client, &main, dialled, &payload)?;
    // Bound after the inbound figures: on a port no program steers, this
    // more specific bind would take the flow's datagrams from `main`.
    let reply: UdpSocket = socket(dialled, true)?.into();
    let reply_sendto = per_datagram(|| {
        reply.send_to(&payload, flow_client.local_addr()?)?;
        flow_client.recv(&mut buf)?;
        Ok(())
    })?;
    // Steered, the kernel hands the flow's datagrams to `main` and `reply`
    // gets none; unsteered (here) the bound reply socket would take them:
    // the round trip receives on `reply` to stand for `main`.
    let trip_shared = per_datagram(|| {
        flow_client.send_to(&payload, dialled)?;
        let (n, from) = reply.recv_from(&mut buf)?;
        std::hint::black_box(table.get(&from));
        upstream.send(&buf[..n])?;
        let (n, from) = backend.recv_from(&mut buf)?;
        backend.send_to(&buf[..n], from)?;
        let n = upstream.recv(&mut buf)?;
        reply.send_to(&buf[..n], flow_client.local_addr()?)?;
        flow_client.recv(&mut buf)?;
        Ok(())
    })?;
    println!(
        "{flows:>5} flows on {dialled}: per-flow: new flow {new_flow:.2} µs, flow {flow:.2} µs, reply {reply_connected:.2} µs, \
         round trip {trip_per_flow:.2} µs; shared: in {shared_in:.2} µs (recvmmsg x{BATCH}: {shared_in_batched:.2} µs), \
         reply {reply_sendto:.2} µs, round trip {trip_shared:.2} µs"
    );
    Ok(())
}

/// Microseconds per call of `round`, over [`ROUNDS`] calls.
fn per_datagram(mut round: impl FnMut() -> std::io::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..1000 {
        round()?;
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        round()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS))
}

/// Microseconds per datagram: [`BATCH`] sent, then taken with one `recvmmsg`.
fn per_batch(client: &UdpSocket, main: &UdpSocket, to: SocketAddr, payload: &[u8]) -> anyhow::Result<f64> {
    let mut buffers = vec![[0u8; 2048]; BATCH];
    let rounds = ROUNDS / BATCH as u32;
    let start = Instant::now();
    for _ in 0..rounds {
        for _ in 0..BATCH {
            client.send_to(payload, to)?;
        }
        let mut received = 0;
        while received < BATCH {
            received += recvmmsg(main, &mut buffers[received..])?;
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds * BATCH as u32))
}

fn recvmmsg(socket: &UdpSocket, buffers: &mut [[u8; 2048]]) -> std::io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> =
        buffers.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
    // SAFETY: zeroed mmsghdr is valid (null name and control, no iovec yet).
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every header points at a live iovec over a live buffer.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}
