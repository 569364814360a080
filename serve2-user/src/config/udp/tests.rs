use std::path::Path;
use std::time::Duration;

use crate::config::{Config, ConfigError};

fn parse(source: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("test.json"), source)
}

/// The problems of an invalid config, each as "path: message".
fn problems(source: &str) -> Vec<String> {
    let error = parse(source).unwrap_err();
    error.problems().iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
}

/// The single problem of an invalid config, as "path: message".
fn problem(source: &str) -> String {
    let all = problems(source);
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

/// A UDP-only configuration around a top-level `udp` block.
fn with_udp(block: &str) -> String {
    format!(r#"{{"udpAddress": "127.0.0.1:0", "udp": {block}}}"#)
}

#[test]
fn a_udp_only_configuration_needs_no_tcp_protocols() {
    let config = parse(&with_udp(
        r#"{"protocols": [
              {"kind": "prefix", "conf": {"prefix": "Q", "datagrams": 2, "target": "127.0.0.1:9"}},
              {"kind": "regex", "default": true, "conf": {"patterns": "^W", "target": "[::1]:9", "proxyProtocol": "v2"}}
            ],
            "idleTimeout": 5, "establishedTimeout": 60}"#,
    ))
    .unwrap();
    assert!(config.listen.is_none());
    let top = config.udp.top.as_ref().unwrap();
    assert_eq!(top.protocol_names(), ["prefix"]);
    let fallback = top.fallback.as_ref().unwrap();
    assert_eq!((fallback.route.target.as_str(), fallback.route.proxy_header), ("[::1]:9", true));
    assert_eq!(top.timeouts.idle, Duration::from_secs(5));
    assert_eq!(top.timeouts.established, Duration::from_secs(60));
    assert_eq!(top.timeouts.detect, Duration::from_secs(5), "detectTimeout's default");
    assert_eq!(config.udp.limits.max_flows, 65_536);
    assert_eq!(config.udp.limits.max_flows_per_source, 1024);
    let forward = parse(&with_udp(r#"{"forward": {"target": "127.0.0.1:9"}}"#)).unwrap();
    assert_eq!(forward.udp.top.unwrap().forward.unwrap().target, "127.0.0.1:9");
}

#[test]
fn errors_name_the_field_path_and_the_reason() {
    let entry = |conf: &str| with_udp(&format!(r#"{{"protocols": [{{"kind": "prefix", "conf": {conf}}}]}}"#));
    assert_eq!(
        problem(&with_udp(
            r#"{"protocols": [{"kind": "regex", "conf": {"patterns": "^A", "target": "127.0.0.1:9"}},
                              {"kind": "regex", "conf": {"patterns": "^B", "target": "nohost"}}]}"#
        )),
        "udp.protocols[1].conf.target: `nohost`: expected host:port, [ipv6]:port or :port"
    );
    assert_eq!(
        problem(&with_udp(r#"{"protocols": [{"kind": "ssh", "conf": {"target": "127.0.0.1:9"}}]}"#)),
        "udp.protocols[0].kind: unknown UDP kind `ssh`; expected one of quic, wireguard, openvpn, dtls, regex, prefix"
    );
    assert_eq!(problem(&entry(r#"{"prefix": "Q"}"#)), "udp.protocols[0]: conf: missing field `target`");
    assert_eq!(
        problem(&entry(r#"{"prefix": "Q", "target": "127.0.0.1:9", "proxyProtocol": "v1"}"#)),
        "udp.protocols[0].conf.proxyProtocol: `v1`: expected \"v2\" (UDP carries only the binary header)"
    );
    let unknown = problem(&entry(r#"{"prefix": "Q", "target": "127.0.0.1:9", "transparent": true}"#));
    assert!(
        unknown.starts_with("udp.protocols[0].conf.transparent: unknown field `transparent`")
            && unknown.ends_with(", or a route key: target, proxyProtocol"),
        "{unknown}"
    );
    assert_eq!(
        problem(&entry(r#"{"prefix": "", "target": "127.0.0.1:9"}"#)),
        "udp.protocols[0].conf.prefix: expected a non-empty string"
    );
    let unknown_key = problem(&with_udp(r#"{"forward": {"target": "127.0.0.1:9"}, "idle": 3}"#));
    assert!(unknown_key.starts_with("udp.idle: unknown field `idle`"), "{unknown_key}");
    assert_eq!(
        problem(&with_udp(
            r#"{"protocols": [{"kind": "prefix", "default": true, "conf": {"prefix": "A", "target": "127.0.0.1:9"}},
                              {"kind": "prefix", "default": true, "conf": {"prefix": "B", "target": "127.0.0.1:9"}}]}"#
        )),
        "udp.protocols[1].default: only one UDP protocol may be the default; udp.protocols[0] already is"
    );
    assert_eq!(
        problem(&with_udp(
            r#"{"forward": {"target": "127.0.0.1:9"}, "protocols": [{"kind": "prefix", "conf": {"prefix": "A", "target": "127.0.0.1:9"}}]}"#
        )),
        "udp.forward: a `udp` block with `forward` detects nothing: remove `protocols` or `forward`"
    );
    assert_eq!(problem(&with_udp("{}")), "udp: expected `protocols` (at least one) or `forward`");
    assert_eq!(
        problem(&with_udp(r#"{"forward": {"target": "127.0.0.1:9"}, "idleTimeout": 0}"#)),
        "udp.idleTimeout: expected a number of seconds above 0 and at most 86400"
    );
    assert_eq!(
        problem(r#"{"udpAddress": ":0", "maxFlows": 0, "udp": {"forward": {"target": "127.0.0.1:9"}}}"#),
        "maxFlows: expected a number of flows of at least 1"
    );
    assert_eq!(
        problem(r#"{"udpAddress": "5353", "udp": {"forward": {"target": "127.0.0.1:9"}}}"#).split(':').next(),
        Some("udpAddress")
    );
}

#[test]
fn every_udp_socket_needs_a_block_and_every_block_a_socket() {
    assert_eq!(
        problem(r#"{"udpAddress": "127.0.0.1:0"}"#),
        "udpAddress: udpAddress needs a top-level `udp` block (its protocols or forward)"
    );
    assert_eq!(
        problem(
            r#"{"address": ":80", "protocols": [{"kind": "echo"}], "udp": {"forward": {"target": "127.0.0.1:9"}}}"#
        ),
        "udp: a `udp` block needs a UDP socket: add udpAddress or steer.udpPorts"
    );
    assert_eq!(
        problem(
            r#"{"steer": {"udpPorts": [443, 51820]},
                   "policies": [{"name": "wg", "ports": [51820], "udp": {"forward": {"target": "127.0.0.1:9"}}}]}"#
        ),
        "steer.udpPorts: ports 443 are steered for UDP but no `udp` block serves them: add a top-level `udp` or a \
         policy with one"
    );
    assert_eq!(
        problem(
            r#"{"steer": {"udpPorts": [51820]},
                   "policies": [{"ports": [51821], "udp": {"forward": {"target": "127.0.0.1:9"}}}],
                   "udp": {"forward": {"target": "127.0.0.1:9"}}}"#
        ),
        "policies[0].ports[0]: port 51821 is not steered for UDP (add it to steer.udpPorts)"
    );
    assert_eq!(
        problem(r#"{"steer": {}, "protocols": [{"kind": "echo"}]}"#),
        "steer.ports: at least one port, range or \"all\" is required (in steer.ports or steer.udpPorts)"
    );
    let error = problem(r#"{"protocols": [{"kind": "echo"}]}"#);
    assert!(error.contains("address or steer is required") && error.contains("udpAddress for UDP only"), "{error}");
}

#[test]
fn policies_may_have_only_a_udp_block_and_steering_may_be_udp_only() {
    let config = parse(
        r#"{"steer": {"udpPorts": [443, "51820-51821"], "exclude": [51821]},
            "policies": [
              {"name": "wg", "ports": [51820], "detectTimeout": 0.5,
               "udp": {"protocols": [{"kind": "regex", "conf": {"patterns": "^\u0001", "target": "127.0.0.1:9"}}]}},
              {"name": "web", "ports": [443], "protocols": [{"kind": "echo"}],
               "udp": {"forward": {"target": "127.0.0.1:9"}}}
            ]}"#,
    )
    .unwrap();
    let udp_steer = config.udp.steer.as_ref().unwrap();
    assert_eq!(udp_steer.configured().to_string(), "443,51820");
    assert!(config.steer.as_ref().unwrap().configured().is_empty());
    let wg = &config.policies[0];
    assert!(!wg.serves_tcp(), "a udp-only policy leaves TCP alone");
    assert_eq!(wg.udp.as_ref().unwrap().timeouts.detect, Duration::from_millis(500));
    assert!(config.policies[1].serves_tcp());
    let router = crate::udp::UdpRouter::new(&config, None);
    assert_eq!(router.for_port(51820).map(|p| p.name.as_str()), Some("wg"));
    assert_eq!(router.for_port(443).map(|p| p.name.as_str()), Some("web"));
    assert!(router.for_port(53).is_none(), "no top-level block");
}

#[test]
fn local_udp_targets_are_not_steered_back_into_serve2() {
    let config =
        parse(r#"{"steer": {"udpPorts": ["all"]}, "udp": {"forward": {"target": "127.0.0.1:5300"}}}"#).unwrap();
    let steer = config.udp.steer.as_ref().unwrap();
    assert_eq!(steer.local_targets.to_string(), "5300");
    assert!(!steer.configured().contains(5300));
    assert_eq!(
        problem(r#"{"steer": {"udpPorts": [5300]}, "udp": {"forward": {"target": "127.0.0.1:5300"}}}"#),
        "udp.forward.target: `127.0.0.1:5300` is a local address on port 5300, which steer.udpPorts lists: \
         datagrams to it would come back to serve2; remove 5300 from steer.udpPorts or add it to steer.exclude"
    );
}
