use super::*;
use crate::registry::kind;
use crate::testing::{Outcome, assert_segmentation_independent, judge};

macro_rules! fixture {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice())
    };
}

/// `curl -X METHOD -d x http://127.0.0.1:40004/index.html`.
const CURL_METHODS: [(&str, &[u8]); 9] = [
    fixture!("http/curl-GET.bin"),
    fixture!("http/curl-HEAD.bin"),
    fixture!("http/curl-POST.bin"),
    fixture!("http/curl-PUT.bin"),
    fixture!("http/curl-DELETE.bin"),
    fixture!("http/curl-OPTIONS.bin"),
    fixture!("http/curl-PATCH.bin"),
    fixture!("http/curl-TRACE.bin"),
    fixture!("http/curl-CONNECT.bin"),
];

/// Every capture of `tests/fixtures/httproute/` with the host it carries
/// (see the README there for the commands).
/// A fixture: its path under `tests/fixtures/` and its bytes.
type Fixture = (&'static str, &'static [u8]);

const ROUTED: [(Fixture, Option<&str>); 8] = [
    (fixture!("httproute/curl-host-header.bin"), Some("a.example.test")),
    (fixture!("httproute/curl-absolute-form.bin"), Some("b.example.test")),
    // `Host: other.example.test`: the absolute-form authority wins.
    (fixture!("httproute/curl-absolute-form-other-host.bin"), Some("b.example.test")),
    // 174 bytes: routing it on hosts needs maxRead >= 174.
    (fixture!("httproute/curl-absolute-form-port.bin"), Some("d.example.test")),
    (fixture!("httproute/curl-connect.bin"), Some("c.example.test")),
    (fixture!("httproute/curl-http1.0.bin"), Some("127.0.0.1")),
    (fixture!("httproute/curl-ipv6-literal.bin"), Some("::1")),
    // Synthetic: `printf 'GET /\r\n'`, no client speaks HTTP/0.9 any more.
    (fixture!("httproute/http09-synthetic.bin"), None),
];

const H2_PRIOR_KNOWLEDGE: &[u8] = include_bytes!("../../../tests/fixtures/curl-h2-prior-knowledge.bin");
const OTHER_PROTOCOLS: [(&str, &[u8]); 6] = [
    fixture!("curl-h2-prior-knowledge.bin"),
    fixture!("openssh-client-banner.bin"),
    fixture!("curl-openssl3-clienthello.bin"),
    fixture!("openssl3-s_client-clienthello.bin"),
    fixture!("rustls-aws-lc-rs-x25519mlkem768-clienthello.bin"),
    fixture!("chromium-156-x25519mlkem768-clienthello.bin"),
];

fn any_host() -> HttpRouteDetector {
    HttpRouteDetector::default()
}

fn hosts(patterns: &[&str]) -> HttpRouteDetector {
    HttpRouteDetector::from_conf(Conf { hosts: Some(patterns.iter().map(|p| (*p).to_owned()).collect()) }).unwrap()
}

/// The host a match learned, checked segmentation-independent.
fn learned_host(detector: &HttpRouteDetector, flight: &[u8]) -> Option<String> {
    match assert_segmentation_independent(detector, flight, &DetectContext::default()) {
        Verdict::Match(learned) => learned.host.map(|h| String::from_utf8_lossy(h.of(flight)).into_owned()),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(flight)),
    }
}

/// How many bytes it takes to refuse `flight` (`None`: never refused).
fn refused_after(detector: &HttpRouteDetector, flight: &[u8]) -> Option<usize> {
    (0..=flight.len()).find(|&n| detector.detect(&flight[..n], &DetectContext::default()) == Verdict::NoMatch)
}

/// Fixed-seed pseudo-random flights.
fn random_flights() -> Vec<Vec<u8>> {
    (0..64u64).map(|i| crate::testing::xorshift_bytes(0x9e37_79b9_7f4a_7c15 ^ i, 96)).collect()
}

#[test]
fn every_method_captured_from_curl_matches_with_and_without_hosts() {
    for (name, flight) in CURL_METHODS {
        assert_eq!(judge(&any_host(), flight), Outcome::Match, "{name}");
        assert_eq!(learned_host(&hosts(&["127.0.0.1"]), flight).as_deref(), Some("127.0.0.1"), "{name}");
        assert_eq!(judge(&hosts(&["a.example.test"]), flight), Outcome::No, "{name}");
    }
}

#[test]
fn every_routed_capture_matches_and_reports_its_host() {
    for ((name, flight), host) in ROUTED {
        assert_eq!(judge(&any_host(), flight), Outcome::Match, "{name}");
        let pattern = host.unwrap_or("");
        assert_eq!(learned_host(&hosts(&[pattern]), flight).as_deref(), host, "{name}");
        assert_eq!(judge(&hosts(&["nowhere.test"]), flight), Outcome::No, "{name}");
    }
}

#[test]
fn every_capture_in_the_fixture_folder_is_in_the_table_and_matches() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/httproute");
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let name = format!("httproute/{}", path.file_name().unwrap().to_string_lossy());
            assert!(ROUTED.iter().any(|((n, _), _)| *n == name), "{name} is not tested");
            assert_eq!(judge(&any_host(), &std::fs::read(&path).unwrap()), Outcome::Match, "{name}");
        }
    }
}

#[test]
fn host_patterns_glob_and_ignore_case_and_port() {
    let (_, flight) = ROUTED[0].0;
    assert_eq!(learned_host(&hosts(&["*.example.test"]), flight).as_deref(), Some("a.example.test"));
    assert_eq!(learned_host(&hosts(&["x.test", "A.EXAMPLE.TEST."]), flight).as_deref(), Some("a.example.test"));
    assert_eq!(learned_host(&hosts(&["*"]), flight).as_deref(), Some("a.example.test"));
    assert_eq!(judge(&hosts(&["example.test", "*.test"]), flight), Outcome::No);
    assert_eq!(judge(&hosts(&[""]), flight), Outcome::No);
}

#[test]
fn the_absolute_form_authority_wins_over_host() {
    let (_, other_host) = ROUTED[2].0;
    assert_eq!(judge(&hosts(&["other.example.test"]), other_host), Outcome::No);
    // Refused at the end of the request line, before any header.
    assert_eq!(refused_after(&hosts(&["other.example.test"]), other_host), Some(31));
    let userinfo = b"GET http://user:pw@a.test:8080/x?y HTTP/1.1\r\nHost: b.test\r\n\r\n";
    assert_eq!(learned_host(&hosts(&["a.test"]), userinfo).as_deref(), Some("a.test"));
    let empty_authority = b"GET http:///x HTTP/1.1\r\nHost: b.test\r\n\r\n";
    assert_eq!(learned_host(&hosts(&["b.test"]), empty_authority).as_deref(), Some("b.test"));
    let ipv6 = b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n";
    assert_eq!(learned_host(&hosts(&["2001:db8::1"]), ipv6).as_deref(), Some("2001:db8::1"));
}

#[test]
fn the_host_field_is_read_leniently_where_the_rfc_allows() {
    let ok = hosts(&["a.test"]);
    for flight in [
        &b"GET / HTTP/1.1\r\nhOsT:a.test\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: \t a.test:443 \t\r\n\r\n",
        b"GET / HTTP/1.1\nX-Y: z\nHost: a.test\n\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n",
    ] {
        assert_eq!(learned_host(&ok, flight).as_deref(), Some("a.test"), "{:?}", String::from_utf8_lossy(flight));
    }
}

#[test]
fn a_request_without_a_host_matches_only_the_empty_pattern() {
    for flight in [&b"GET / HTTP/1.0\r\n\r\n"[..], b"GET / HTTP/1.0\r\nHost:  \r\n\r\n", b"GET /index.html\r\n"] {
        assert_eq!(learned_host(&hosts(&["", "a.test"]), flight), None);
        assert_eq!(judge(&hosts(&["*"]), flight), Outcome::No);
    }
}

#[test]
fn malformed_heads_are_refused_with_hosts() {
    let any = hosts(&["*"]);
    for flight in [
        &b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test:http\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: u@a.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.\x00test\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n",
        b"GET /  HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a.test\r\n\r\n",
        b"GET /\tx HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"GET http://a@b@c.test/ HTTP/1.1\r\n\r\n",
        b"OPTIONS *x HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"POST /\r\n",
        b"GET http://a.test/\r\n",
    ] {
        assert_eq!(judge(&any, flight), Outcome::No, "{:?}", String::from_utf8_lossy(flight));
    }
}

#[test]
fn a_host_mismatch_is_refused_at_the_end_of_the_host_line() {
    let (_, flight) = ROUTED[0].0; // GET / HTTP/1.1\r\nHost: a.example.test:8080\r\n...
    assert_eq!(refused_after(&hosts(&["b.example.test"]), flight), Some(43));
    // A match waits for the end of the head, and asks for chunks meanwhile.
    let ok = hosts(&["a.example.test"]);
    assert_eq!(ok.detect(&flight[..43], &DetectContext::default()), Verdict::need_up_to(44, usize::MAX));
    assert!(ok.detect(&flight[..flight.len() - 1], &DetectContext::default()) != Verdict::NoMatch);
}

#[test]
fn a_host_line_split_anywhere_waits_for_its_end() {
    let (_, flight) = ROUTED[0].0; // the Host line is bytes 16..43
    let ok = hosts(&["a.example.test"]);
    for split in 16..43 {
        assert_eq!(ok.detect(&flight[..split], &DetectContext::default()), Verdict::need_up_to(split + 1, usize::MAX));
    }
    assert_eq!(learned_host(&ok, flight).as_deref(), Some("a.example.test"));
}

#[test]
fn an_unfinished_head_stays_undecided_and_is_refused_only_at_max_read() {
    let flight = b"GET / HTTP/1.1\r\nHost: a.test\r\nUser-Agent: a long one";
    assert_eq!(judge(&hosts(&["a.test"]), flight), Outcome::Undecided);
    assert_eq!(judge(&any_host(), flight), Outcome::Match);
}

#[test]
fn other_protocols_and_junk_are_refused_in_both_modes() {
    let mut flights: Vec<(String, Vec<u8>)> =
        OTHER_PROTOCOLS.iter().map(|(name, flight)| ((*name).to_owned(), flight.to_vec())).collect();
    for junk in [
        &b"get / http/1.1\r\n"[..],
        b"get / HTTP/1.1\r\n",
        b"GETX / HTTP/1.1\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GET * HTTP/1.1\r\n",
        b"POST example.test:80 HTTP/1.1\r\n",
        b"GET key\r\n",
        b"GET user:1000\r\n",
        b"GET averyveryverylongscheme://x/ HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x00\x05hello",
        b"\x03abc",
        &[0; 64],
    ] {
        flights.push((String::from_utf8_lossy(junk).into_owned(), junk.to_vec()));
    }
    flights.extend(random_flights().into_iter().map(|f| ("random".to_owned(), f)));
    for (name, flight) in &flights {
        assert_eq!(judge(&any_host(), flight), Outcome::No, "{name}");
        assert_eq!(judge(&hosts(&["*", ""]), flight), Outcome::No, "{name}");
    }
}

#[test]
fn look_alikes_are_refused_at_the_first_byte_that_cannot_fit() {
    let any = any_host();
    assert_eq!(refused_after(&any, b"get / HTTP/1.1"), Some(1));
    assert_eq!(refused_after(&any, H2_PRIOR_KNOWLEDGE), Some(2)); // `P` could be PUT, POST, PATCH
    assert_eq!(refused_after(&any, OTHER_PROTOCOLS[1].1), Some(1)); // SSH
    assert_eq!(refused_after(&any, OTHER_PROTOCOLS[2].1), Some(1)); // TLS
    assert_eq!(refused_after(&any, b"GETX /"), Some(4));
    assert_eq!(refused_after(&any, b"GET key\r\n"), Some(8));
    assert_eq!(refused_after(&any, b"GET user:1000"), Some(10));
    assert_eq!(any.detect(b"GET", &DetectContext::default()), Verdict::need(4));
    assert_eq!(any.detect(b"P", &DetectContext::default()), Verdict::need(4));
    assert_eq!(any.detect(b"OPTIONS ", &DetectContext::default()), Verdict::need(9));
}

#[test]
fn without_hosts_the_request_line_start_decides() {
    let any = any_host();
    let ctx = DetectContext::default();
    for (flight, decided_at) in [
        (&b"GET / HTTP/1.1"[..], 5),
        (b"OPTIONS * HTTP/1.1", 9),
        (b"GET http://a.test/ HTTP/1.1", 11),
        (b"CONNECT a.test:443 HTTP/1.1", 9),
        (b"CONNECT [::1]:443 HTTP/1.1", 9),
        (b"GET /\r\n", 5),
    ] {
        assert!(!any.detect(&flight[..decided_at - 1], &ctx).is_match());
        assert_eq!(judge(&any, &flight[..decided_at]), Outcome::Match, "{:?}", String::from_utf8_lossy(flight));
    }
}

#[test]
fn conf_errors_name_the_bad_pattern_or_the_empty_list() {
    let e = kind("httproute").unwrap().build(serde_json::json!({"hosts": ["a.test", "a.*.test"]})).unwrap_err();
    assert_eq!(e.path, vec![ConfKey::Key("hosts".to_owned()), ConfKey::Index(1)]);
    let e = kind("httproute").unwrap().build(serde_json::json!({"hosts": []})).unwrap_err();
    assert_eq!(e.path, vec![ConfKey::Key("hosts".to_owned())]);
    let e = kind("httproute").unwrap().build(serde_json::json!({"host": ["a.test"]})).unwrap_err();
    assert!(e.message.contains("host"), "{e}");
    let built = kind("httproute").unwrap().build(serde_json::json!({"hosts": ["*.example.test"]})).unwrap();
    assert!(built.detect(ROUTED[0].0.1, &DetectContext::default()).is_match());
    assert!(kind("httproute").unwrap().build(serde_json::json!({})).is_ok());
}

#[test]
fn mutated_captures_keep_the_contract() {
    // Every single-byte corruption of every capture: no panic, monotonic,
    // and the same verdict whole or byte by byte (the helper asserts both).
    let ctx = DetectContext::default();
    for ((_, flight), _) in ROUTED {
        for at in (0..flight.len()).step_by(2) {
            for byte in [b' ', b'\r', b'\n', b':', b'@', b'[', b'/', 0, 0xff] {
                let mut mutated = flight.to_vec();
                mutated[at] = byte;
                for detector in [any_host(), hosts(&["*"]), hosts(&["", "*.example.test"])] {
                    assert_segmentation_independent(&detector, &mutated, &ctx);
                }
            }
        }
    }
}
