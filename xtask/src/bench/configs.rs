//! The configurations of the systems under test. Each routes the same three
//! kinds of traffic the same way: an SSH banner to the banner origin, HTTP to
//! the HTTP origin, anything else (iperf3's cookie) to iperf3. None logs per
//! connection, so no system pays for logging the others skip.

/// Where each kind of traffic goes.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub banner: u16,
    pub http: u16,
    pub iperf: u16,
}

/// How serve2d receives the load on `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve2Listen {
    /// A plain listening socket on the port.
    Address,
    /// Kernel steering of that one port to serve2d's own socket.
    SteerOne,
    /// A plain socket, with every routed kind of the catalogue tried before
    /// the SSH and HTTP routes: what detection costs with all the kinds.
    AddressCatalogue,
    /// Kernel steering of every port; the origins' ports are excluded
    /// (serve2d refuses targets that would be steered back into itself).
    SteerAll,
}

pub fn serve2(listen: Serve2Listen, port: u16, to: Backends) -> String {
    let mut config = serde_json::json!({
        "logStdout": true,
        "control": "",
        "detectTimeout": 5,
        "protocols": [
            {"kind": "proxy", "conf": {"magic": "SSH-", "target": format!("127.0.0.1:{}", to.banner)}},
            {"kind": "proxy", "conf": {"magic": ["GET ", "POST ", "HEAD "], "target": format!("127.0.0.1:{}", to.http)}},
            {"kind": "proxy", "default": true, "conf": {"target": format!("127.0.0.1:{}", to.iperf)}},
        ],
    });
    config["address"] = match listen {
        Serve2Listen::Address | Serve2Listen::AddressCatalogue => format!("127.0.0.1:{port}").into(),
        Serve2Listen::SteerOne | Serve2Listen::SteerAll => serde_json::Value::Null,
    };
    if listen == Serve2Listen::AddressCatalogue {
        config["protocols"] = catalogue(to);
    }
    config["steer"] = match listen {
        Serve2Listen::Address | Serve2Listen::AddressCatalogue => serde_json::Value::Null,
        Serve2Listen::SteerOne => serde_json::json!({"ports": [port]}),
        Serve2Listen::SteerAll => serde_json::json!({"ports": ["all"], "exclude": [to.banner, to.http, to.iperf]}),
    };
    if let Some(object) = config.as_object_mut() {
        object.retain(|_, value| !value.is_null());
    }
    config.to_string()
}

/// The same three routes with every routed kind of the catalogue in front
/// of the SSH route (the banner load is judged by all of them) and
/// `httproute` taking HTTP.
fn catalogue(to: Backends) -> serde_json::Value {
    let other = format!("127.0.0.1:{}", to.iperf);
    let mut protocols: Vec<serde_json::Value> =
        ["tlsroute", "h2c", "openvpn", "socks5", "rdp", "xmpp", "postgres", "tinc", "syslog", "adb", "mqtt"]
            .iter()
            .map(|kind| serde_json::json!({"kind": kind, "conf": {"target": other}}))
            .collect();
    protocols.push(serde_json::json!({"kind": "regex", "conf": {"patterns": ["^NEVER-"], "target": other}}));
    protocols.push(serde_json::json!({"kind": "httproute", "conf": {"target": format!("127.0.0.1:{}", to.http)}}));
    protocols.push(serde_json::json!({"kind": "ssh", "conf": {"target": format!("127.0.0.1:{}", to.banner)}}));
    protocols.push(serde_json::json!({"kind": "proxy", "default": true, "conf": {"target": other}}));
    serde_json::Value::Array(protocols)
}

/// HAProxy in TCP mode, routing on the first bytes like serve2 does.
/// `maxconn` must fit the descriptor limit (two per connection), or HAProxy
/// refuses to start.
pub fn haproxy(port: u16, to: Backends, maxconn: u64) -> String {
    format!(
        "\
global
    maxconn {maxconn}
    nbthread 2

defaults
    mode tcp
    timeout connect 5s
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
pub fn sslh(port: u16, to: Backends) -> String {
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
    use super::*;

    const TO: Backends = Backends { banner: 1001, http: 1002, iperf: 1003 };

    #[test]
    fn serve2_listens_or_steers() {
        let plain: serde_json::Value = serde_json::from_str(&serve2(Serve2Listen::Address, 9000, TO)).unwrap();
        assert_eq!(plain["address"], "127.0.0.1:9000");
        assert!(plain.get("steer").is_none());
        let all: serde_json::Value = serde_json::from_str(&serve2(Serve2Listen::SteerAll, 9000, TO)).unwrap();
        assert!(all.get("address").is_none());
        assert_eq!(all["steer"]["exclude"], serde_json::json!([1001, 1002, 1003]));
        assert_eq!(all["protocols"][2]["conf"]["target"], "127.0.0.1:1003");
    }

    #[test]
    fn the_catalogue_run_holds_every_routed_kind_and_loads() {
        let text = serve2(Serve2Listen::AddressCatalogue, 9000, TO);
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kinds: Vec<&str> =
            config["protocols"].as_array().unwrap().iter().filter_map(|p| p["kind"].as_str()).collect();
        for kind in serve2_detect::registry::KINDS {
            assert!(kinds.contains(&kind.name), "{} missing", kind.name);
        }
        serve2::Config::parse(std::path::Path::new("catalogue.json"), &text).unwrap();
    }

    #[test]
    fn peers_route_to_the_same_backends() {
        let haproxy = haproxy(9000, TO, 9950);
        assert!(haproxy.contains("bind 127.0.0.1:9000") && haproxy.contains("server iperf 127.0.0.1:1003"));
        let sslh = sslh(9000, TO);
        assert!(
            sslh.contains("port: \"9000\"") && sslh.contains("name: \"anyprot\"; host: \"127.0.0.1\"; port: \"1003\"")
        );
    }
}
