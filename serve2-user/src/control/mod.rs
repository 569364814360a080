//! The control socket: `serve2d status` asks a running daemon what it
//! listens on and steers (`ss -ltn` no longer tells the truth), and
//! `serve2d reload` asks it to re-read its configuration.
//!
//! Protocol: connect to the Unix socket (mode 0660), write one request line
//! (`status` or `reload`); the daemon answers with one JSON document
//! ([`Status`], or a [`ReloadAnswer`]) and closes.

mod status;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

pub use status::{Connections, KernelRouteStatus, PolicyStatus, Status, SteeringStatus};

/// Produces a fresh [`Status`] on demand.
pub type StatusSource = Arc<dyn Fn() -> Status + Send + Sync>;

/// How long one control request may take, on either end.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A reload asked for over the control socket (or by SIGHUP), with where
/// the answer goes.
#[derive(Debug)]
pub struct ReloadRequest {
    /// Who asked, for the log: `pid 123 uid 0`, or `SIGHUP`.
    pub requester: String,
    /// The outcome: what changed, or why nothing did.
    pub answer: oneshot::Sender<ReloadAnswer>,
}

/// The outcome of a reload, as sent back to `serve2d reload`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadAnswer {
    /// Whether the new configuration is in force.
    pub ok: bool,
    /// What changed, or why nothing did.
    pub message: String,
}

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

/// Answers requests until the task is dropped; removes the socket file when
/// done. Reload requests go to `reloads` (none: reload is refused).
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    status: StatusSource,
    reloads: Option<mpsc::Sender<ReloadRequest>>,
) {
    let _cleanup = RemoveOnDrop(path);
    let mut backoff = crate::accept::Backoff::new("control socket");
    loop {
        let stream = match listener.accept().await {
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
        let (status, reloads) = (status.clone(), reloads.clone());
        // A peer that never writes or never reads must not hold the task.
        tokio::spawn(tokio::time::timeout(REQUEST_TIMEOUT * 6, answer(stream, status, reloads)));
    }
}

async fn answer(stream: UnixStream, status: StatusSource, reloads: Option<mpsc::Sender<ReloadRequest>>) {
    let credentials = stream.peer_cred().ok();
    let mut stream = BufReader::new(stream);
    let mut request = String::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, (&mut stream).take(64).read_line(&mut request)).await;
    let json = match (read, request.trim()) {
        (Ok(Ok(_)), "status") => serde_json::to_vec(&status()),
        (Ok(Ok(_)), "reload") => serde_json::to_vec(&reload(credentials, reloads).await),
        (Ok(Ok(_)), other) => {
            let message = format!("unknown request `{}`; expected status or reload", other.escape_debug());
            serde_json::to_vec(&ReloadAnswer { ok: false, message })
        }
        _ => return,
    };
    if let Ok(json) = json {
        let stream = stream.get_mut();
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let _ = stream.write_all(&json).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }
}

/// Passes a reload on, if the peer may ask for one: root, or the daemon's
/// own user.
async fn reload(
    credentials: Option<tokio::net::unix::UCred>,
    reloads: Option<mpsc::Sender<ReloadRequest>>,
) -> ReloadAnswer {
    let refuse = |message: String| ReloadAnswer { ok: false, message };
    let Some(credentials) = credentials else { return refuse("the peer's credentials are unknown".into()) };
    // SAFETY: geteuid has no preconditions.
    let own = unsafe { libc::geteuid() };
    let uid = credentials.uid();
    let pid = credentials.pid().map_or_else(|| "?".to_owned(), |p| p.to_string());
    if uid != 0 && uid != own {
        tracing::warn!(pid, uid, "reload refused: only root or the daemon's own user may reload");
        return refuse(format!("uid {uid} may not reload this daemon (only root or uid {own})"));
    }
    let Some(reloads) = reloads else { return refuse("this daemon does not reload".into()) };
    let (answer, answered) = oneshot::channel();
    let request = ReloadRequest { requester: format!("pid {pid} uid {uid}"), answer };
    if reloads.send(request).await.is_err() {
        return refuse("the daemon is shutting down".into());
    }
    answered.await.unwrap_or_else(|_| refuse("the reload was abandoned".into()))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Asks the daemon behind `path` for its status.
pub async fn query(path: &Path) -> io::Result<Status> {
    let json = request(path, "status", REQUEST_TIMEOUT).await?;
    serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Asks the daemon behind `path` to reload its configuration file.
pub async fn request_reload(path: &Path) -> io::Result<ReloadAnswer> {
    // Loading certificates and filling maps can take a moment.
    let json = request(path, "reload", REQUEST_TIMEOUT * 6).await?;
    serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn request(path: &Path, what: &str, limit: std::time::Duration) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e} (is serve2d running?)", path.display())))?;
        stream.write_all(format!("{what}\n").as_bytes()).await?;
        let mut json = Vec::new();
        stream.read_to_end(&mut json).await?;
        Ok(json)
    };
    tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| {
        let message = format!("{}: no answer within {limit:?} (is serve2d stopped or hung?)", path.display());
        Err(io::Error::new(io::ErrorKind::TimedOut, message))
    })
}
