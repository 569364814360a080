use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::Config;
use crate::detect::MagicDetector;
use crate::detect::engine::Unmatched;
use crate::handler::EchoHandler;
use crate::protocol::{DetectLimits, HandlerError, Protocol, Report};
use crate::summary::Summary;

fn protocol(name: &str, magic: &str) -> Protocol {
    Protocol::new(name, MagicDetector::new([magic]).unwrap(), EchoHandler)
}

/// echo, ssh and a default `proxy`.
fn set() -> ProtocolSet {
    let protocols = vec![protocol("echo", "ECHO"), protocol("ssh", "SSH-")];
    ProtocolSet::new(protocols, Some(Protocol::fallback("proxy", EchoHandler)), DetectLimits::default()).unwrap()
}

/// The value of the series `series` (name and labels exactly as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn connections(text: &str, chain: &str, outcome: &str) -> Option<f64> {
    value(text, &format!(r#"serve2_connections_total{{policy="top",chain="{chain}",outcome="{outcome}"}}"#))
}

/// A summary of one connection through `set`, counted in `metrics`.
fn summary(metrics: &Arc<PolicyMetrics>) -> Summary {
    Summary::new("127.0.0.1:8080".parse().unwrap(), tokio::time::Instant::now(), Some(metrics))
}

#[test]
fn every_family_is_exposed_with_its_type() {
    let metrics = Metrics::new();
    let _top = metrics.policy(TOP_POLICY, &set());
    let text = metrics.encode().unwrap();
    for (family, kind) in [
        ("serve2_connections_active", "gauge"),
        ("serve2_bytes_total", "counter"),
        ("serve2_detect_duration_seconds", "histogram"),
        ("serve2_tls_handshake_errors_total", "counter"),
        ("serve2_reloads_total", "counter"),
        ("serve2_build_info", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {family} {kind}\n")), "{family} {kind} in\n{text}");
    }
    assert_eq!(value(&text, r#"serve2_connections_active{policy="top"}"#), Some(0.0));
    assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="from_client"}"#), Some(0.0));
    assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="to_client"}"#), Some(0.0));
    assert_eq!(value(&text, r#"serve2_tls_handshake_errors_total{policy="top"}"#), Some(0.0));
    assert_eq!(value(&text, r#"serve2_reloads_total{result="ok"}"#), Some(0.0));
    assert_eq!(value(&text, r#"serve2_reloads_total{result="failed"}"#), Some(0.0));
    assert_eq!(value(&text, "serve2_detect_duration_seconds_count"), Some(0.0));
    let build = format!(r#"serve2_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_eq!(value(&text, &build), Some(1.0));
    // Connection series appear once a connection ends.
    assert!(!text.contains("serve2_connections_total{"), "{text}");
}

#[test]
fn summaries_count_outcome_chain_bytes_and_active() {
    let metrics = Metrics::new();
    let set = set();
    let top = metrics.policy(TOP_POLICY, &set);

    let mut echo = summary(&top);
    let mut open = summary(&top);
    open.push_protocol(&set, &set.protocols()[1]);
    let text = metrics.encode().unwrap();
    assert_eq!(value(&text, r#"serve2_connections_active{policy="top"}"#), Some(2.0));

    echo.push_protocol(&set, &set.protocols()[0]);
    echo.finish(Report { from_client: 10, to_client: 7, ..Report::default() });
    echo.log();
    drop(echo);

    let mut default = summary(&top);
    default.unmatched = Some(Unmatched::Refused);
    default.push_protocol(&set, set.fallback().unwrap());
    default.finish(Report { from_client: 5, to_client: 1, ..Report::default() });
    default.log();
    drop(default);

    let mut timeout = summary(&top);
    timeout.unmatched = Some(Unmatched::Timeout);
    timeout.push_protocol(&set, set.fallback().unwrap());
    timeout.log();
    drop(timeout);

    let mut backend = summary(&top);
    backend.push_protocol(&set, &set.protocols()[1]);
    let source = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    backend.finish_failed(HandlerError::Backend { target: "127.0.0.1:22".into(), source });
    backend.log();
    drop(backend);

    let mut rejected = summary(&top);
    rejected.proxied_from("10.1.2.3:4444".parse().unwrap());
    rejected.push_proxy_header();
    rejected.finish_failed(HandlerError::Refused("acceptProxy: broken".into()));
    rejected.log();
    drop(rejected);

    let text = metrics.encode().unwrap();
    assert_eq!(connections(&text, "echo", "matched"), Some(1.0));
    assert_eq!(connections(&text, "proxy", "default"), Some(1.0));
    assert_eq!(connections(&text, "proxy", "timeout"), Some(1.0));
    assert_eq!(connections(&text, "ssh", "backend_error"), Some(1.0));
    assert_eq!(connections(&text, "proxy-header", "rejected"), Some(1.0));
    assert_eq!(text.matches("serve2_connections_total{").count(), 5, "{text}");
    assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="from_client"}"#), Some(15.0));
    assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="to_client"}"#), Some(8.0));
    assert_eq!(value(&text, r#"serve2_connections_active{policy="top"}"#), Some(1.0));
    // Labels never carry an address, from the socket or a PROXY header.
    assert!(!text.contains("127.0.0.1") && !text.contains("10.1.2.3") && !text.contains("8080"), "{text}");
    drop(open);
    let text = metrics.encode().unwrap();
    assert_eq!(value(&text, r#"serve2_connections_active{policy="top"}"#), Some(0.0));
}

#[test]
fn outcomes_follow_how_detection_and_the_handler_ended() {
    let metrics = Metrics::new();
    let set = set();
    let top = metrics.policy(TOP_POLICY, &set);
    let ended = |build: &dyn Fn(&mut Summary)| {
        let mut summary = summary(&top);
        build(&mut summary);
        summary.outcome()
    };
    assert_eq!(ended(&|s| s.push_protocol(&set, &set.protocols()[0])), Outcome::Matched);
    let closed = |reason| {
        move |s: &mut Summary| {
            s.unmatched = Some(reason);
            s.closed_unmatched(3);
        }
    };
    assert_eq!(ended(&closed(Unmatched::Refused)), Outcome::ClosedUnmatched);
    assert_eq!(ended(&closed(Unmatched::PeerClosed)), Outcome::ClosedUnmatched);
    assert_eq!(ended(&closed(Unmatched::Timeout)), Outcome::Timeout);
    let client_error =
        |s: &mut Summary| s.finish_failed(HandlerError::Client(std::io::ErrorKind::ConnectionReset.into()));
    assert_eq!(ended(&client_error), Outcome::ClosedUnmatched);
    let backend_timeout = |s: &mut Summary| {
        s.push_protocol(&set, &set.protocols()[1]);
        s.finish_failed(HandlerError::BackendTimeout { target: "h:22".into(), timeout: Duration::from_secs(1) });
    };
    assert_eq!(ended(&backend_timeout), Outcome::BackendError);
    // A TLS failure is a matched connection, and a TLS handshake error.
    let tls = |s: &mut Summary| {
        s.push_protocol(&set, &set.protocols()[0]);
        s.finish_failed(HandlerError::Tls(std::io::ErrorKind::InvalidData.into()));
    };
    assert_eq!(ended(&tls), Outcome::Matched);
    let mut failed = summary(&top);
    tls(&mut failed);
    failed.log();
    let text = metrics.encode().unwrap();
    assert_eq!(value(&text, r#"serve2_tls_handshake_errors_total{policy="top"}"#), Some(1.0));
    // The closed-unmatched summary reports its buffered bytes as received.
    let mut unmatched = summary(&top);
    closed(Unmatched::Refused)(&mut unmatched);
    unmatched.log();
    let text = metrics.encode().unwrap();
    assert_eq!(connections(&text, "-", "closed_unmatched"), Some(1.0));
    assert_eq!(value(&text, r#"serve2_bytes_total{policy="top",direction="from_client"}"#), Some(3.0));
}

#[test]
fn limited_and_rejected_count_without_a_summary() {
    let metrics = Metrics::new();
    let top = metrics.policy(TOP_POLICY, &set());
    let web = metrics.policy("web", &set());
    top.count_limited();
    top.count_limited();
    web.count_rejected();
    let text = metrics.encode().unwrap();
    assert_eq!(connections(&text, "-", "limited"), Some(2.0));
    let web_rejected = r#"serve2_connections_total{policy="web",chain="-",outcome="rejected"}"#;
    assert_eq!(value(&text, web_rejected), Some(1.0));
    assert_eq!(value(&text, r#"serve2_connections_active{policy="web"}"#), Some(0.0));
}

#[test]
fn nested_chains_are_named_up_to_the_cap_then_other() {
    let metrics = Metrics::new();
    let set = set();
    let top = metrics.policy(TOP_POLICY, &set);
    let nested = |layers: &[&Protocol]| {
        let mut summary = summary(&top);
        for layer in layers {
            summary.push_protocol(&set, layer);
        }
        summary.log();
    };
    let (echo, ssh) = (&set.protocols()[0], &set.protocols()[1]);
    nested(&[echo, ssh]);
    nested(&[echo, ssh]);
    let text = metrics.encode().unwrap();
    assert_eq!(connections(&text, "echo>ssh", "matched"), Some(2.0));
    // Nine layers do not fit a chain key.
    nested(&[echo; 9]);
    // Fill the cap with distinct chains (two to seven layers of echo/ssh).
    let mut distinct = 1; // echo>ssh
    'fill: for len in 2..=7u32 {
        for bits in 0..(1u32 << len) {
            if (len, bits) == (2, 0b10) {
                continue; // echo>ssh, counted already
            }
            let layers: Vec<&Protocol> = (0..len).map(|i| if bits >> i & 1 == 1 { ssh } else { echo }).collect();
            if distinct == MAX_NESTED_CHAINS {
                break 'fill;
            }
            nested(&layers);
            distinct += 1;
        }
    }
    nested(&[ssh, ssh, ssh, ssh, ssh, ssh, ssh, ssh]);
    let text = metrics.encode().unwrap();
    assert_eq!(connections(&text, "other", "matched"), Some(2.0), "{text}");
    assert_eq!(connections(&text, "echo>ssh", "matched"), Some(2.0));
    assert_eq!(text.matches(r#"outcome="matched""#).count(), MAX_NESTED_CHAINS + 1);
    // A protocol not of the set (no slot) makes the chain `other`.
    let mut foreign = summary(&top);
    foreign.push_protocol(&set, &protocol("custom", "X"));
    foreign.log();
    assert_eq!(connections(&metrics.encode().unwrap(), "other", "matched"), Some(3.0));
}

#[test]
fn detection_durations_fill_the_histogram() {
    let metrics = Metrics::new();
    let top = metrics.policy(TOP_POLICY, &set());
    top.detected_in(Duration::from_micros(300));
    top.detected_in(Duration::from_millis(2));
    top.detected_in(Duration::from_secs(60));
    let text = metrics.encode().unwrap();
    let bucket = |le: &str| value(&text, &format!(r#"serve2_detect_duration_seconds_bucket{{le="{le}"}}"#));
    assert_eq!(bucket("0.00025"), Some(0.0));
    assert_eq!(bucket("0.0005"), Some(1.0));
    assert_eq!(bucket("0.0025"), Some(2.0));
    assert_eq!(bucket("10"), Some(2.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(value(&text, "serve2_detect_duration_seconds_count"), Some(3.0));
    let sum = value(&text, "serve2_detect_duration_seconds_sum").unwrap();
    assert!((sum - 60.0023).abs() < 1e-9, "{sum}");
    assert_eq!(metrics.families.detect.count(), 3);
}

#[test]
fn reloads_and_kernel_counters() {
    let metrics = Metrics::new().with_kernel_counters(Box::new(|| {
        vec![("lookups", 12), ("steered", 10), ("no_socket", 2), ("stale_daemon", 0)]
    }));
    metrics.record_reload(true);
    metrics.record_reload(true);
    metrics.record_reload(false);
    let text = metrics.encode().unwrap();
    assert_eq!(value(&text, r#"serve2_reloads_total{result="ok"}"#), Some(2.0));
    assert_eq!(value(&text, r#"serve2_reloads_total{result="failed"}"#), Some(1.0));
    assert_eq!(value(&text, "serve2_steer_lookups_total"), Some(12.0));
    assert_eq!(value(&text, "serve2_steer_steered_total"), Some(10.0));
    assert_eq!(value(&text, "serve2_steer_no_socket_total"), Some(2.0));
    assert_eq!(value(&text, "serve2_steer_stale_daemon_total"), Some(0.0));
    assert!(text.contains("# TYPE serve2_steer_lookups_total counter\n"), "{text}");
}

#[test]
fn policy_names_are_escaped_label_values() {
    let metrics = Metrics::new();
    let _odd = metrics.policy("say \"hi\"\\", &set());
    let text = metrics.encode().unwrap();
    assert_eq!(value(&text, r#"serve2_connections_active{policy="say \"hi\"\\"}"#), Some(0.0), "{text}");
}

#[test]
fn instrumented_routers_label_sets_by_policy_name() {
    let source = r#"{"steer": {"ports": [2222, 8443]}, "metrics": "127.0.0.1:9100",
        "protocols": [{"kind": "echo"}],
        "policies": [{"name": "ssh", "ports": [2222], "protocols": [{"kind": "echo"}]}, {"ports": [8443], "protocols": [{"kind": "echo"}]}]}"#;
    let config = Config::parse(Path::new("test.json"), source).unwrap();
    assert_eq!(config.metrics, Some(crate::config::ListenAddress::Addr("127.0.0.1:9100".parse().unwrap())));
    let metrics = Metrics::new();
    let router = config.router_with(Some(&metrics)).unwrap();
    assert_eq!(router.for_port(2222).metrics().map(|m| m.policy()), Some("ssh"));
    assert_eq!(router.for_port(8443).metrics().map(|m| m.policy()), Some("policy 1"));
    assert_eq!(router.for_port(80).metrics().map(|m| m.policy()), Some(TOP_POLICY));
    assert!(config.router().unwrap().for_port(2222).metrics().is_none());
}

#[test]
fn a_bad_metrics_address_names_its_place() {
    let source = "{\"address\": \":80\",\n \"metrics\": \"localhost\",\n \"protocols\": [{\"kind\": \"echo\"}]}";
    let error = Config::parse(Path::new("test.json"), source).unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "{error}");
    let p = &problems[0];
    assert_eq!(
        format!("{}:{} {}: {}", p.line, p.column, p.path, p.message),
        "2:13 metrics: `localhost`: expected host:port, [ipv6]:port or :port"
    );
    assert!(error.to_string().contains("test.json:2:13"), "{error}");
    let source = r#"{"address": ":80", "metrics": 9100, "protocols": [{"kind": "echo"}]}"#;
    let error = Config::parse(Path::new("test.json"), source).unwrap_err();
    assert!(error.to_string().contains("metrics"), "{error}");
    let source = r#"{"address": ":80", "metrics": ":9100", "protocols": [{"kind": "echo"}]}"#;
    let config = Config::parse(Path::new("test.json"), source).unwrap();
    assert_eq!(config.metrics, Some(crate::config::ListenAddress::AllInterfaces(9100)));
}

/// What counting one connection costs, against a label-set lookup per
/// connection. A measurement, not a check, so it is compiled only on
/// request: `RUSTFLAGS="--cfg serve2_measure" cargo test -p serve2 --release
/// --lib metrics::tests::cost -- --nocapture`.
#[cfg(serve2_measure)]
#[test]
fn cost_per_connection() {
    let metrics = Metrics::new();
    let set = set();
    let top = metrics.policy(TOP_POLICY, &set);
    let (echo, ssh) = (&set.protocols()[0], &set.protocols()[1]);
    let mut single = ChainKey::default();
    single.push(Slot::of(&set, echo));
    let mut nested = single;
    nested.push(Slot::of(&set, ssh));
    const N: u32 = 2_000_000;
    let time = |what: &str, run: &dyn Fn()| {
        let started = std::time::Instant::now();
        for _ in 0..N {
            run();
        }
        println!("{what}: {:.1} ns", started.elapsed().as_nanos() as f64 / f64::from(N));
    };
    time("open + single chain + bytes + detection + close", &|| {
        let active = top.open();
        active.detected_in(Duration::from_micros(50));
        active.count(std::hint::black_box(single), "echo", Outcome::Matched);
        active.add_bytes(100, 200);
    });
    time("single chain count", &|| top.count(std::hint::black_box(single), "echo", Outcome::Matched));
    time("nested chain count", &|| top.count(std::hint::black_box(nested), "echo>ssh", Outcome::Matched));
    let family = metrics.families.connections.clone();
    time("Family::get_or_create per connection (for comparison)", &|| {
        let labels =
            families::ConnectionLabels { policy: "top".into(), chain: "echo".into(), outcome: Outcome::Matched };
        family.get_or_create(&labels).inc();
    });
}
