//! The systems under test, each described once: its name, what runs in front
//! of the origins and with which configuration, whether it logs every
//! connection, and what is measured on it. Adding a system is a variant
//! here and a configuration function in `configs`.

use crate::configs::{self, Setup};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Direct,
    Serve2,
    Serve2Logging,
    Serve2SteeredOne,
    Serve2SteeredAll,
    Serve2Catalogue,
    Serve2KernelDirect,
    Haproxy,
    HaproxyLogging,
    SslhFork,
    SslhSelect,
}

/// What a system runs in front of the origins.
#[derive(Debug, Clone, Copy)]
pub enum Proxy {
    /// Nothing: the load goes straight to the origins.
    None,
    /// serve2d, with the configuration this function makes.
    Serve2(fn(&Setup) -> serde_json::Value),
    /// HAProxy in TCP mode (`configs::haproxy`).
    Haproxy,
    /// sslh, this variant of it (`configs::sslh`).
    Sslh { program: &'static str },
}

/// Whether a system writes a line per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logging {
    /// Start-up lines only (serve2d at `warn`, HAProxy without `log`,
    /// sslh with `log_level: 0`); `--log-connections` turns serve2d's on.
    Silent,
    /// As deployed: every connection logged to a file in the work folder.
    File,
}

/// Which metrics a system is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    /// Bulk, connection rate, latency, HTTP and idle cost.
    All,
    /// Connection rate and latency only (a port whose route is fixed).
    Connections,
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub proxy: Proxy,
    pub logging: Logging,
    pub metrics: Metrics,
    /// Whether the untimed strace phase counts its syscalls per connection.
    pub syscalls: bool,
}

const fn spec(name: &'static str, proxy: Proxy, logging: Logging) -> Spec {
    Spec { name, proxy, logging, metrics: Metrics::All, syscalls: false }
}

impl System {
    pub const ALL: [System; 11] = [
        System::Direct,
        System::Serve2,
        System::Serve2Logging,
        System::Serve2SteeredOne,
        System::Serve2SteeredAll,
        System::Serve2Catalogue,
        System::Serve2KernelDirect,
        System::Haproxy,
        System::HaproxyLogging,
        System::SslhFork,
        System::SslhSelect,
    ];

    pub fn spec(self) -> Spec {
        use Logging::{File, Silent};
        match self {
            System::Direct => spec("direct", Proxy::None, Silent),
            System::Serve2 => spec("serve2", Proxy::Serve2(configs::serve2::plain), Silent),
            System::Serve2Logging => {
                Spec { syscalls: true, ..spec("serve2-logging", Proxy::Serve2(configs::serve2::plain), File) }
            }
            System::Serve2SteeredOne => spec("serve2-steered-1", Proxy::Serve2(configs::serve2::steered_one), Silent),
            System::Serve2SteeredAll => spec("serve2-steered-all", Proxy::Serve2(configs::serve2::steered_all), Silent),
            System::Serve2Catalogue => spec("serve2-catalogue", Proxy::Serve2(configs::serve2::catalogue), Silent),
            System::Serve2KernelDirect => Spec {
                metrics: Metrics::Connections,
                ..spec("serve2-kernel-direct", Proxy::Serve2(configs::serve2::kernel_direct), Silent)
            },
            System::Haproxy => spec("haproxy", Proxy::Haproxy, Silent),
            System::HaproxyLogging => Spec { syscalls: true, ..spec("haproxy-logging", Proxy::Haproxy, File) },
            System::SslhFork => spec("sslh-fork", Proxy::Sslh { program: "sslh" }, Silent),
            System::SslhSelect => spec("sslh-select", Proxy::Sslh { program: "sslh-select" }, Silent),
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn parse(name: &str) -> Option<Self> {
        System::ALL.into_iter().find(|system| system.name() == name.trim())
    }

    /// Whether this system logs every connection in this run.
    pub fn logs(self, log_connections: bool) -> bool {
        let spec = self.spec();
        spec.logging == Logging::File || (log_connections && matches!(spec.proxy, Proxy::Serve2(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for system in System::ALL {
            assert_eq!(System::parse(system.name()), Some(system));
            assert_eq!(System::ALL.iter().filter(|other| other.name() == system.name()).count(), 1);
        }
        assert_eq!(System::parse("nginx"), None);
    }

    #[test]
    fn the_logging_rows_log_and_the_silent_ones_only_when_asked() {
        assert!(System::Serve2Logging.logs(false) && System::HaproxyLogging.logs(false));
        assert!(!System::Serve2.logs(false) && System::Serve2.logs(true));
        // --log-connections is serve2d's: the peers keep their own settings.
        assert!(!System::Haproxy.logs(true) && !System::SslhFork.logs(true));
    }
}
