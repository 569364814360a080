//! `udp-flows` and `udp-hold`: new flows, each from its own source port
//! sending one datagram and waiting for its echo; and many flows opened so,
//! then held idle until stdin reaches EOF.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ECHO_WAIT, flow_socket, open_flow};

#[derive(Debug, Default, Serialize)]
pub struct FlowsResult {
    pub flows_per_sec: f64,
    pub seconds: f64,
    /// Flows whose datagram came back.
    pub ok: u64,
    /// Flows that could not be opened or got no echo within the wait.
    pub errors: u64,
    /// The errors by kind (`NoEcho` for silence).
    pub error_kinds: BTreeMap<String, u64>,
}

/// CONCURRENCY threads open flows one after another, for SECONDS or until
/// `max_flows` flows have been started.
pub fn rate(target: SocketAddr, concurrency: usize, seconds: u64, max_flows: usize) -> FlowsResult {
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, ok, errors) = (next.clone(), ok.clone(), errors.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= max_flows {
                        break;
                    }
                    // The socket is closed at the end of each turn, as a client would.
                    let echoed = flow_socket(index, target, ECHO_WAIT).and_then(|socket| open_flow(&socket));
                    let kind = match echoed {
                        Ok(true) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(false) => {
                            eprintln!("udp-flows: flow {index} from {} got no echo", super::source_of(index));
                            "NoEcho".to_owned()
                        }
                        Err(e) => format!("{:?}", e.kind()),
                    };
                    if let Ok(mut errors) = errors.lock() {
                        *errors.entry(kind).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    let panicked = threads.into_iter().filter_map(|thread| thread.join().err()).count() as u64;
    let seconds = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let mut error_kinds = errors.lock().map(|errors| errors.clone()).unwrap_or_default();
    if panicked > 0 {
        error_kinds.insert("Panicked".to_owned(), panicked);
    }
    let errors = error_kinds.values().sum();
    FlowsResult { flows_per_sec: ok as f64 / seconds, seconds, ok, errors, error_kinds }
}

#[derive(Debug, Serialize)]
struct Held {
    held: usize,
    errors: usize,
}

/// Opens `count` flows, one after another, prints how many were echoed, and keeps their sockets until stdin's EOF.
pub fn hold(target: SocketAddr, count: usize) -> anyhow::Result<()> {
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count);
    let mut errors = 0;
    for index in 0..count {
        match flow_socket(index, target, ECHO_WAIT) {
            Ok(socket) => sockets.push(socket),
            Err(_) => errors += 1,
        }
    }
    // One at a time: a burst of 10,000 would overflow receive buffers and
    // measure drops instead.
    let held = sockets.iter().filter(|socket| matches!(open_flow(socket), Ok(true))).count();
    errors += sockets.len() - held;
    crate::print_line(&Held { held, errors })?;
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    drop(sockets);
    Ok(())
}
