//! The configurations of the systems under test. Each routes the same three
//! kinds of traffic the same way: an SSH banner to the banner origin, HTTP to
//! the HTTP origin, anything else (iperf3's cookie) to iperf3; the UDP
//! systems send every flow to the UDP echo origin. A system logs
//! per connection only when its row says so (`Setup::log_file`), so no
//! system pays for logging the row it is compared with skips.

pub mod nginx;
pub mod peers;
pub mod serve2;

use std::path::PathBuf;

/// Where each kind of traffic goes.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub banner: u16,
    pub http: u16,
    pub iperf: u16,
    /// The UDP echo origin (0 when the run measures no UDP system).
    pub udp: u16,
}

/// What one system's configuration is made from.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The port the load is sent to.
    pub port: u16,
    pub to: Backends,
    /// Where the per-connection log lines go; `None` for a silent system.
    pub log_file: Option<PathBuf>,
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub const TO: Backends = Backends { banner: 1001, http: 1002, iperf: 1003, udp: 1004 };

    pub fn setup(log_file: Option<&str>) -> Setup {
        Setup { port: 9000, to: TO, log_file: log_file.map(PathBuf::from) }
    }
}
