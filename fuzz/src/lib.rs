//! What the fuzz targets share: every detector under test (each registry
//! kind with a few fixed confs, and the builtin detectors) and the detector
//! contract they are held to.
//!
//! `serve2-detect/tests/monotonic.rs` checks the same table on the captured
//! flights with the stable toolchain; keep the two lists alike.

use std::sync::{Arc, LazyLock};

use serve2_detect::registry::KINDS;
use serve2_detect::{
    ClientHelloDetector, DetectContext, Detector, HttpDetector, MagicDetector, NeverDetector, TlsInfo, TlsStateMatcher,
    Verdict,
};

/// One detector, built, with the connection context it is judged in.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `kind {conf}`, for messages.
    pub name: String,
    /// The detector.
    pub detector: Arc<dyn Detector>,
    /// What it knows besides the bytes.
    pub ctx: DetectContext<'static>,
}

/// A kind and its fixed variants (never empty).
#[derive(Debug, Clone)]
pub struct Kind {
    /// The kind's name.
    pub name: &'static str,
    /// Its variants.
    pub variants: Vec<Variant>,
}


static TLS_SESSIONS: LazyLock<[TlsInfo; 3]> = LazyLock::new(|| {
    [
        TlsInfo { server_name: Some("example.test".into()), alpn: Some(b"h2".to_vec()) },
        TlsInfo { server_name: Some("a.example.test".into()), alpn: None },
        TlsInfo { server_name: None, alpn: Some(b"http/1.1".to_vec()) },
    ]
});

fn variant(name: String, detector: Arc<dyn Detector>) -> Variant {
    Variant { name, detector, ctx: DetectContext::default() }
}

fn builtins() -> Vec<Kind> {
    let sessions: &'static [TlsInfo; 3] = &TLS_SESSIONS;
    let in_tls = |i: usize| DetectContext { tls: Some(&sessions[i]), depth: 1 };
    let mut kinds = Vec::new();
    let magics: Vec<Variant> = [vec!["SSH-"], vec!["ECHO", "DISCARD", "SSH-2.0-OpenSSH"]]
        .into_iter()
        .filter_map(|magics| {
            let name = format!("magic {magics:?}");
            MagicDetector::new(magics).map(|d| variant(name, Arc::new(d)))
        })
        .collect();
    kinds.push(Kind { name: "magic", variants: magics });
    kinds.push(Kind { name: "http", variants: vec![variant("http".into(), Arc::new(HttpDetector))] });
    kinds.push(Kind { name: "tls", variants: vec![variant("tls".into(), Arc::new(ClientHelloDetector))] });
    let matchers = vec![
        Variant { name: "tlsmatcher any, in TLS".into(), detector: Arc::new(TlsStateMatcher::new()), ctx: in_tls(0) },
        Variant {
            name: "tlsmatcher *.example.test h2|none".into(),
            detector: Arc::new(
                TlsStateMatcher::new().server_names(["*.example.test"]).negotiated_protocols(["h2", ""]),
            ),
            ctx: in_tls(1),
        },
        Variant {
            name: "tlsmatcher mutual".into(),
            detector: Arc::new(TlsStateMatcher::new().negotiated_protocol_is_mutual(true)),
            ctx: in_tls(2),
        },
        variant("tlsmatcher outside TLS".into(), Arc::new(TlsStateMatcher::new())),
    ];
    kinds.push(Kind { name: "tlsmatcher", variants: matchers });
    kinds.push(Kind { name: "never", variants: vec![variant("never".into(), Arc::new(NeverDetector))] });
    kinds
}

/// Every registry kind (with its fixed confs), then the builtin detectors.
///
/// Panics if a fixed conf no longer builds: the table is then out of date.
pub fn kinds() -> Vec<Kind> {
    let mut kinds: Vec<Kind> = KINDS
        .iter()
        .map(|kind| {
            let variants = serve2_detect::testing::sample_confs(kind.name)
                .into_iter()
                .map(|conf| {
                    let name = format!("{} {conf}", kind.name);
                    match kind.build(conf) {
                        Ok(detector) => variant(name, detector),
                        Err(e) => panic!("{name} does not build: {e}"),
                    }
                })
                .collect();
            Kind { name: kind.name, variants }
        })
        .collect();
    kinds.extend(builtins());
    kinds
}

/// Above this many bytes only a sample of the longer prefixes is judged
/// (every prefix of a flight costs O(n²)).
pub const EVERY_PREFIX_UP_TO: usize = 1024;

/// The prefix lengths judged for a flight of `len` bytes, increasing: all
/// of them up to [`EVERY_PREFIX_UP_TO`], then about 64 spread over the rest
/// and the last 16.
pub fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    let dense = len.min(EVERY_PREFIX_UP_TO);
    let step = ((len - dense) / 64).max(1);
    let tail_from = len.saturating_sub(16).max(dense + 1);
    (0..=dense).chain((dense + 1..tail_from).step_by(step)).chain(tail_from..=len)
}

/// Judges `flight`'s prefixes (see [`prefix_lengths`]) and panics on any
/// breach of the detector contract: a `NeedMore` whose `min` does not exceed
/// the bytes buffered or whose `max` is below its `min`, a learned span
/// outside the prefix, or a decided verdict (`Match` or `NoMatch`) that
/// changes on a longer prefix. Returns the verdict for the whole flight.
pub fn check_contract(variant: &Variant, flight: &[u8]) -> Verdict {
    let mut decided: Option<(usize, Verdict)> = None;
    let mut last = Verdict::need(1);
    for end in prefix_lengths(flight.len()) {
        let verdict = variant.detector.detect(&flight[..end], &variant.ctx);
        match verdict {
            Verdict::NeedMore(need) => {
                assert!(need.min > end, "{}: NeedMore min {} at {end} bytes buffered", variant.name, need.min);
                assert!(need.max >= need.min, "{}: NeedMore max {} below min {}", variant.name, need.max, need.min);
            }
            Verdict::Match(learned) => {
                for span in [learned.server_name, learned.host].into_iter().flatten() {
                    let fits = span.start <= span.end && span.end as usize <= end;
                    assert!(fits, "{}: learned span {span:?} outside the {end}-byte prefix", variant.name);
                }
            }
            Verdict::NoMatch => {}
        }
        match decided {
            Some((at, first)) => {
                assert_eq!(verdict, first, "{}: decided at {at} bytes, changed at {end}", variant.name);
            }
            None if !matches!(verdict, Verdict::NeedMore(_)) => decided = Some((end, verdict)),
            None => {}
        }
        last = verdict;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths_increase_and_cover_both_ends() {
        for len in [0, 1, 2, 100, 1024, 1025, 1040, 1041, 2000, 65_536] {
            let lengths: Vec<usize> = prefix_lengths(len).collect();
            assert_eq!(lengths.first(), Some(&0));
            assert_eq!(lengths.last(), Some(&len));
            assert!(lengths.windows(2).all(|w| w[0] < w[1]), "{len}");
            if len <= EVERY_PREFIX_UP_TO {
                assert_eq!(lengths.len(), len + 1);
            }
        }
    }

    /// Says no at 3 bytes, yes from 4: what `check_contract` must catch.
    #[derive(Debug)]
    struct Fickle;

    impl Detector for Fickle {
        fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
            match prefix.len() {
                0..3 => Verdict::need(3),
                3 => Verdict::NoMatch,
                _ => Verdict::MATCH,
            }
        }
    }

    #[derive(Debug)]
    struct Greedy;

    impl Detector for Greedy {
        fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
            Verdict::need(prefix.len())
        }
    }

    #[test]
    #[should_panic(expected = "decided at 3 bytes, changed at 4")]
    fn a_changed_verdict_is_caught() {
        check_contract(&variant("fickle".into(), Arc::new(Fickle)), b"abcdef");
    }

    #[test]
    #[should_panic(expected = "NeedMore min 0 at 0 bytes")]
    fn asking_for_what_is_there_is_caught() {
        check_contract(&variant("greedy".into(), Arc::new(Greedy)), b"ab");
    }

    #[test]
    fn every_variant_builds() {
        assert!(kinds().iter().all(|k| !k.variants.is_empty()));
    }
}
