use std::path::Path;

use super::*;

const SERVE2D_EXAMPLE: &str = r#"{
   "address": ":8080",
   "maxRead": 32,
   "logStdout": true,
   "protocols": [
      {
         "kind": "echo"
      },
      {
         "kind": "discard",
         "default": true
      },
      {
         "kind": "proxy",
         "conf": {
            "magic": "SSH",
            "target": "localhost:22"
         }
      }
   ]
}
"#;

fn parse(source: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("test.json"), source)
}

/// The single problem of an invalid config, as "line:column path: message".
fn problem(source: &str) -> String {
    let error = parse(source).unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "{error}");
    let p = &problems[0];
    format!("{}:{} {}: {}", p.line, p.column, p.path, p.message)
}

#[test]
fn serve2d_example_loads_unchanged() {
    let config = parse(SERVE2D_EXAMPLE).unwrap();
    assert_eq!(config.listen, Some(ListenAddress::AllInterfaces(8080)));
    assert_eq!(config.limits.max_read, 32);
    assert_eq!(config.log, LogTarget::Stdout);
    let names: Vec<&str> = config.protocols.protocols().iter().map(Protocol::name).collect();
    assert_eq!(names, ["echo", "proxy"]);
    assert_eq!(config.protocols.fallback().map(Protocol::name), Some("discard"));
}

#[test]
fn defaults_match_serve2d() {
    let config = parse(r#"{"address": "127.0.0.1:0", "protocols": [{"kind": "echo"}]}"#).unwrap();
    assert_eq!(config.limits.max_read, 128);
    assert_eq!(config.log, LogTarget::Stderr);
    assert!(config.protocols.fallback().is_none());
    let config = parse(r#"{"address": ":1", "maxRead": 0, "logFile": "", "protocols": [{"kind": "echo"}]}"#).unwrap();
    assert_eq!(config.limits.max_read, 128);
    assert_eq!(config.log, LogTarget::Stderr);
}

#[test]
fn syntax_errors_point_at_the_spot() {
    let error = problem("{\n  \"address\": \":80\",\n  \"protocols\": [\n}");
    assert_eq!(error, "4:1 protocols[0]: expected value");
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let unknown = problem("{\"address\": \":80\", \"adress\": 1, \"protocols\": [{\"kind\": \"echo\"}]}");
    let expected = "1:27 adress: unknown field `adress`, expected one of `address`, `maxRead`, `logStdout`, `logFile`";
    assert!(unknown.starts_with(expected), "{unknown}");
    for key in [
        "`steer`",
        "`policies`",
        "`acceptProxy`",
        "`metrics`",
        "`rateLimit`",
        "`kernelDirect`",
        "`udpAddress`",
        "`udp`",
        "`maxFlows`",
        "`maxFlowsPerSource`",
    ] {
        assert!(unknown.contains(key), "{key} listed: {unknown}");
    }
    let error = problem(
        "{\"address\": \":80\", \"protocols\": [\n  {\"kind\": \"proxy\", \"conf\": {\"magic\": \"SSH\", \"target\": \"h:22\", \"tagret\": 1}}]}",
    );
    assert!(error.starts_with("2:71 protocols[0].conf.tagret: unknown field `tagret`"), "{error}");
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_eq!(
        problem("{\"address\": \":80\", \"maxRead\": \"32\", \"protocols\": [{\"kind\": \"echo\"}]}"),
        "1:34 maxRead: invalid type: string \"32\", expected u64"
    );
    let error = problem(
        "{\"address\": \":80\", \"protocols\": [{\"kind\": \"proxy\", \"conf\": {\"magic\": 5, \"target\": \"h:1\"}}]}",
    );
    assert!(
        error.contains("protocols[0].conf.magic: invalid type: integer `5`, expected a string or an array of strings"),
        "{error}"
    );
}

#[test]
fn both_log_destinations_is_an_error_not_a_panic() {
    let error = problem(
        "{\"address\": \":80\", \"logStdout\": true, \"logFile\": \"x.log\", \"protocols\": [{\"kind\": \"echo\"}]}",
    );
    assert_eq!(error, "1:50 logFile: logStdout and logFile cannot both be set");
}

#[test]
fn bad_addresses_and_targets() {
    let error = problem("{\"address\": \"8080\", \"protocols\": [{\"kind\": \"echo\"}]}");
    assert!(error.starts_with("1:13 address: `8080`: expected host:port"), "{error}");
    let error = problem(
        "{\"address\": \":80\", \"protocols\": [{\"kind\": \"proxy\", \"conf\": {\"magic\": \"SSH\", \"target\": \"nohost\"}}]}",
    );
    assert!(error.starts_with("1:87 protocols[0].conf.target: `nohost`: expected host:port"), "{error}");
}

#[test]
fn tls_certificates_by_pair_and_by_list() {
    let tls =
        |conf: &str| problem(&format!(r#"{{"address": ":80", "protocols": [{{"kind": "tls", "conf": {conf}}}]}}"#));
    assert!(tls("{}").contains("protocols[0]: conf: cert and key, or certs, are required"));
    assert!(tls(r#"{"cert": "/c.pem"}"#).contains("protocols[0].conf.cert: cert needs its key"));
    let source = r#"{"address": ":80", "protocols": [{"kind": "tls", "conf": {"certs": [{"cert": "/nonexistent/c.pem", "key": "/nonexistent/k.pem"}]}}]}"#;
    let error = parse(source).unwrap_err().to_string();
    assert!(error.contains("protocols[0].conf.certs[0].cert: `/nonexistent/c.pem`: cannot read"), "{error}");
    assert!(error.contains("protocols[0].conf.certs[0].key: `/nonexistent/k.pem`: cannot read"), "{error}");
}

#[test]
fn missing_files_name_the_field_and_the_file() {
    let source = r#"{"address": ":80", "protocols": [
        {"kind": "tls", "conf": {"cert": "/nonexistent/cert.pem", "key": "/nonexistent/key.pem"}},
        {"kind": "http", "conf": {"path": "/nonexistent/www"}}
    ]}"#;
    let error = parse(source).unwrap_err();
    let lines: Vec<String> = error.problems().iter().map(|p| format!("{}:{} {}", p.line, p.column, p.path)).collect();
    assert_eq!(lines, ["2:42 protocols[0].conf.cert", "2:74 protocols[0].conf.key", "3:43 protocols[1].conf.path"]);
    let text = error.to_string();
    assert!(text.starts_with("test.json: invalid configuration (3 problems)"), "{text}");
    assert!(text.contains("test.json:2:42: protocols[0].conf.cert: `/nonexistent/cert.pem`: cannot read"), "{text}");
    assert!(text.contains("test.json:3:43: protocols[1].conf.path: `/nonexistent/www`: no such folder"), "{text}");
}

#[test]
fn kinds_and_defaults_are_checked() {
    let error = problem("{\"address\": \":80\", \"protocols\": [{\"kind\": \"gopher\"}]}");
    assert_eq!(
        error,
        "1:43 protocols[0].kind: unknown kind `gopher`; expected one of proxy, tls, tlsmatcher, http, echo, discard, ssh, tlsroute, httproute, h2c, openvpn, socks5, rdp, xmpp, postgres, tinc, syslog, adb, mqtt, regex"
    );
    let error = problem(
        "{\"address\": \":80\", \"protocols\": [{\"kind\": \"echo\", \"default\": true}, {\"kind\": \"discard\", \"default\": true}]}",
    );
    assert!(
        error.contains("protocols[1].default: only one protocol may be the default; protocols[0] already is"),
        "{error}"
    );
    let error =
        problem("{\"address\": \":80\", \"protocols\": [{\"kind\": \"proxy\", \"conf\": {\"target\": \"h:1\"}}]}");
    assert!(error.contains("protocols[0]: conf.magic is required"), "{error}");
    let error = problem("{\"address\": \":80\", \"protocols\": [{\"kind\": \"proxy\"}]}");
    assert!(error.contains("protocols[0]: conf: missing field `target`"), "{error}");
    let error = problem(
        "{\"address\": \":80\", \"protocols\": [{\"kind\": \"proxy\", \"conf\": {\"magic\": [], \"target\": \"h:1\"}}]}",
    );
    assert!(error.contains("protocols[0].conf.magic: expected a non-empty string"), "{error}");
    let error = problem("{\"address\": \":80\", \"protocols\": []}");
    assert!(error.contains("protocols: at least one protocol is required"), "{error}");
    let error = problem("{\"protocols\": [{\"kind\": \"echo\"}]}");
    assert!(error.contains("address or steer is required"), "{error}");
    let error = problem("{\"address\": \":80\", \"detectTimeout\": -1, \"protocols\": [{\"kind\": \"echo\"}]}");
    assert!(error.contains("detectTimeout: expected a number of seconds"), "{error}");
}

#[test]
fn a_default_proxy_needs_no_magic() {
    let config =
        parse(r#"{"address": ":80", "protocols": [{"kind": "proxy", "default": true, "conf": {"target": "h:1"}}]}"#)
            .unwrap();
    assert_eq!(config.protocols.fallback().map(Protocol::name), Some("proxy"));
}

const ECHO: &str = r#""protocols": [{"kind": "echo"}]"#;

#[test]
fn steering_makes_the_address_optional_and_policies_own_ports() {
    let config = parse(&format!(
        r#"{{"steer": {{"ports": [22, "80", "8000-8100"], "exclude": [8050]}},
            "policies": [{{"name": "web", "ports": [80, "8000-8010"], "protocols": [{{"kind": "discard"}}]}}], {ECHO}}}"#
    ))
    .unwrap();
    assert_eq!(config.listen, None);
    let steer = config.steer.as_ref().unwrap();
    assert_eq!(steer.listed.to_string(), "22,80");
    assert_eq!(steer.ranged.to_string(), "8000-8100");
    assert_eq!(steer.configured().to_string(), "22,80,8000-8049,8051-8100");
    assert_eq!(config.policies[0].name, "web");
    assert_eq!(config.policies[0].ports.to_string(), "80,8000-8010");
    let router = config.router().unwrap();
    assert_eq!(router.for_port(8005).protocols()[0].name(), "discard");
    assert_eq!(router.for_port(22).protocols()[0].name(), "echo");
}

#[test]
fn policy_ports_must_be_steered_not_excluded_and_owned_once() {
    let base = r#""steer": {"ports": [80, "8000-8100"], "exclude": [8050]}"#;
    let policy = |ports: &str| format!(r#"{{"ports": {ports}, "protocols": [{{"kind": "echo"}}]}}"#);
    let error = problem(&format!(r#"{{{base}, "policies": [{}, {}], {ECHO}}}"#, policy("[80]"), policy("[8000, 80]")));
    assert!(error.contains("policies[1].ports[1]: port 80 already belongs to an earlier policy"), "{error}");
    let error = problem(&format!(r#"{{{base}, "policies": [{}], {ECHO}}}"#, policy("[\"7990-8005\"]")));
    assert!(error.contains("policies[0].ports[0]: port 7990 is not steered (add it to steer.ports)"), "{error}");
    let error = problem(&format!(r#"{{{base}, "policies": [{}], {ECHO}}}"#, policy("[8050]")));
    assert!(error.contains("policies[0].ports[0]: port 8050 is excluded from steering (steer.exclude)"), "{error}");
    let error = problem(&format!(r#"{{"address": ":80", "policies": [{}], {ECHO}}}"#, policy("[80]")));
    assert!(error.contains("policies[0]: policies apply to steered ports: add \"steer\""), "{error}");
}

#[test]
fn port_specs_are_checked() {
    for (spec, message) in [
        ("0", "0 is not a port from 1 to 65535"),
        ("70000", "70000 is not a port from 1 to 65535"),
        ("\"10-5\"", "`10-5`: the range ends before it starts"),
        ("\"web\"", "`web` is not a port from 1 to 65535"),
        ("true", "invalid type: boolean `true`, expected a port number, a range \"first-last\", or \"all\""),
    ] {
        let error = problem(&format!(r#"{{"steer": {{"ports": [{spec}]}}, {ECHO}}}"#));
        assert!(error.contains(&format!("steer.ports[0]: {message}")), "{spec}: {error}");
    }
    let error = problem(&format!(r#"{{"steer": {{"ports": [1], "addresses": ["10.0.0.0/33"]}}, {ECHO}}}"#));
    assert!(error.contains("steer.addresses[0]: `10.0.0.0/33`: expected an address or prefix"), "{error}");
}

#[test]
fn targets_that_would_loop_back_into_serve2_are_left_unsteered_or_refused() {
    let proxy = |target: &str| {
        format!(r#""protocols": [{{"kind": "proxy", "conf": {{"magic": "SSH", "target": "{target}"}}}}]"#)
    };
    // Under "all" or a range, a local target's port is left unsteered.
    for ports in [r#"["all"]"#, r#"["1-100"]"#] {
        let config = parse(&format!(r#"{{"steer": {{"ports": {ports}}}, {}}}"#, proxy("127.0.0.1:22"))).unwrap();
        let steer = config.steer.unwrap();
        assert!(steer.local_targets.contains(22) && !steer.configured().contains(22), "{ports}");
        assert!(steer.configured().contains(23));
    }
    // Listed one by one and also a local target: an error.
    let error = problem(&format!(r#"{{"steer": {{"ports": [22, "1000-2000"]}}, {}}}"#, proxy("127.0.0.1:22")));
    assert!(
        error.contains("protocols[0].conf.target: `127.0.0.1:22` is a local address on port 22, which steer.ports lists: connections to it would come back to serve2; remove 22 from steer.ports or add it to steer.exclude"),
        "{error}"
    );
    let error = problem(&format!(r#"{{"steer": {{"ports": [22]}}, {}}}"#, proxy("localhost:22")));
    assert!(error.contains("`localhost:22` is a local address on port 22, which steer.ports lists"), "{error}");
    // Excluded, not steered, out of scope, or not local: fine.
    for (steer, target) in [
        (r#"{"ports": ["all"], "exclude": [22]}"#, "127.0.0.1:22"),
        (r#"{"ports": [80]}"#, "127.0.0.1:22"),
        (r#"{"ports": ["all"], "addresses": ["192.0.2.0/24"]}"#, "127.0.0.1:22"),
        (r#"{"ports": ["all"]}"#, "192.0.2.1:22"),
    ] {
        parse(&format!(r#"{{"steer": {steer}, {}}}"#, proxy(target)))
            .unwrap_or_else(|e| panic!("{steer} {target}: {e}"));
    }
}

#[test]
fn relay_modes() {
    use crate::relay::RelayMode;
    for (text, mode) in [("splice", RelayMode::Splice), ("copy", RelayMode::Copy)] {
        let config = parse(&format!(r#"{{"address": ":1", "relay": "{text}", {ECHO}}}"#)).unwrap();
        assert_eq!(config.relay, mode);
    }
    assert_eq!(parse(&format!(r#"{{"address": ":1", {ECHO}}}"#)).unwrap().relay, RelayMode::Splice);
    let error = problem(&format!(r#"{{"address": ":1", "relay": "zerocopy", {ECHO}}}"#));
    assert!(error.contains("relay: unknown relay `zerocopy`; expected splice or copy"), "{error}");
    let error = problem(&format!(r#"{{"address": ":1", "relay": "sockmap", {ECHO}}}"#));
    assert!(error.contains("relay: the in-kernel relay (`sockmap`) was retired"), "{error}");
}

#[test]
fn log_formats() {
    assert_eq!(parse(&format!(r#"{{"address": ":1", {ECHO}}}"#)).unwrap().log_format, LogFormat::Text);
    for (text, format) in [("text", LogFormat::Text), ("json", LogFormat::Json)] {
        let config = parse(&format!(r#"{{"address": ":1", "logFormat": "{text}", {ECHO}}}"#)).unwrap();
        assert_eq!(config.log_format, format);
    }
    let error = problem(&format!("{{\"address\": \":1\",\n \"logFormat\": \"xml\", {ECHO}}}"));
    assert_eq!(error, "2:15 logFormat: unknown log format `xml`; expected text or json");
    let error = problem(&format!(r#"{{"address": ":1", "logFormat": 1, {ECHO}}}"#));
    assert!(error.contains("logFormat: invalid type: integer `1`, expected a string"), "{error}");
}

#[test]
fn source_rules_name_the_field_and_need_steering() {
    let steered = |policy: &str| {
        format!(
            r#"{{"steer": {{"ports": [22]}}, "policies": [{{"ports": [22], "protocols": [{{"kind": "echo"}}], {policy}}}]}}"#
        )
    };
    let bad_prefix = problem(&steered(r#""deny": ["10.0.0.0/8", "10.1/33"]"#));
    assert!(
        bad_prefix.ends_with(
            "policies[0].deny[1]: `10.1/33`: expected a source address or prefix like 192.0.2.0/24 or 2001:db8::/32"
        ),
        "{bad_prefix}"
    );
    let zero_rate = problem(&steered(r#""rateLimit": {"perSecond": 0}"#));
    assert!(
        zero_rate.contains("policies[0].rateLimit.perSecond: expected connections per second above 0"),
        "{zero_rate}"
    );
    let wide = problem(&steered(r#""rateLimit": {"perSecond": 5, "prefixV4": 40}"#));
    assert!(wide.contains("policies[0].rateLimit.prefixV4: expected an IPv4 prefix length from 0 to 32"), "{wide}");
    let unsteered = problem(r#"{"address": ":8080", "allow": ["10.0.0.0/8"], "protocols": [{"kind": "echo"}]}"#);
    assert!(unsteered.contains("allow: source rules are enforced by the kernel steering program"), "{unsteered}");
    let config = parse(&steered(r#""rateLimit": {"perSecond": 0.5}, "allow": ["::ffff:10.0.0.0/104"]"#)).unwrap();
    let rules = &config.policies[0].sources;
    assert_eq!(rules.rate_limit.map(|r| (r.burst, r.prefix_v4, r.prefix_v6)), Some((1, 24, 64)));
    assert_eq!(rules.allow, vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()], "mapped prefixes are IPv4");
}

#[test]
fn only_plain_forwards_may_be_kernel_direct() {
    let policy = |extra: &str| {
        let source = format!(
            r#"{{"steer": {{"ports": [25]}}, "policies": [{{"ports": [25], "forward": {{"target": "127.0.0.1:2525"{extra}}}}}]}}"#
        );
        parse(&source).unwrap().policies[0].direct.clone()
    };
    assert_eq!(policy("").map(|d| d.target), Some("127.0.0.1:2525".to_owned()));
    assert_eq!(policy(r#", "proxyProtocol": "v2""#), None);
    assert_eq!(policy(r#", "transparent": true"#), None);
    let off = r#"{"steer": {"ports": [25]}, "policies": [{"ports": [25], "kernelDirect": false, "forward": {"target": "127.0.0.1:2525"}}]}"#;
    assert_eq!(parse(off).unwrap().policies[0].direct, None);
}
