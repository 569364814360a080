//! Datagrams per second through serve2's UDP flow path: clients → serve2
//! (`udpAddress`, one `forward` or one detected kind) → an echo backend →
//! serve2 → clients, with 1 or many flows in the table.
//!
//! serve2 runs on a thread of its own (as in serve2d), the echo backend on
//! another, the clients on the main thread: each client sends one
//! datagram, [`WINDOW`] clients at a time, then takes their replies.
//!
//! Run it in a network namespace of its own:
//! `unshare -n sh -c 'ip link set lo up && target/release/examples/udp_flow_rate 1 5000'`
//! (build with `cargo build --release -p serve2 --example udp_flow_rate`).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use serve2::Config;
use serve2::udp::{UdpRouter, UdpServer};

const ROUND_TRIPS: usize = 200_000;
const WINDOW: usize = 32;

fn main() -> anyhow::Result<()> {
    let counts: Vec<usize> = std::env::args().skip(1).map(|n| n.parse()).collect::<Result<_, _>>()?;
    for flows in if counts.is_empty() { vec![1, 5000] } else { counts } {
        for block in ["forward", "detected"] {
            run(flows, block)?;
        }
    }
    Ok(())
}

fn run(flows: usize, block: &str) -> anyhow::Result<()> {
    let backend = UdpSocket::bind("127.0.0.1:0")?;
    let backend_addr = backend.local_addr()?;
    std::thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        while let Ok((n, from)) = backend.recv_from(&mut buffer) {
            let _ = backend.send_to(&buffer[..n], from);
        }
    });
    let udp = match block {
        "forward" => format!(r#"{{"forward": {{"target": "{backend_addr}"}}, "idleTimeout": 600}}"#),
        _ => format!(
            r#"{{"protocols": [{{"kind": "prefix", "conf": {{"prefix": "x", "target": "127.0.0.1:9"}}}},
                               {{"kind": "regex", "conf": {{"patterns": "^Z", "target": "{backend_addr}"}}}}],
                "idleTimeout": 600}}"#
        ),
    };
    let text = format!(r#"{{"udpAddress": "127.0.0.1:0", "control": "", "maxFlowsPerSource": 65536, "udp": {udp}}}"#);
    let config = Config::parse(Path::new("bench.json"), &text)?;
    let address = config.udp.listen.ok_or_else(|| anyhow::anyhow!("no udpAddress"))?;
    let socket = serve2::udp::socket::bind(&address)?;
    let serve2: SocketAddr = socket.local_addr()?;
    let server = UdpServer::new(UdpRouter::new(&config, None));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(server.serve(socket, false, async {
            let _ = stopped.await;
        }));
        anyhow::Ok(())
    });
    let clients: Vec<UdpSocket> = (0..flows)
        .map(|_| {
            let client = UdpSocket::bind("127.0.0.1:0")?;
            client.set_read_timeout(Some(Duration::from_secs(2)))?;
            Ok(client)
        })
        .collect::<anyhow::Result<_>>()?;
    let payload = [b'Z'; 100];
    let mut buffer = [0u8; 2048];
    // Every flow's first datagram: detection, a backend socket, a task.
    let started = Instant::now();
    let mut lost = 0;
    for window in clients.chunks(WINDOW) {
        lost += round(window, serve2, &payload, &mut buffer)?;
    }
    let new_flows = flows as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut sent = 0;
    let mut next = 0;
    while sent < ROUND_TRIPS {
        let window: Vec<&UdpSocket> = (0..WINDOW).map(|i| &clients[(next + i) % flows]).collect();
        next = (next + WINDOW) % flows;
        for client in &window {
            client.send_to(&payload, serve2)?;
        }
        for client in &window {
            if client.recv(&mut buffer).is_err() {
                lost += 1;
            }
        }
        sent += WINDOW;
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    println!(
        "{flows:>5} flows, {block:>8}: {new_flows:>8.0} new flows/s, {rate:>8.0} round trips/s \
         ({:.0} datagrams/s through serve2, {:.2} µs each), {lost} lost",
        rate * 2.0,
        1e6 / (rate * 2.0)
    );
    let _ = stop.send(());
    serving.join().map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    Ok(())
}

/// One datagram from each client, then each one's reply; the replies lost.
fn round(clients: &[UdpSocket], to: SocketAddr, payload: &[u8], buffer: &mut [u8]) -> anyhow::Result<usize> {
    for client in clients {
        client.send_to(payload, to)?;
    }
    Ok(clients.iter().filter(|client| client.recv(buffer).is_err()).count())
}
