//! Driving both directions of one connection from one future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::{Failure, Pump, RelayEnd, RelayReport, Side};
use crate::conn::Stream;

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
}

impl<S, P: Default> Drive<S, P> {
    pub fn new(client: S, backend: S) -> Self {
        let state = State { client, backend, up: P::default(), down: P::default(), up_done: false, down_done: false };
        Drive { state: Some(state) }
    }
}

impl<S, P: Pump<S>> State<S, P> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        if !self.up_done {
            match self.up.poll_pump(cx, &mut self.client, Side::Client, &mut self.backend) {
                Poll::Ready(Ok(())) => self.up_done = true,
                Poll::Ready(Err(failure)) => return Poll::Ready(Err(failure)),
                Poll::Pending => {}
            }
        }
        if !self.down_done {
            match self.down.poll_pump(cx, &mut self.backend, Side::Backend, &mut self.client) {
                Poll::Ready(Ok(())) => self.down_done = true,
                Poll::Ready(Err(failure)) => return Poll::Ready(Err(failure)),
                Poll::Pending => {}
            }
        }
        if self.up_done && self.down_done { Poll::Ready(Ok(())) } else { Poll::Pending }
    }
}

impl<S: ResetOnClose + Unpin, P: Pump<S> + Unpin> Future for Drive<S, P> {
    type Output = RelayReport;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayReport> {
        let this = self.get_mut();
        let Some(state) = this.state.as_mut() else { return Poll::Pending };
        let result = ready!(state.poll(cx));
        let Some(State { client, backend, up, down, .. }) = this.state.take() else { return Poll::Pending };
        let end = match result {
            Ok(()) => RelayEnd::Closed,
            Err(Failure { side: Side::Client, error }) => RelayEnd::ClientReset(error),
            Err(Failure { side: Side::Backend, error }) => RelayEnd::BackendReset(error),
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
        RelayEnd::Closed => {}
    }
    report
}
