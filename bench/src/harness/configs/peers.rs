//! The peers' configurations: HAProxy and sslh, routing like serve2d does.

use super::Setup;

/// HAProxy in TCP mode, routing on the first bytes like serve2 does.
/// `maxconn` must fit the descriptor limit (two per connection), or HAProxy
/// refuses to start. With a log file, every connection is logged with
/// `option tcplog` to stdout (`log stdout format raw`), which the launcher
/// sends to that file: HAProxy writes each line itself when the connection
/// ends, as serve2d does, and no syslog daemon's work lands outside both.
pub fn haproxy(setup: &Setup, maxconn: u64) -> String {
    let Setup { port, to, .. } = setup;
    let (global_log, defaults_log) = match setup.log_file {
        Some(_) => ("    log stdout format raw local0\n", "    log global\n    option tcplog\n"),
        None => ("", ""),
    };
    format!(
        "\
global
    maxconn {maxconn}
    nbthread 2
{global_log}
defaults
    mode tcp
{defaults_log}    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend mux
    bind 127.0.0.1:{port}
    maxconn {maxconn}
    # Wait (up to 5 s, like serve2's detectTimeout) until the first bytes decide.
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.payload(0,4) -m bin 5353482d }}
    tcp-request content accept if HTTP
    tcp-request content accept if {{ req.len gt 0 }}
    use_backend banner if {{ req.payload(0,4) -m bin 5353482d }}
    use_backend http if HTTP
    default_backend iperf

backend banner
    server banner 127.0.0.1:{banner}

backend http
    server http 127.0.0.1:{http}

backend iperf
    server iperf 127.0.0.1:{iperf}
",
        banner = to.banner,
        http = to.http,
        iperf = to.iperf,
    )
}

/// sslh's configuration file (libconfig), the same for sslh-fork and
/// sslh-select. A file rather than flags: only it can turn off the
/// per-connection log line (`log_level: 0`).
pub fn sslh(setup: &Setup) -> String {
    let Setup { port, to, .. } = setup;
    format!(
        "\
foreground: true;
inetd: false;
numeric: true;
transparent: false;
timeout: 5;
listen: ( {{ host: \"127.0.0.1\"; port: \"{port}\"; }} );
protocols: (
    {{ name: \"ssh\"; host: \"127.0.0.1\"; port: \"{banner}\"; log_level: 0; }},
    {{ name: \"http\"; host: \"127.0.0.1\"; port: \"{http}\"; log_level: 0; }},
    {{ name: \"anyprot\"; host: \"127.0.0.1\"; port: \"{iperf}\"; log_level: 0; }}
);
",
        banner = to.banner,
        http = to.http,
        iperf = to.iperf,
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::setup;
    use super::*;

    #[test]
    fn peers_route_to_the_same_backends() {
        let haproxy = haproxy(&setup(None), 9950);
        assert!(haproxy.contains("bind 127.0.0.1:9000") && haproxy.contains("server iperf 127.0.0.1:1003"));
        let sslh = sslh(&setup(None));
        assert!(
            sslh.contains("port: \"9000\"") && sslh.contains("name: \"anyprot\"; host: \"127.0.0.1\"; port: \"1003\"")
        );
    }

    #[test]
    fn haproxy_logs_every_connection_only_in_its_logging_row() {
        let silent = haproxy(&setup(None), 9950);
        assert!(!silent.contains("log"), "{silent}");
        let logging = haproxy(&setup(Some("/tmp/haproxy.log")), 9950);
        let global = logging.split("defaults").next().unwrap();
        assert!(global.contains("    log stdout format raw local0\n"), "{logging}");
        let defaults = logging.split("defaults").nth(1).unwrap().split("frontend").next().unwrap();
        assert!(defaults.contains("    log global\n    option tcplog\n"), "{logging}");
    }
}
