//! CPU cost of one connection's logging as deployed (text lines to a file):
//! the `conn` span with its fields, the enters a relay's polls make, and the
//! summary line, written by the background writer. Prints CPU µs per
//! connection for the whole process (writer thread included).
//!
//! `cargo run --release -p serve2-user --example log_cost -- /tmp/log_cost.log 200000`

use std::net::SocketAddr;
use std::time::Instant;

use serve2::config::{LogFormat, LogTarget};

fn process_cpu_micros() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

fn one_connection(peer: SocketAddr, local: SocketAddr, enters: usize) {
    let span = tracing::info_span!("conn", %peer, port = local.port());
    for _ in 0..enters {
        drop(span.enter());
    }
    let _entered = span.enter();
    let (chain, fallback, target, end) = ("ssh", "-", "127.0.0.1:2222", "closed");
    let (client, sni, host): (Option<tracing::field::DisplayValue<&str>>, Option<&str>, Option<&str>) =
        (None, None, None);
    tracing::info!(target: "serve2::conn", %local, client, %chain, %fallback, sni, host, %target, up = 21u64, down = 17u64, ms = 0.251f64, %end, "connection");
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/log_cost.log".to_owned());
    let count: usize = args.next().map_or(Ok(200_000), |n| n.parse())?;
    let silent = std::env::var_os("SILENT").is_some();
    let _guard =
        if silent { None } else { Some(serve2::logging::init(&LogTarget::File(path.into()), LogFormat::Text)?) };
    let local: SocketAddr = "127.0.0.1:2222".parse()?;
    for round in 0..3 {
        let (cpu, wall) = (process_cpu_micros(), Instant::now());
        for i in 0..count {
            let peer = SocketAddr::from(([127, 0, 0, 1], 10_000 + (i % 50_000) as u16));
            one_connection(peer, local, 4);
        }
        let per = (process_cpu_micros() - cpu) / count as f64;
        println!(
            "round {round}: {per:.2} µs CPU per connection ({:.2} µs wall)",
            wall.elapsed().as_secs_f64() * 1e6 / count as f64
        );
    }
    Ok(())
}
