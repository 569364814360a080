use super::*;
use crate::registry::kind;
use crate::testing::{Outcome, judge};

macro_rules! fixture {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../tests/fixtures/", $path)).as_slice())
    };
}

const SSH: &[u8] = include_bytes!("../../../tests/fixtures/openssh-client-banner.bin");
const CURL_GET: &[u8] = include_bytes!("../../../tests/fixtures/http/curl-GET.bin");
const CURL_CONNECT: &[u8] = include_bytes!("../../../tests/fixtures/httproute/curl-connect.bin");
const CURL_PROXY: &[u8] = include_bytes!("../../../tests/fixtures/httproute/curl-absolute-form.bin");
const H2: &[u8] = include_bytes!("../../../tests/fixtures/curl-h2-prior-knowledge.bin");
const TLS_HELLOS: [(&str, &[u8]); 4] = [
    fixture!("curl-openssl3-clienthello.bin"),
    fixture!("openssl3-s_client-clienthello.bin"),
    fixture!("rustls-aws-lc-rs-x25519mlkem768-clienthello.bin"),
    fixture!("chromium-156-x25519mlkem768-clienthello.bin"),
];

fn regex(patterns: &[&str]) -> RegexDetector {
    let patterns = Patterns(patterns.iter().map(|p| (*p).to_owned()).collect());
    RegexDetector::from_conf(Conf { patterns }).unwrap()
}

fn conf_error(conf: serde_json::Value) -> ConfError {
    kind("regex").unwrap().build(conf).unwrap_err()
}

/// How many bytes it takes to decide `flight` (`None`: undecided at its end).
fn decided_after(detector: &RegexDetector, flight: &[u8]) -> Option<usize> {
    (0..=flight.len())
        .find(|&n| !matches!(detector.detect(&flight[..n], &DetectContext::default()), Verdict::NeedMore(_)))
}

/// Fixed-seed pseudo-random flights.
fn random_flights() -> Vec<Vec<u8>> {
    (0..32u64).map(|i| crate::testing::xorshift_bytes(0x2545_f491_4f6c_dd1d ^ i, 128)).collect()
}

#[test]
fn the_issue_patterns_are_monotonic_on_captures_and_near_misses() {
    use Outcome::{Match, No, Undecided};
    let mut cases: Vec<(&str, &[u8], Outcome)> = vec![
        (r"^SSH-", SSH, Match),
        (r"^SSH-", CURL_GET, No),
        (r"^SSH-", b"SSH", Undecided),
        (r"^SSH-", b"SSH-", Match),
        (r"^\x16\x03[\x00-\x04]", SSH, No),
        (r"^\x16\x03[\x00-\x04]", b"\x16\x03\x05", No),
        (r"foo\b", b"a foo bar", Match),
        (r"foo\b", b"a foo", Undecided),
        (r"foo\b", b"a foo\xff", Match),
        (r"foo\b", b"foofoofoo", Undecided),
        (r"(?i)^get ", CURL_GET, Match),
        (r"(?i)^get ", b"gEt /", Match),
        (r"(?i)^get ", b"gex", No),
        (r"(?i)^get ", H2, No),
        (r"jabber", b"<stream:stream xmlns='jabber:client' to='example.test'>", Match),
        (r"jabber", b"<stream:stream xmlns='jabbe", Undecided),
        (r"jabber", SSH, Undecided),
        (r"^[0-9]{1,3} <", b"57 <34>1 2024-01-01T00:00:00Z host app - - - hi", Match),
        (r"^[0-9]{1,3} <", b"1234 <34>", No),
        (r"^[0-9]{1,3} <", b"12x", No),
        (r"^[0-9]{1,3} <", CURL_CONNECT, No),
        (r"(?m)^Host: [a-z.]+\.test\r?$", CURL_PROXY, Match),
        (r"(?m)^Host: [a-z.]+\.test\r?$", CURL_CONNECT, Undecided),
        (r"(?m)^Host: [a-z.]+\.test\r?$", b"GET / HTTP/1.1\r\nHost: a.test", Undecided),
    ];
    for (name, hello) in TLS_HELLOS {
        cases.push((r"^\x16\x03[\x00-\x04]", hello, Match));
        cases.push((r"^SSH-", hello, No));
        assert!(!name.is_empty());
    }
    for (pattern, flight, expected) in cases {
        assert_eq!(judge(&regex(&[pattern]), flight), expected, "{pattern} on {:?}", String::from_utf8_lossy(flight));
    }
}

#[test]
fn anchored_patterns_die_at_the_first_impossible_byte() {
    assert_eq!(decided_after(&regex(&[r"^SSH-"]), TLS_HELLOS[0].1), Some(1));
    assert_eq!(decided_after(&regex(&[r"\ASSH-"]), b"SSX"), Some(3));
    assert_eq!(decided_after(&regex(&[r"(?i)^get "]), b"gex"), Some(3));
    assert_eq!(decided_after(&regex(&[r"^[0-9]{1,3} <"]), b"1234"), Some(4));
    // An alternative without `^` makes the whole pattern unanchored.
    assert_eq!(decided_after(&regex(&[r"^SSH-|jabber"]), TLS_HELLOS[0].1), None);
    // Multi-line `^` is any line start: unanchored too.
    assert_eq!(decided_after(&regex(&[r"(?m)^SSH-"]), b"SSX"), None);
}

#[test]
fn matches_are_seen_at_their_last_byte_unless_they_look_ahead() {
    // No look-ahead: the end-of-input transition reveals the match at once.
    assert_eq!(decided_after(&regex(&[r"^SSH-"]), SSH), Some(4));
    assert_eq!(decided_after(&regex(&[r"jabber"]), b"xx jabber"), Some(9));
    assert_eq!(decided_after(&regex(&[r"(?m)^abc"]), b"x\nabc"), Some(5));
    // Look-ahead: the next byte is needed.
    assert_eq!(decided_after(&regex(&[r"foo\b"]), b"foo bar"), Some(4));
    assert_eq!(decided_after(&regex(&[r"foo\B"]), b"foobar"), Some(4));
    assert_eq!(decided_after(&regex(&[r"(?m)foo$"]), b"foo\n"), Some(4));
    // Undecided asks for whatever the engine allows.
    assert_eq!(regex(&[r"foo\b"]).detect(b"foo", &DetectContext::default()), Verdict::need_up_to(4, usize::MAX));
    assert_eq!(regex(&[r"^SSH-"]).detect(b"", &DetectContext::default()), Verdict::need_up_to(1, usize::MAX));
}

#[test]
fn word_boundaries_are_ascii() {
    // Unicode `\b` would see `é` as a word character; ASCII `\b` does not.
    assert_eq!(judge(&regex(&[r"foo\b"]), "fooé".as_bytes()), Outcome::Match);
    assert_eq!(judge(&regex(&[r"\bfoo\b"]), b"\xe9foo\x00"), Outcome::Match);
    assert_eq!(judge(&regex(&[r"(?-u:\b)foo"]), b"xfoo"), Outcome::Undecided);
}

#[test]
fn any_pattern_matching_is_a_match_and_all_dead_is_no() {
    let either = regex(&[r"^SSH-", r"^\x16\x03"]);
    assert_eq!(judge(&either, SSH), Outcome::Match);
    assert_eq!(judge(&either, TLS_HELLOS[1].1), Outcome::Match);
    assert_eq!(judge(&either, CURL_GET), Outcome::No);
    assert_eq!(decided_after(&either, CURL_GET), Some(1));
    // An unanchored pattern keeps the detector undecided until maxRead.
    assert_eq!(judge(&regex(&[r"^SSH-", r"jabber"]), CURL_GET), Outcome::Undecided);
}

#[test]
fn junk_is_refused_by_anchored_patterns_and_held_by_unanchored_ones() {
    let anchored = regex(&[r"^SSH-", r"^\x16\x03[\x00-\x04]", r"(?i)^get ", r"^[0-9]{1,3} <"]);
    let unanchored = regex(&[r"jabber", r"foo\b"]);
    let mut flights: Vec<Vec<u8>> = random_flights();
    flights.extend([vec![0; 64], b"\x00\x05hello".to_vec(), b"\x03abc".to_vec(), H2.to_vec()]);
    for flight in &flights {
        assert_eq!(judge(&anchored, flight), Outcome::No, "{flight:?}");
        assert_eq!(judge(&unanchored, flight), Outcome::Undecided, "{flight:?}");
    }
    assert_eq!(judge(&anchored, b"get / http/1.1\r\n"), Outcome::Match); // `(?i)` asked for it
    assert_eq!(judge(&regex(&[r"^GET "]), b"get / http/1.1\r\n"), Outcome::No);
}

#[test]
fn patterns_may_be_one_string_or_an_array() {
    let one = kind("regex").unwrap().build(serde_json::json!({"patterns": "^SSH-"})).unwrap();
    assert!(one.detect(SSH, &DetectContext::default()).is_match());
    let many = kind("regex").unwrap().build(serde_json::json!({"patterns": ["^x", "^SSH-"]})).unwrap();
    assert!(many.detect(SSH, &DetectContext::default()).is_match());
}

#[test]
fn conf_errors_say_which_pattern_and_why() {
    let key = |k: &str| ConfKey::Key(k.to_owned());
    let e = conf_error(serde_json::json!({"patterns": ["^ok", "(unclosed"]}));
    assert_eq!(e.path, vec![key("patterns"), ConfKey::Index(1)]);
    assert!(e.message.contains("unclosed group"), "{e}");
    let e = conf_error(serde_json::json!({"patterns": []}));
    assert_eq!(e.path, vec![key("patterns")]);
    let e = conf_error(serde_json::json!({}));
    assert!(e.message.contains("patterns"), "{e}");
    let e = conf_error(serde_json::json!({"patterns": 3}));
    assert!(e.message.contains("a regex or an array of regexes"), "{e}");
    let e = conf_error(serde_json::json!({"patterns": ["^a", 3]}));
    assert_eq!(e.path, vec![key("patterns"), ConfKey::Index(1)]);
    for end_of_input in [r"^SSH-$", r"\z", r"^a|b$"] {
        let e = conf_error(serde_json::json!({ "patterns": [end_of_input] }));
        assert!(e.message.contains("end of input"), "{e}");
    }
    for empty in ["", "a*", "(?m)^", r"\b"] {
        let e = conf_error(serde_json::json!({ "patterns": [empty] }));
        assert!(e.message.contains("empty string"), "{e}");
    }
}

#[test]
fn a_dfa_over_the_size_limit_is_refused_clearly() {
    let e = conf_error(serde_json::json!({"patterns": [r"\w{50}"]}));
    assert_eq!(e.path, vec![ConfKey::Key("patterns".to_owned()), ConfKey::Index(0)]);
    assert!(e.message.contains("too complex"), "{e}");
    // The same pattern on ASCII classes fits.
    assert!(judge(&regex(&[r"(?-u)^\w{50}"]), &[b'a'; 50]) == Outcome::Match);
}

#[test]
fn mutated_captures_keep_the_contract() {
    // Single-byte corruptions of real flights: no panic, monotonic, and the
    // same verdict whole or byte by byte (the helper asserts all three).
    let detectors = [
        regex(&[r"^SSH-"]),
        regex(&[r"^\x16\x03[\x00-\x04]", r"(?i)^get "]),
        regex(&[r"foo\b", r"jabber"]),
        regex(&[r"^[0-9]{1,3} <", r"(?m)^Host: [a-z.]+\.test\r?$"]),
    ];
    let ctx = DetectContext::default();
    for flight in [SSH, CURL_GET, CURL_PROXY] {
        for at in (0..flight.len()).step_by(3) {
            for byte in [b' ', b'\n', b'o', 0, 0xff] {
                let mut mutated = flight.to_vec();
                mutated[at] = byte;
                for detector in &detectors {
                    crate::testing::assert_segmentation_independent(detector, &mutated, &ctx);
                }
            }
        }
    }
}
