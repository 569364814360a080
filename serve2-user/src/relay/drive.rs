//! Driving both directions of one connection from one future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::watch::{ProgressTimer, RelayLimits, ResetWatch};
use super::{Failure, Pump, RelayEnd, RelayReport, Side};
use crate::conn::{IoStream, Stream};

/// Both directions of one connection, pumped until both are done or one
/// side fails; then both streams are closed (the survivor of a failure
/// reset).
pub(super) struct Drive<S, P> {
    state: Option<State<S, P>>,
}

struct State<S, P> {
    client: S,
    backend: S,
    up: P,
    down: P,
    up_done: bool,
    down_done: bool,
    limits: RelayLimits,
    /// Only while a direction is back-pressured (see `watch.rs`).
    watches: Option<Box<Watches>>,
    /// Only with `idleTimeout`.
    idle: Option<Box<ProgressTimer>>,
}

/// The source of each back-pressured direction, and the stall deadline.
#[derive(Default)]
struct Watches {
    client: Option<ResetWatch>,
    backend: Option<ResetWatch>,
    stall: Option<ProgressTimer>,
}

/// Why a relay ended other than by its streams.
enum Ended {
    Failed(Failure),
    Stalled,
    Idle,
}

impl<S, P: Default> Drive<S, P> {
    pub fn new(client: S, backend: S, limits: RelayLimits) -> Self {
        let idle = limits.idle.map(|limit| Box::new(ProgressTimer::new(limit, 0)));
        let state = State {
            client,
            backend,
            up: P::default(),
            down: P::default(),
            up_done: false,
            down_done: false,
            limits,
            watches: None,
            idle,
        };
        Drive { state: Some(state) }
    }
}

impl<S: IoStream, P: Pump<S>> State<S, P> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        match self.poll_pumps(cx) {
            Poll::Ready(result) => return Poll::Ready(result.map_err(Ended::Failed)),
            Poll::Pending => {}
        }
        let progress = self.up.bytes() + self.down.bytes();
        if let Some(idle) = &mut self.idle
            && idle.poll_expired(cx, progress).is_ready()
        {
            return Poll::Ready(Err(Ended::Idle));
        }
        self.poll_watches(cx, progress)
    }

    /// Watches the sources of back-pressured directions for resets, and
    /// times the stall; drops both once the back-pressure is gone.
    fn poll_watches(&mut self, cx: &mut Context<'_>, progress: u64) -> Poll<Result<(), Ended>> {
        let up = !self.up_done && self.up.backpressured();
        let down = !self.down_done && self.down.backpressured();
        if !up && !down {
            self.watches = None;
            return Poll::Pending;
        }
        let watches = self.watches.get_or_insert_with(Box::default);
        for (pressed, source, watch, side) in [
            (up, &self.client, &mut watches.client, Side::Client),
            (down, &self.backend, &mut watches.backend, Side::Backend),
        ] {
            if !pressed {
                *watch = None;
                continue;
            }
            if watch.is_none() {
                *watch = source.tcp_socket().and_then(ResetWatch::new);
            }
            if let Some(Poll::Ready(error)) = watch.as_ref().map(|w| w.poll_reset(cx)) {
                return Poll::Ready(Err(Ended::Failed(Failure { side, error })));
            }
        }
        if let Some(limit) = self.limits.stall {
            let stall = watches.stall.get_or_insert_with(|| ProgressTimer::new(limit, progress));
            if stall.poll_expired(cx, progress).is_ready() {
                return Poll::Ready(Err(Ended::Stalled));
            }
        }
        Poll::Pending
    }

    fn poll_pumps(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        if !self.up_done {
            match self.up.poll_pump(cx, &mut self.client, Side::Client, &mut self.backend, self.down_done) {
                Poll::Ready(Ok(())) => self.up_done = true,
                Poll::Ready(Err(failure)) => return Poll::Ready(Err(failure)),
                Poll::Pending => {}
            }
        }
        if !self.down_done {
            match self.down.poll_pump(cx, &mut self.backend, Side::Backend, &mut self.client, self.up_done) {
                Poll::Ready(Ok(())) => self.down_done = true,
                Poll::Ready(Err(failure)) => return Poll::Ready(Err(failure)),
                Poll::Pending => {}
            }
        }
        if self.up_done && self.down_done { Poll::Ready(Ok(())) } else { Poll::Pending }
    }
}

impl<S: ResetOnClose + IoStream, P: Pump<S> + Unpin> Future for Drive<S, P> {
    type Output = RelayReport;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayReport> {
        let this = self.get_mut();
        let Some(state) = this.state.as_mut() else { return Poll::Pending };
        let result = ready!(state.poll(cx));
        let Some(State { client, backend, up, down, .. }) = this.state.take() else { return Poll::Pending };
        let end = match result {
            Ok(()) => RelayEnd::Closed,
            Err(Ended::Failed(Failure { side: Side::Client, error })) => RelayEnd::ClientReset(error),
            Err(Ended::Failed(Failure { side: Side::Backend, error })) => RelayEnd::BackendReset(error),
            Err(Ended::Stalled) => RelayEnd::Stalled,
            Err(Ended::Idle) => RelayEnd::Idle,
        };
        let report = RelayReport { client_to_backend: up.bytes(), backend_to_client: down.bytes(), end };
        Poll::Ready(finish(client, backend, report))
    }
}

/// A stream the relay can mark to reset its peer when closed.
pub(super) trait ResetOnClose {
    fn reset_on_close(&self);
}

impl ResetOnClose for Stream {
    fn reset_on_close(&self) {
        self.set_reset_on_close();
    }
}

impl ResetOnClose for tokio::net::TcpStream {
    fn reset_on_close(&self) {
        // Best effort: the socket may already be gone.
        let _ = socket2::SockRef::from(self).set_linger(Some(std::time::Duration::ZERO));
    }
}

/// Passes a reset on to the survivor; both streams close when dropped here.
pub(super) fn finish<S: ResetOnClose>(client: S, backend: S, report: RelayReport) -> RelayReport {
    match report.end {
        RelayEnd::ClientReset(_) => backend.reset_on_close(),
        RelayEnd::BackendReset(_) => client.reset_on_close(),
        RelayEnd::Stalled => {
            client.reset_on_close();
            backend.reset_on_close();
        }
        RelayEnd::Closed | RelayEnd::Idle => {}
    }
    report
}
