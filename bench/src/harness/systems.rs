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
    Serve2Udp,
    Serve2UdpDetect,
    NginxUdp,
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
    /// nginx's stream module proxying UDP (`configs::peers::nginx_udp`).
    NginxUdp,
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
    /// The UDP metrics only (`measure_udp`): datagrams/s, bytes/s, new
    /// flows/s, memory per idle flow. `direct` has both kinds.
    Udp,
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

const fn udp(name: &'static str, proxy: Proxy) -> Spec {
    Spec { metrics: Metrics::Udp, ..spec(name, proxy, Logging::File) }
}

impl System {
    pub const ALL: [System; 14] = [
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
        System::Serve2Udp,
        System::Serve2UdpDetect,
        System::NginxUdp,
    ];

    /// What `--only udp` stands for.
    pub const UDP: [System; 3] = [System::Serve2Udp, System::Serve2UdpDetect, System::NginxUdp];

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
            // The UDP rows log every flow as deployed.
            System::Serve2Udp => udp("serve2-udp", Proxy::Serve2(configs::serve2::udp_forward)),
            System::Serve2UdpDetect => udp("serve2-udp-detect", Proxy::Serve2(configs::serve2::udp_detect)),
            System::NginxUdp => udp("nginx-udp", Proxy::NginxUdp),
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn parse(name: &str) -> Option<Self> {
        System::ALL.into_iter().find(|system| system.name() == name.trim())
    }

    /// Whether this system is measured on the TCP metrics.
    pub fn has_tcp(self) -> bool {
        self.spec().metrics != Metrics::Udp
    }

    /// Whether this system is measured on the UDP metrics.
    pub fn has_udp(self) -> bool {
        matches!(self, System::Direct) || self.spec().metrics == Metrics::Udp
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
        assert!(System::UDP.iter().all(|system| System::ALL.contains(system)));
    }

    #[test]
    fn direct_is_the_base_of_both_kinds_and_the_udp_rows_have_no_tcp_metrics() {
        assert!(System::Direct.has_tcp() && System::Direct.has_udp());
        for system in System::UDP {
            assert!(system.has_udp() && !system.has_tcp(), "{}", system.name());
            assert!(system.logs(false), "{} logs as deployed", system.name());
        }
        assert!(!System::Serve2.has_udp() && System::Serve2.has_tcp());
    }

    #[test]
    fn the_logging_rows_log_and_the_silent_ones_only_when_asked() {
        assert!(System::Serve2Logging.logs(false) && System::HaproxyLogging.logs(false));
        assert!(!System::Serve2.logs(false) && System::Serve2.logs(true));
        // --log-connections is serve2d's: the peers keep their own settings.
        assert!(!System::Haproxy.logs(true) && !System::SslhFork.logs(true));
    }
}
