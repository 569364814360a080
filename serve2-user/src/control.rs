//! The control socket: `serve2d status` asks a running daemon what it
//! listens on and steers, since `ss -ltn` no longer tells the truth.
//!
//! Protocol: connect to the Unix socket; the daemon writes one JSON
//! [`Status`] and closes.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A running daemon's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The daemon's process id.
    pub pid: u32,
    /// Its configuration file.
    pub config: String,
    /// Its listening sockets.
    pub listeners: Vec<String>,
    /// Connections accepted since start, and open now.
    pub connections: Connections,
    /// Kernel steering, when configured.
    pub steering: Option<SteeringStatus>,
    /// Protocol sets: per-port policies, then the top level.
    pub policies: Vec<PolicyStatus>,
}

/// Connection counts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connections {
    /// Accepted since start.
    pub accepted: u64,
    /// Open now.
    pub open: u64,
}

/// What the kernel program does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SteeringStatus {
    /// Steered ports, as ranges (`22,80,8000-8100`).
    pub ports: String,
    /// How many ports are steered.
    pub steered: usize,
    /// Ports a range named but another socket listened on at start.
    pub skipped: String,
    /// Ports left unsteered because a local target listens there.
    #[serde(default)]
    pub local_targets: String,
    /// Ports excluded by configuration.
    pub excluded: String,
    /// Local prefixes steering is limited to (empty: all).
    pub scope: Vec<String>,
    /// The program's counters.
    pub counters: BTreeMap<String, u64>,
}

/// One protocol set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyStatus {
    /// Its name (`top level` for the top-level protocols).
    pub name: String,
    /// Its ports (`every other port` for the top level).
    pub ports: String,
    /// Its protocols, in detection order.
    pub protocols: Vec<String>,
    /// Its fallback.
    pub fallback: Option<String>,
}

/// Produces a fresh [`Status`] on demand.
pub type StatusSource = Arc<dyn Fn() -> Status + Send + Sync>;

/// Binds the control socket at `path`. A socket file left by a daemon that
/// died is replaced; one a live daemon answers on is an error.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running serve2d", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    // Status is for the operator, not every local user.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    Ok(listener)
}

/// Answers status requests until the task is dropped; removes the socket
/// file when done.
pub async fn serve(listener: UnixListener, path: PathBuf, status: StatusSource) {
    let _cleanup = RemoveOnDrop(path);
    let mut backoff = crate::accept::Backoff::new("control socket");
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if crate::accept::is_per_connection(&e) => continue,
            // Out of descriptors: retry later instead of spinning on the
            // thread that also handles signals.
            Err(e) => {
                backoff.wait(&e).await;
                continue;
            }
        };
        backoff.reset();
        let status = status();
        tokio::spawn(async move {
            if let Ok(json) = serde_json::to_vec(&status) {
                // A peer that never reads must not hold the task forever.
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let _ = stream.write_all(&json).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            }
        });
    }
}

/// How long one control request may take, on either end.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Asks the daemon behind `path` for its status.
pub async fn query(path: &Path) -> io::Result<Status> {
    tokio::time::timeout(REQUEST_TIMEOUT, query_unbounded(path)).await.unwrap_or_else(|_| {
        let message = format!("{}: no answer within {REQUEST_TIMEOUT:?} (is serve2d stopped or hung?)", path.display());
        Err(io::Error::new(io::ErrorKind::TimedOut, message))
    })
}

async fn query_unbounded(path: &Path) -> io::Result<Status> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e} (is serve2d running?)", path.display())))?;
    let mut json = Vec::new();
    stream.read_to_end(&mut json).await?;
    serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "serve2d pid {}, config {}", self.pid, self.config)?;
        writeln!(f, "listeners: {}", self.listeners.join(", "))?;
        writeln!(f, "connections: {} open, {} accepted", self.connections.open, self.connections.accepted)?;
        match &self.steering {
            None => writeln!(f, "steering: off")?,
            Some(steering) => {
                writeln!(f, "steering: {} ports: {}", steering.steered, steering.ports)?;
                writeln!(f, "  skipped (another socket listened at start): {}", steering.skipped)?;
                if !steering.local_targets.is_empty() && steering.local_targets != "-" {
                    writeln!(f, "  not steered (local targets): {}", steering.local_targets)?;
                }
                writeln!(f, "  excluded: {}", steering.excluded)?;
                let scope =
                    if steering.scope.is_empty() { "every local address".into() } else { steering.scope.join(", ") };
                writeln!(f, "  scope: {scope}")?;
                let counters: Vec<String> = steering.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
                writeln!(f, "  kernel counters: {}", counters.join(", "))?;
            }
        }
        writeln!(f, "policies:")?;
        for policy in &self.policies {
            let fallback = policy.fallback.as_deref().map(|p| format!(" (fallback: {p})")).unwrap_or_default();
            writeln!(f, "  {}: {} -> {}{fallback}", policy.name, policy.ports, policy.protocols.join(", "))?;
        }
        Ok(())
    }
}
