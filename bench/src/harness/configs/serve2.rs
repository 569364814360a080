//! serve2d's configurations, one function per system: how it receives the
//! load on the port, and what it does with it.

use serde_json::{Value, json};

use super::{Backends, Setup};

/// A plain listening socket on the port.
pub fn plain(setup: &Setup) -> Value {
    let mut config = base(setup, three_routes(setup.to));
    config["address"] = format!("127.0.0.1:{}", setup.port).into();
    config
}

/// Kernel steering of that one port to serve2d's own socket.
pub fn steered_one(setup: &Setup) -> Value {
    let mut config = base(setup, three_routes(setup.to));
    config["steer"] = json!({"ports": [setup.port]});
    config
}

/// Kernel steering of every port; the origins' ports are excluded (serve2d
/// refuses targets that would be steered back into itself).
pub fn steered_all(setup: &Setup) -> Value {
    let to = setup.to;
    let mut config = base(setup, three_routes(to));
    config["steer"] = json!({"ports": ["all"], "exclude": [to.banner, to.http, to.iperf]});
    config
}

/// A plain socket, with every routed kind of the catalogue tried before
/// the SSH and HTTP routes: what detection costs with all the kinds.
pub fn catalogue(setup: &Setup) -> Value {
    let mut config = base(setup, catalogue_routes(setup.to));
    config["address"] = format!("127.0.0.1:{}", setup.port).into();
    config
}

/// The steered port's policy forwards every connection to the banner origin
/// at accept, without detection: the path a kernel-direct route will take
/// (until serve2d has one, a plain forward). Measured against `direct`.
pub fn kernel_direct(setup: &Setup) -> Value {
    let mut config = base(setup, three_routes(setup.to));
    config["steer"] = json!({"ports": [setup.port]});
    config["policies"] = json!([{
        "name": "kernel-direct",
        "ports": [setup.port],
        "forward": {"target": format!("127.0.0.1:{}", setup.to.banner)},
    }]);
    config
}

/// UDP: a `udpAddress` socket whose block forwards every flow to the UDP
/// echo origin, no detection.
pub fn udp_forward(setup: &Setup) -> Value {
    udp_base(setup, json!({"forward": {"target": format!("127.0.0.1:{}", setup.to.udp)}}))
}

/// UDP: the same socket, with a block that detects each flow's first
/// datagram — `quic` judges it first and refuses, then `wireguard` takes it
/// (serve2-load's first datagram is shaped as a handshake initiation) to
/// the echo origin. QUIC's target is never used.
pub fn udp_detect(setup: &Setup) -> Value {
    let echo = format!("127.0.0.1:{}", setup.to.udp);
    udp_base(
        setup,
        json!({"protocols": [
            {"kind": "quic", "conf": {"target": "127.0.0.1:9"}},
            {"kind": "wireguard", "conf": {"target": echo}},
        ]}),
    )
}

/// A UDP-only serve2d (no TCP `protocols`), every other setting its default,
/// logging one line per flow to the log file as deployed.
fn udp_base(setup: &Setup, block: Value) -> Value {
    let mut config = json!({"control": "", "udpAddress": format!("127.0.0.1:{}", setup.port), "udp": block});
    match &setup.log_file {
        Some(path) => config["logFile"] = path.display().to_string().into(),
        None => config["logStdout"] = true.into(),
    }
    config
}

/// What every system shares: no control socket, the detection deadline,
/// and the log output — the per-connection lines to the log file as
/// deployed (default level and format), or stdout, filtered to start-up
/// lines by the launcher, for a silent run.
fn base(setup: &Setup, protocols: Value) -> Value {
    let mut config = json!({"control": "", "detectTimeout": 5, "protocols": protocols});
    match &setup.log_file {
        Some(path) => config["logFile"] = path.display().to_string().into(),
        None => config["logStdout"] = true.into(),
    }
    config
}

fn three_routes(to: Backends) -> Value {
    json!([
        {"kind": "proxy", "conf": {"magic": "SSH-", "target": format!("127.0.0.1:{}", to.banner)}},
        {"kind": "proxy", "conf": {"magic": ["GET ", "POST ", "HEAD "], "target": format!("127.0.0.1:{}", to.http)}},
        {"kind": "proxy", "default": true, "conf": {"target": format!("127.0.0.1:{}", to.iperf)}},
    ])
}

/// The same three routes with every routed kind of the catalogue in front
/// of the SSH route (the banner load is judged by all of them) and
/// `httproute` taking HTTP.
fn catalogue_routes(to: Backends) -> Value {
    let other = format!("127.0.0.1:{}", to.iperf);
    let mut protocols: Vec<Value> =
        ["tlsroute", "h2c", "openvpn", "socks5", "rdp", "xmpp", "postgres", "tinc", "syslog", "adb", "mqtt"]
            .iter()
            .map(|kind| json!({"kind": kind, "conf": {"target": other}}))
            .collect();
    protocols.push(json!({"kind": "regex", "conf": {"patterns": ["^NEVER-"], "target": other}}));
    protocols.push(json!({"kind": "httproute", "conf": {"target": format!("127.0.0.1:{}", to.http)}}));
    protocols.push(json!({"kind": "ssh", "conf": {"target": format!("127.0.0.1:{}", to.banner)}}));
    protocols.push(json!({"kind": "proxy", "default": true, "conf": {"target": other}}));
    Value::Array(protocols)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::setup;
    use super::*;

    /// serve2's own loader accepts the configuration.
    fn loads(config: &Value) {
        let text = config.to_string();
        if let Err(e) = serve2::Config::parse(std::path::Path::new("bench.json"), &text) {
            panic!("{e}\n{text}");
        }
    }

    #[test]
    fn serve2_listens_or_steers() {
        let plain = plain(&setup(None));
        assert_eq!(plain["address"], "127.0.0.1:9000");
        assert!(plain.get("steer").is_none());
        let all = steered_all(&setup(None));
        assert!(all.get("address").is_none());
        assert_eq!(all["steer"]["exclude"], json!([1001, 1002, 1003]));
        assert_eq!(all["protocols"][2]["conf"]["target"], "127.0.0.1:1003");
        for config in [plain, all, steered_one(&setup(None))] {
            loads(&config);
        }
    }

    #[test]
    fn a_logging_row_logs_to_its_file_with_default_settings() {
        let silent = plain(&setup(None));
        assert_eq!(silent["logStdout"], true);
        assert!(silent.get("logFile").is_none());
        let logging = plain(&setup(Some("/tmp/serve2-logging.log")));
        assert_eq!(logging["logFile"], "/tmp/serve2-logging.log");
        // As deployed: no level or format chosen for the benchmark.
        assert!(logging.get("logStdout").is_none() && logging.get("logFormat").is_none());
        loads(&logging);
    }

    #[test]
    fn the_catalogue_run_holds_every_routed_kind_and_loads() {
        let config = catalogue(&setup(None));
        let kinds: Vec<&str> =
            config["protocols"].as_array().unwrap().iter().filter_map(|p| p["kind"].as_str()).collect();
        for kind in serve2_detect::registry::KINDS {
            assert!(kinds.contains(&kind.name), "{} missing", kind.name);
        }
        loads(&config);
    }

    #[test]
    fn the_udp_rows_listen_on_udp_only_and_reach_the_echo_origin() {
        let forward = udp_forward(&setup(Some("/tmp/serve2-udp.log")));
        assert_eq!(forward["udpAddress"], "127.0.0.1:9000");
        assert!(forward.get("address").is_none() && forward.get("protocols").is_none());
        assert_eq!(forward["udp"]["forward"]["target"], "127.0.0.1:1004");
        assert_eq!(forward["logFile"], "/tmp/serve2-udp.log");
        let detect = udp_detect(&setup(Some("/tmp/serve2-udp-detect.log")));
        assert_eq!(detect["udp"]["protocols"][0]["kind"], "quic");
        assert_eq!(detect["udp"]["protocols"][1]["conf"]["target"], "127.0.0.1:1004");
        loads(&forward);
        loads(&detect);
    }

    #[test]
    fn kernel_direct_forwards_its_steered_port_to_the_banner_origin() {
        let config = kernel_direct(&setup(None));
        assert_eq!(config["steer"]["ports"], json!([9000]));
        assert_eq!(config["policies"][0]["ports"], json!([9000]));
        assert_eq!(config["policies"][0]["forward"]["target"], "127.0.0.1:1001");
        assert!(config.get("address").is_none());
        loads(&config);
    }
}
