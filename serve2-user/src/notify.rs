//! Telling systemd (`Type=notify`) what the daemon is doing. No-ops until
//! the systemd integration lands.

/// The daemon serves (every worker accepts).
pub fn ready() {}

/// A reload starts.
pub fn reloading() {}

/// Shutdown starts.
pub fn stopping() {}
