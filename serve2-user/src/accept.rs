//! Accept errors, shared by every accept loop (connections and the control
//! socket): per-connection errors are skipped, running out of descriptors
//! or memory backs off instead of spinning.

use std::io;
use std::time::Duration;

const MIN: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1);

/// Errors that concern only the connection being accepted.
pub(crate) fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED | libc::ECONNRESET | libc::EPERM | libc::EPROTO | libc::EHOSTUNREACH | libc::ENETUNREACH
        )
    )
}

/// The delay before an accept loop retries after a resource error:
/// doubling from 5 ms to 1 s, back to 5 ms after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    delay: Duration,
    what: &'static str,
}

impl Backoff {
    /// A back-off for the accept loop of `what` (for logs).
    pub fn new(what: &'static str) -> Self {
        Self { delay: MIN, what }
    }

    /// An accept succeeded.
    pub fn reset(&mut self) {
        self.delay = MIN;
    }

    /// Waits before the next attempt after `error` (logged at the first
    /// and the longest delay only, so exhaustion does not flood the log).
    /// The pending connection stays queued meanwhile.
    pub async fn wait(&mut self, error: &io::Error) {
        if self.delay == MIN || self.delay == MAX {
            tracing::warn!(error = %error, retry_in = ?self.delay, "{}: accept failed; backing off", self.what);
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(MAX);
    }
}
