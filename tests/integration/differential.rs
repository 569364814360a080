//! serve2 against sslh: Debian's sslh 1.20 (`sslh-select`) and serve2 run
//! side by side over the same corpus of captured first flights, with
//! equivalent configurations and the same backends, and each flight's
//! verdict — which backend got the connection — is compared, for the whole
//! flight in one write and for one byte per write.
//!
//! The corpus is discovered at run time: every `tests/fixtures/<dir>/**.bin`
//! must be recognised as the kind its folder names (`tls` is `tlsroute`,
//! `http` is `httproute`, `negative` must reach the default), the older
//! captures at the top level are mapped by name, and a few synthetic flights
//! cover what no capture does (noise, zeros, short length-prefixed junk,
//! lower-case HTTP, a silent client).
//!
//! Each backend writes `NAME ID\n` as soon as it accepts: both multiplexers
//! relay it to the client, which so learns which backend it reached (and
//! that connection's id) without any guessing, then half-closes; the backend
//! hands over everything it read up to end-of-stream, which must be the
//! flight, byte for byte.
//!
//! The table lands in `target/differential.md` (the workspace's `target/`,
//! whatever `CARGO_TARGET_DIR` says).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::support::*;

const SSLH: &str = "/usr/sbin/sslh-select";

/// serve2's routed kinds, in the order both multiplexers try them.
const KINDS: [&str; 13] = [
    "tlsroute",
    "ssh",
    "httproute",
    "h2c",
    "openvpn",
    "socks5",
    "rdp",
    "xmpp",
    "postgres",
    "tinc",
    "syslog",
    "adb",
    "mqtt",
];
/// The backend for bytes nothing claims (serve2's default, sslh's `anyprot`).
const DEFAULT: &str = "default";
/// The backend for clients that stay silent (serve2's `onTimeout`, sslh's
/// `on-timeout`).
const TIMEOUT: &str = "timeout";

/// Both multiplexers' detection deadline, in seconds.
const DETECT_TIMEOUT: u64 = 2;
/// serve2's plaintext detection cap.
const MAX_READ: usize = 512;

/// Byte-by-byte mode: one byte per write, one write per `GAP`; a flight of
/// more than `MAX_STEPS` bytes writes `len / MAX_STEPS` (rounded up) single
/// bytes per step, so no flight takes much over half a second and a 2 KB
/// ClientHello still arrives well inside the detection deadline.
const GAP: Duration = Duration::from_millis(1);
const MAX_STEPS: usize = 500;

/// How long a client waits for a backend's greeting. sslh 1.20 checks its
/// timeout with `time(NULL)` once per `select` round, so a stalled
/// connection is routed 2 to 4 s after accept for `timeout: 2`.
const VERDICT_WAIT: Duration = Duration::from_secs(10);

/// Connections in flight at once through each multiplexer. sslh-select
/// listens with a backlog of 50 and accepts one connection per `select`
/// round: more at once and SYNs are dropped and retried a second later.
const SSLH_CONCURRENCY: usize = 32;
const SERVE2_CONCURRENCY: usize = 128;

/// The sslh 1.20 probe standing for each serve2 kind, or none: sslh has no
/// h2c, RDP, PostgreSQL, syslog or MQTT probe. (Its `regex` probe could
/// imitate some, but its documentation offers no pattern for them and a
/// regex there sees whatever happened to arrive, so they count as "sslh
/// has no probe".)
fn sslh_probe(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "tlsroute" => "tls",
        "ssh" => "ssh",
        "httproute" => "http",
        "openvpn" => "openvpn",
        "socks5" => "socks5",
        "xmpp" => "xmpp",
        "tinc" => "tinc",
        "adb" => "adb",
        _ => return None,
    })
}

/// One first flight and the backend it must reach.
#[derive(Debug)]
struct Flight {
    name: String,
    expected: &'static str,
    bytes: Vec<u8>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The backend a fixture folder's flights must reach.
fn expected_for_folder(folder: &str) -> &'static str {
    match folder {
        "tls" => "tlsroute",
        "http" => "httproute",
        "negative" => DEFAULT,
        _ => KINDS.iter().copied().find(|kind| *kind == folder).unwrap_or_else(|| {
            panic!("tests/fixtures/{folder}/: no kind of that name; map the folder in differential.rs")
        }),
    }
}

/// The backend a capture at the top level of tests/fixtures must reach (the
/// older captures, from before the per-kind folders).
fn expected_for_legacy(file: &str) -> &'static str {
    match file {
        "openssh-client-banner.bin" => "ssh",
        "curl-h2-prior-knowledge.bin" => "h2c",
        _ if file.contains("clienthello") => "tlsroute",
        _ => panic!("tests/fixtures/{file}: top-level capture of no known kind; move it into its kind's folder"),
    }
}

/// Every `.bin` under `dir`, sorted, as paths relative to `root`.
fn bin_files(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect::<Vec<_>>();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            bin_files(root, &path, found);
        } else if path.extension().is_some_and(|ext| ext == "bin") {
            found.push(path.strip_prefix(root).unwrap().to_owned());
        }
    }
}

/// The captured corpus, then the synthetic flights.
fn corpus() -> Vec<Flight> {
    let root = fixtures();
    let mut files = Vec::new();
    bin_files(&root, &root, &mut files);
    let mut flights: Vec<Flight> = files
        .into_iter()
        .map(|relative| {
            let mut parts = relative.iter().map(|part| part.to_str().unwrap());
            let first = parts.next().unwrap();
            let expected = if parts.next().is_some() { expected_for_folder(first) } else { expected_for_legacy(first) };
            let bytes = std::fs::read(root.join(&relative)).unwrap();
            Flight { name: relative.display().to_string(), expected, bytes }
        })
        .collect();
    assert!(flights.len() >= 10, "only {} captures under {}", flights.len(), root.display());
    let synthetic = [
        ("synthetic/random-256", DEFAULT, noise(0x5eed_f00d, 256)),
        ("synthetic/zeros-200", DEFAULT, vec![0; 200]),
        ("synthetic/length-prefixed-junk", DEFAULT, b"\x00\x05hello".to_vec()),
        ("synthetic/lowercase-get", DEFAULT, b"get / http/1.1\r\n\r\n".to_vec()),
        ("synthetic/silent", TIMEOUT, Vec::new()),
    ];
    flights.extend(synthetic.into_iter().map(|(name, expected, bytes)| Flight { name: name.into(), expected, bytes }));
    flights
}

/// `len` pseudo-random bytes from a fixed seed (xorshift64*).
fn noise(mut state: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// What each accepted connection's backend read, by connection id: put in
/// before the backend greets, so a client holding the id finds it.
type Received = Arc<Mutex<HashMap<u64, oneshot::Receiver<Vec<u8>>>>>;

/// One recording backend per kind, plus the default and the timeout ones.
struct Backends {
    addrs: HashMap<&'static str, String>,
    received: Received,
}

impl Backends {
    async fn start() -> Backends {
        let received: Received = Arc::default();
        let ids = Arc::new(AtomicU64::new(0));
        let mut addrs = HashMap::new();
        for name in KINDS.iter().copied().chain([DEFAULT, TIMEOUT]) {
            let (listener, addr) = backend().await;
            addrs.insert(name, addr);
            tokio::spawn(record(name, listener, ids.clone(), received.clone()));
        }
        Backends { addrs, received }
    }

    fn addr(&self, name: &str) -> &str {
        &self.addrs[name]
    }
}

/// Accepts forever: greets each connection with `NAME ID\n`, then keeps
/// everything it reads until end-of-stream for the client to check.
async fn record(name: &'static str, listener: TcpListener, ids: Arc<AtomicU64>, received: Received) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let (done, bytes) = oneshot::channel();
        received.lock().unwrap().insert(id, bytes);
        tokio::spawn(async move {
            let _ = stream.write_all(format!("{name} {id}\n").as_bytes()).await;
            let mut bytes = Vec::new();
            let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes)).await;
            let _ = done.send(bytes);
        });
    }
}

/// serve2's configuration: every kind in one list, the default, onTimeout.
fn serve2_config(backends: &Backends) -> String {
    let protocols: Vec<String> = KINDS
        .iter()
        .map(|kind| format!(r#"{{"kind": "{kind}", "conf": {{"target": {}}}}}"#, json(backends.addr(kind))))
        .chain([format!(
            r#"{{"kind": "proxy", "default": true, "conf": {{"target": {}}}}}"#,
            json(backends.addr(DEFAULT))
        )])
        .collect();
    format!(
        r#"{{"address": ":0", "maxRead": {MAX_READ}, "detectTimeout": {DETECT_TIMEOUT}, "onTimeout": {{"target": {}}}, "protocols": [{}]}}"#,
        json(backends.addr(TIMEOUT)),
        protocols.join(", ")
    )
}

/// sslh 1.20's configuration (libconfig), equivalent to [`serve2_config`]:
/// the probes sslh has, in serve2's order, then the timeout target, then
/// `anyprot` for the rest.
///
/// The timeout target is a `regex` entry whose pattern never matches,
/// named by `on-timeout`: sslh 1.20's `timeout` entry is no such thing, its
/// probe matches everything, so wherever it stands it swallows every flight
/// not claimed before it (and `anyprot` is only the fallback when last).
fn sslh_config(listen: u16, backends: &Backends) -> String {
    let port = |name: &str| backends.addr(name).rsplit_once(':').unwrap().1.to_owned();
    let entry = |probe: &str, name: &str, extra: &str| {
        format!(r#"    {{ name: "{probe}"; host: "127.0.0.1"; port: "{}"; log_level: 0;{extra} }}"#, port(name))
    };
    let mut protocols: Vec<String> =
        KINDS.iter().filter_map(|kind| sslh_probe(kind).map(|probe| entry(probe, kind, ""))).collect();
    protocols.push(entry("regex", TIMEOUT, r#" regex_patterns: [ "(?!)" ];"#));
    protocols.push(entry("anyprot", DEFAULT, ""));
    format!(
        "foreground: true;\ninetd: false;\nnumeric: true;\ntransparent: false;\ntimeout: {DETECT_TIMEOUT};\n\
         listen: ( {{ host: \"127.0.0.1\"; port: \"{listen}\"; }} );\n\
         protocols: (\n{}\n);\non-timeout: \"regex\";\n",
        protocols.join(",\n")
    )
}

/// sslh-select in the foreground on its own port, and what it logs.
struct Sslh {
    child: tokio::process::Child,
    addr: SocketAddr,
    lines: mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Sslh {
    /// Starts sslh and waits for its "started" line, which it logs (in the
    /// foreground, on standard error) right after its listening socket is
    /// bound and listening.
    ///
    /// sslh takes no `:0` and (built without systemd) no inherited socket,
    /// so the port is one the kernel just handed out and took back: this
    /// namespace is the test's own and nothing else binds in it meanwhile.
    async fn start(backends: &Backends) -> Sslh {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sslh.cfg");
        std::fs::write(&config, sslh_config(port, backends)).unwrap();
        let mut child = tokio::process::Command::new(SSLH)
            // sslh wants `-F` and the file as one argument.
            .arg(format!("-F{}", config.display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sslh-select");
        let (tx, lines) = mpsc::unbounded_channel();
        let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
        tokio::spawn(async move {
            let mut line = String::new();
            while tokio::io::AsyncBufReadExt::read_line(&mut stderr, &mut line).await.is_ok_and(|n| n > 0) {
                if tx.send(std::mem::take(&mut line).trim_end().to_owned()).is_err() {
                    break;
                }
            }
        });
        let mut sslh =
            Sslh { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), lines, log: Vec::new(), _dir: dir };
        let deadline = Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, sslh.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("sslh never said it started; log:\n{}", sslh.log.join("\n")))
                .unwrap_or_else(|| panic!("sslh exited; log:\n{}", sslh.log.join("\n")));
            sslh.log.push(line.clone());
            if line.contains(" started") {
                return sslh;
            }
        }
    }

    /// Everything it logged, after checking it is still running, then stops it.
    async fn stop(mut self) -> Vec<String> {
        let status = self.child.try_wait().unwrap();
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        assert!(status.is_none(), "sslh exited during the run ({status:?}); log:\n{}", self.log.join("\n"));
        self.child.kill().await.unwrap();
        self.log
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mux {
    Sslh,
    Serve2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    /// The whole flight in one write.
    Whole,
    /// One byte per write (see [`GAP`]).
    Bytes,
}

/// What became of one flight through one multiplexer in one mode.
#[derive(Debug, Clone)]
struct Outcome {
    /// The backend that got the connection; `None`: none within the bound
    /// (`note` says what happened instead).
    backend: Option<&'static str>,
    /// Whether that backend read exactly the flight.
    replayed: bool,
    /// From connect to the backend's greeting.
    elapsed: Duration,
    note: String,
}

impl Outcome {
    fn right(&self, flight: &Flight) -> bool {
        self.backend == Some(flight.expected) && self.replayed
    }

    fn cell(&self, flight: &Flight) -> String {
        let mut cell = match self.backend {
            Some(backend) => format!("{backend} {}", if backend == flight.expected { "✓" } else { "✗" }),
            None => format!("none ✗ ({})", self.note),
        };
        if self.backend.is_some() && !self.replayed {
            cell.push_str(" bytes differ");
        }
        if self.elapsed >= Duration::from_millis(1500) {
            let _ = write!(cell, " {:.1} s", self.elapsed.as_secs_f64());
        }
        cell
    }
}

/// Writes `flight` as `mode` says; once `decided` is set (the verdict is in,
/// or will never come), the rest goes in one write.
async fn write_flight(wr: &mut OwnedWriteHalf, flight: &[u8], mode: Mode, decided: &AtomicBool) -> std::io::Result<()> {
    match mode {
        Mode::Whole => wr.write_all(flight).await,
        Mode::Bytes => {
            let per_step = flight.len().div_ceil(MAX_STEPS).max(1);
            let mut steps = tokio::time::interval(GAP);
            let mut sent = 0;
            while sent < flight.len() {
                if decided.load(Ordering::Relaxed) {
                    return wr.write_all(&flight[sent..]).await;
                }
                steps.tick().await;
                for byte in flight[sent..].iter().take(per_step) {
                    wr.write_all(std::slice::from_ref(byte)).await?;
                }
                sent = (sent + per_step).min(flight.len());
            }
            Ok(())
        }
    }
}

/// Reads a backend's `NAME ID\n` greeting, relayed by the multiplexer.
async fn read_greeting(rd: &mut OwnedReadHalf, deadline: Instant) -> Result<(&'static str, u64), String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut byte)).await {
            Err(_) => return Err(format!("no backend within {} s", VERDICT_WAIT.as_secs())),
            Ok(Ok(0)) => return Err("closed".into()),
            Ok(Err(e)) => return Err(format!("{:?}", e.kind())),
            Ok(Ok(_)) if byte[0] == b'\n' => break,
            Ok(Ok(_)) => line.push(byte[0]),
        }
    }
    let line = String::from_utf8(line).map_err(|_| "garbled greeting".to_owned())?;
    let (name, id) = line.split_once(' ').ok_or_else(|| format!("garbled greeting {line:?}"))?;
    let name = KINDS.iter().copied().chain([DEFAULT, TIMEOUT]).find(|known| *known == name);
    Ok((name.ok_or_else(|| format!("greeting from no backend: {line:?}"))?, id.parse().map_err(|_| line.clone())?))
}

/// Sends one flight through the multiplexer at `addr` and reports which
/// backend got it and whether it got exactly the flight.
async fn run_flight(addr: SocketAddr, flight: &[u8], mode: Mode, received: &Received) -> Outcome {
    let started = Instant::now();
    let fail = |note: String| Outcome { backend: None, replayed: false, elapsed: started.elapsed(), note };
    let stream = match tokio::time::timeout(WAIT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return fail(format!("connect: {e}")),
        Err(_) => return fail("connect timed out".into()),
    };
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let decided = AtomicBool::new(false);
    let (written, greeting) = tokio::join!(write_flight(&mut wr, flight, mode, &decided), async {
        let greeting = read_greeting(&mut rd, started + VERDICT_WAIT).await;
        decided.store(true, Ordering::Relaxed);
        (greeting, started.elapsed())
    });
    let (greeting, elapsed) = greeting;
    let (backend, id) = match greeting {
        Ok(greeting) => greeting,
        Err(note) => return Outcome { backend: None, replayed: false, elapsed, note },
    };
    let mut note = String::new();
    if let Err(e) = written {
        note = format!("write: {:?}", e.kind());
    }
    // End-of-stream tells the backend the flight is over.
    let _ = wr.shutdown().await;
    let bytes = received.lock().unwrap().remove(&id).expect("every greeting has its record");
    let replayed = match tokio::time::timeout(WAIT, bytes).await {
        Ok(Ok(bytes)) => bytes == flight,
        _ => false,
    };
    Outcome { backend: Some(backend), replayed, elapsed, note }
}

/// Every flight through both multiplexers in both modes, all at once
/// (bounded per multiplexer), so that the flights sslh stalls on overlap.
async fn run_all(
    flights: &Arc<Vec<Flight>>,
    sslh: SocketAddr,
    serve2: SocketAddr,
    received: &Received,
) -> HashMap<(usize, Mux, Mode), Outcome> {
    let limits = [
        (Mux::Sslh, sslh, Arc::new(Semaphore::new(SSLH_CONCURRENCY))),
        (Mux::Serve2, serve2, Arc::new(Semaphore::new(SERVE2_CONCURRENCY))),
    ];
    let mut jobs = tokio::task::JoinSet::new();
    for index in 0..flights.len() {
        for mode in [Mode::Whole, Mode::Bytes] {
            for (daemon, addr, limit) in &limits {
                let (daemon, addr, limit) = (*daemon, *addr, limit.clone());
                let (flights, received) = (flights.clone(), received.clone());
                jobs.spawn(async move {
                    let _permit = limit.acquire_owned().await.unwrap();
                    let outcome = run_flight(addr, &flights[index].bytes, mode, &received).await;
                    ((index, daemon, mode), outcome)
                });
            }
        }
    }
    let mut outcomes = HashMap::new();
    while let Some(done) = jobs.join_next().await {
        let (key, outcome) = done.unwrap();
        outcomes.insert(key, outcome);
    }
    outcomes
}

/// The markdown table and its totals.
fn report(flights: &[Flight], outcomes: &HashMap<(usize, Mux, Mode), Outcome>, elapsed: Duration) -> String {
    let outcome = |index: usize, daemon: Mux, mode: Mode| &outcomes[&(index, daemon, mode)];
    let mut table = String::from(
        "| flight | expected | sslh whole | sslh byte-by-byte | serve2 whole | serve2 byte-by-byte |\n|---|---|---|---|---|---|\n",
    );
    for (index, flight) in flights.iter().enumerate() {
        let no_probe = KINDS.contains(&flight.expected) && sslh_probe(flight.expected).is_none();
        let _ = writeln!(
            table,
            "| {} ({} B) | {}{} | {} | {} | {} | {} |",
            flight.name,
            flight.bytes.len(),
            flight.expected,
            if no_probe { " (sslh: no probe)" } else { "" },
            outcome(index, Mux::Sslh, Mode::Whole).cell(flight),
            outcome(index, Mux::Sslh, Mode::Bytes).cell(flight),
            outcome(index, Mux::Serve2, Mode::Whole).cell(flight),
            outcome(index, Mux::Serve2, Mode::Bytes).cell(flight),
        );
    }
    let n = flights.len();
    let right =
        |daemon: Mux, mode: Mode| (0..n).filter(|&index| outcome(index, daemon, mode).right(&flights[index])).count();
    let stalled = |daemon: Mux, mode: Mode| {
        (0..n).filter(|&index| outcome(index, daemon, mode).elapsed >= Duration::from_millis(1500)).count()
    };
    let no_probe = flights.iter().filter(|f| KINDS.contains(&f.expected) && sslh_probe(f.expected).is_none()).count();
    let _ = write!(
        table,
        "\nsslh routes {}/{n} right in one write, {}/{n} byte by byte; serve2 {}/{n}, {}/{n}.\n\
         {no_probe} of the {n} flights are of kinds sslh 1.20 has no probe for (h2c, rdp, postgres, syslog, mqtt).\n\
         Verdicts after 1.5 s or more (detection deadline {DETECT_TIMEOUT} s): sslh {}/{n} in one write, {}/{n} byte by byte; \
         serve2 {}/{n}, {}/{n}.\nWhole run: {:.1} s.\n",
        right(Mux::Sslh, Mode::Whole),
        right(Mux::Sslh, Mode::Bytes),
        right(Mux::Serve2, Mode::Whole),
        right(Mux::Serve2, Mode::Bytes),
        stalled(Mux::Sslh, Mode::Whole),
        stalled(Mux::Sslh, Mode::Bytes),
        stalled(Mux::Serve2, Mode::Whole),
        stalled(Mux::Serve2, Mode::Bytes),
        elapsed.as_secs_f64(),
    );
    table
}

#[test]
fn serve2_routes_every_flight_right_and_at_least_wherever_sslh_does() {
    in_netns(|| async {
        if !peers_available(&[SSLH]) {
            return;
        }
        let flights = Arc::new(corpus());
        let backends = Backends::start().await;
        let serve2 = Daemon::start(&serve2_config(&backends)).await;
        let sslh = Sslh::start(&backends).await;

        let started = Instant::now();
        let outcomes = run_all(&flights, sslh.addr, serve2.addr, &backends.received).await;
        let table = report(&flights, &outcomes, started.elapsed());
        let sslh_log = sslh.stop().await;
        serve2.stop().await;

        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/differential.md");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("# serve2 and sslh 1.20 over the first-flight corpus\n\n{table}")).unwrap();
        println!("{table}\n(written to {})", path.display());

        // The harness itself: sslh must get its own easy cases right, or its
        // configuration is broken and the comparison means nothing.
        let sslh_right = (0..flights.len())
            .filter(|&i| outcomes[&(i, Mux::Sslh, Mode::Whole)].right(&flights[i]))
            .map(|i| flights[i].expected)
            .collect::<Vec<_>>();
        for kind in ["ssh", "tlsroute", "httproute"] {
            assert!(
                sslh_right.contains(&kind),
                "sslh routes no {kind} flight right: is its configuration broken?\n{table}\nsslh log:\n{}",
                sslh_log.join("\n")
            );
        }

        let mut wrong = Vec::new();
        let mut behind_sslh = Vec::new();
        for (index, flight) in flights.iter().enumerate() {
            for mode in [Mode::Whole, Mode::Bytes] {
                let serve2 = &outcomes[&(index, Mux::Serve2, mode)];
                if serve2.right(flight) {
                    continue;
                }
                let line =
                    format!("{} ({mode:?}): expected {}, serve2 {}", flight.name, flight.expected, serve2.cell(flight));
                if outcomes[&(index, Mux::Sslh, mode)].right(flight) {
                    behind_sslh.push(line.clone());
                }
                wrong.push(line);
            }
        }
        assert!(
            wrong.is_empty(),
            "serve2 routes {} flight/mode pairs wrong, {} of them ones sslh routes right.\n\
             Where sslh is right and serve2 is not:\n  {}\nAll of serve2's wrong verdicts:\n  {}\n\n{table}",
            wrong.len(),
            behind_sslh.len(),
            behind_sslh.join("\n  "),
            wrong.join("\n  "),
        );
    });
}
