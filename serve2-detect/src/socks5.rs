//! `socks5`: a SOCKS5 greeting (RFC 1928 §3): `VER NMETHODS METHODS...`.
//!
//! The client sends the greeting and waits for the server to pick a method,
//! so the detector matches as soon as the method list is complete. It
//! accepts:
//!
//! * `VER` 5;
//! * `NMETHODS` 1 to [`MAX_METHODS`] (real clients offer 1 to 3: curl
//!   `00 01` or `00 01 02`, ncat, OpenSSH through ncat, PySocks and
//!   proxychains `00` or `00 02`; captures in `tests/fixtures/socks5/`);
//! * methods that are IANA-assigned (`00` none, `01` GSSAPI, `02`
//!   user/password, `03`–`09`) or private (`80`–`FE`), each offered once,
//!   and at least one assigned one. `0A`–`7F` are unassigned and `FF` means
//!   "no acceptable method", which no client offers.
//!
//! A repeated method, an unassigned one, or an offer of private methods only
//! is junk, and is refused at the byte that shows it. SOCKS4 and 4a (`VER`
//! 4) are refused at the first byte.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

const VERSION: u8 = 5;
/// The most methods a greeting may offer: as many as there are assigned
/// methods.
pub const MAX_METHODS: usize = 10;
/// The highest IANA-assigned method (`09`, JSON parameter block).
const LAST_ASSIGNED: u8 = 0x09;

/// Recognises a SOCKS5 greeting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Socks5Detector;

impl Detector for Socks5Detector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match prefix {
            [] => return Verdict::need(2),
            [version, ..] if *version != VERSION => return Verdict::NoMatch,
            [_] => return Verdict::need(2),
            _ => {}
        }
        let count = usize::from(prefix[1]);
        if !(1..=MAX_METHODS).contains(&count) {
            return Verdict::NoMatch;
        }
        let end = 2 + count;
        let methods = &prefix[2..prefix.len().min(end)];
        let mut seen = [false; 256];
        for &method in methods {
            let known = method <= LAST_ASSIGNED || (0x80..=0xfe).contains(&method);
            if !known || std::mem::replace(&mut seen[usize::from(method)], true) {
                return Verdict::NoMatch;
            }
        }
        if methods.len() < count {
            return Verdict::need_up_to(prefix.len() + 1, end);
        }
        if methods.iter().any(|&m| m <= LAST_ASSIGNED) { Verdict::MATCH } else { Verdict::NoMatch }
    }
}

impl FromConf for Socks5Detector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Outcome, judge};

    macro_rules! fixtures {
        ($dir:literal: $($name:literal),* $(,)?) => {
            &[$(($name, include_bytes!(concat!("../../tests/fixtures/", $dir, "/", $name, ".bin")).as_slice())),*]
        };
    }

    /// Real clients' greetings.
    const CLIENTS: &[(&str, &[u8])] = fixtures!("socks5":
        "curl-socks5",
        "curl-socks5-hostname",
        "curl-socks5-hostname-userpass",
        "ncat-socks5",
        "ncat-socks5-auth",
        "ssh-proxycommand-ncat-socks5",
        "pysocks-1.7",
        "pysocks-1.7-userpass",
        "proxychains4-curl",
        "proxychains4-curl-userpass",
    );

    const NEGATIVE: &[(&str, &[u8])] = fixtures!("negative":
        "dig-tcp",
        "dig-tcp-nocookie",
        "dig-tcp-noedns",
        "dig-tcp-dnssec-aaaa",
        "dig-tcp-axfr",
        "dig-tcp-long-name",
        "curl-socks4",
        "curl-socks4a",
        "ncat-socks4",
    );

    const OTHERS: &[&[u8]] = &[
        include_bytes!("../../tests/fixtures/openssh-client-banner.bin"),
        include_bytes!("../../tests/fixtures/curl-openssl3-clienthello.bin"),
        include_bytes!("../../tests/fixtures/curl-h2-prior-knowledge.bin"),
        include_bytes!("../../tests/fixtures/http/curl-CONNECT.bin"),
        include_bytes!("../../tests/fixtures/openvpn/openvpn-2.6-plain.bin"),
        include_bytes!("../../tests/fixtures/openvpn/openvpn-2.6-tls-crypt-v2.bin"),
        include_bytes!("../../tests/fixtures/openvpn/openvpn-2.6-static-key-aes256cbc-sha1-ping.bin"),
    ];

    fn detect(prefix: &[u8]) -> Verdict {
        Socks5Detector.detect(prefix, &DetectContext::default())
    }

    #[test]
    fn real_clients_match_when_their_method_list_is_complete() {
        for &(name, greeting) in CLIENTS {
            assert_eq!(judge(&Socks5Detector, greeting), Outcome::Match, "{name}");
            assert_eq!(greeting.len(), 2 + usize::from(greeting[1]), "{name}: the greeting alone");
            // Undecided one byte short, asking for exactly the rest.
            let short = &greeting[..greeting.len() - 1];
            assert_eq!(detect(short), Verdict::need_up_to(short.len() + 1, greeting.len()), "{name}");
        }
        assert_eq!(detect(b""), Verdict::need(2));
        assert_eq!(detect(b"\x05"), Verdict::need(2));
    }

    #[test]
    fn the_rule_accepts_every_assigned_and_private_method() {
        let all_assigned: Vec<u8> = [5, 10].into_iter().chain(0..=9).collect();
        assert_eq!(judge(&Socks5Detector, &all_assigned), Outcome::Match);
        assert_eq!(judge(&Socks5Detector, b"\x05\x02\x00\x80"), Outcome::Match);
        assert_eq!(judge(&Socks5Detector, b"\x05\x03\xfe\x81\x02"), Outcome::Match);
        assert_eq!(judge(&Socks5Detector, b"\x05\x01\x09"), Outcome::Match);
    }

    #[test]
    fn junk_is_refused_at_the_byte_that_shows_it() {
        let cases: &[(&[u8], usize)] = &[
            (b"\x05\x00", 2),             // no methods
            (b"\x05\x0b", 2),             // more than MAX_METHODS
            (b"\x05\xff", 2),             // far more
            (b"\x05\x02\x00\x00", 4),     // duplicate
            (b"\x05\x03\x02\x00\x02", 5), // duplicate, not adjacent
            (b"\x05\x01\xff", 3),         // "no acceptable methods"
            (b"\x05\x02\x00\x0a", 4),     // unassigned
            (b"\x05\x02\x7f\x00", 3),     // unassigned
            (b"\x05\x01\x80", 3),         // private only
            (b"\x05\x02\x80\x81", 4),     // private only
            (b"\x04\x01\x00\x50", 1),     // SOCKS4
            (b"\x00\x35\x12\x34", 1),     // DNS over TCP
        ];
        for &(flight, at) in cases {
            assert_eq!(judge(&Socks5Detector, flight), Outcome::No, "{flight:02x?}");
            assert_eq!(detect(&flight[..at]), Verdict::NoMatch, "{flight:02x?} at {at}");
            assert!(matches!(detect(&flight[..at - 1]), Verdict::NeedMore(_)), "{flight:02x?} before {at}");
        }
    }

    #[test]
    fn other_protocols_are_refused() {
        for &(name, flight) in NEGATIVE {
            assert_eq!(judge(&Socks5Detector, flight), Outcome::No, "{name}");
            assert_eq!(detect(&flight[..1]), Verdict::NoMatch, "{name}");
        }
        for flight in OTHERS {
            assert_eq!(judge(&Socks5Detector, flight), Outcome::No, "{:02x?}", &flight[..4]);
        }
    }

    #[test]
    fn builds_from_an_empty_conf() {
        let kind = crate::registry::kind("socks5").unwrap();
        assert!(
            kind.build(serde_json::json!({})).unwrap().detect(b"\x05\x01\x00", &DetectContext::default()).is_match()
        );
    }
}
