//! Service manager notifications (`sd_notify`): what `Type=notify` in
//! `dist/serve2d.service` waits for.
//!
//! Each function is a no-op unless the service manager set `NOTIFY_SOCKET`
//! (systemd does for `Type=notify` units), and a failure to notify is logged,
//! never fatal: serving matters more than telling.
//!
//! The daemon calls [`ready`] once every listener accepts (and steering is
//! attached), and [`stopping`] when shutdown begins. A reload calls
//! [`reloading`] before it starts replacing the configuration and [`ready`]
//! when the new one serves (or the old one was kept): systemd keeps the unit
//! in "reloading" between the two.

use sd_notify::NotifyState;

/// Tells the service manager the daemon serves (`READY=1`): at start-up, and
/// again at the end of each reload.
pub fn ready() {
    send("READY=1", &[NotifyState::Ready]);
}

/// Tells the service manager a reload began (`RELOADING=1`, with the
/// `MONOTONIC_USEC` timestamp systemd 253 and later require). Follow it
/// with [`ready`] when the reload is over, whether it succeeded or not.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING=1", &[NotifyState::Reloading, now]),
        Err(_) => send("RELOADING=1", &[NotifyState::Reloading]),
    }
}

/// Tells the service manager the daemon is shutting down (`STOPPING=1`).
pub fn stopping() {
    send("STOPPING=1", &[NotifyState::Stopping]);
}

fn send(what: &str, states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager ({what})");
    }
}
