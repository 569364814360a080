//! Accept errors, shared by every accept loop (connections and the control
//! socket): per-connection errors are skipped, running out of descriptors
//! or memory backs off instead of spinning.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
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

/// Lets the tasks already queued on this thread (the connection just
/// accepted among them) run before the accept loop goes on: by then more
/// clients have often queued, so fewer accepts end in EAGAIN. Unlike
/// `tokio::task::yield_now`, which waits for the next I/O driver poll, this
/// re-queues the task at once.
pub(crate) fn queued_tasks_first() -> impl Future<Output = ()> {
    QueuedTasksFirst { yielded: false }
}

struct QueuedTasksFirst {
    yielded: bool,
}

impl Future for QueuedTasksFirst {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::queued_tasks_first;

    #[tokio::test(flavor = "current_thread")]
    async fn a_task_spawned_before_it_runs_before_the_loop_goes_on() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let task = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        assert!(!ran.load(Ordering::SeqCst), "a current-thread runtime runs the task only when this one yields");
        queued_tasks_first().await;
        assert!(ran.load(Ordering::SeqCst));
        task.await.unwrap();
    }
}
