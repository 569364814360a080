//! `openvpn` over UDP: the client's hard reset, one packet per datagram.
//!
//! Without TCP's length field the datagram's length is the packet's, so a
//! hard reset is judged whole, on the first datagram, with the TCP
//! detector's packet checks (`packet.rs`): plain (14 bytes), `--tls-auth`
//! (22 + HMAC bytes), `--tls-crypt` (54) and `--tls-crypt-v2` (344 to 1078,
//! hard reset V3). Checked against OpenVPN 2.6.14 clients
//! (`tests/fixtures/udp/openvpn/`): their datagrams are the TCP packets
//! without the length. A datagram whose first 12 bytes look like the DNS
//! header of a query is refused, as over TCP: a DNS query can fit a
//! tls-crypt hard reset's few fixed bytes and length.
//!
//! Static-key (`--secret`) packets are not claimed over UDP: they have no
//! fixed byte at all, and with no length field to check, any datagram of 40
//! to 128 bytes would be taken.

use super::packet::{self, DNS_HEADER, Outcome, any_mode, dns_shaped, hard_resets};
use crate::datagram::{DatagramDetector, DatagramVerdict, by_first};
use crate::registry::{ConfError, NoConf};
use crate::udp_registry::FromUdpConf;

/// Recognises an OpenVPN client over UDP by its hard reset, in plain,
/// `--tls-auth`, `--tls-crypt` or `--tls-crypt-v2` mode (see the module
/// docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenVpnUdpDetector;

fn is_hard_reset(datagram: &[u8]) -> bool {
    // Cheap refusals first: the op byte, then the DNS shape.
    if datagram.first().is_none_or(|&op| op != packet::OP_HARD_RESET_V2 && op != packet::OP_HARD_RESET_V3) {
        return false;
    }
    if datagram.get(..DNS_HEADER).and_then(|h| h.try_into().ok()).is_some_and(dns_shaped) {
        return false;
    }
    // The whole packet is there, so every mode decides.
    matches!(any_mode(hard_resets(datagram, datagram.len())), Outcome::Yes) && wrapped_key_fits(datagram)
}

/// Whether a tls-crypt-v2 hard reset ends with the length of its wrapped
/// client key, as a whole packet can be checked (TCP decides on the header,
/// long before): `TLS_CRYPT_V2_WKC` ends with its own length, everything
/// after the tls-crypt part of the packet.
fn wrapped_key_fits(datagram: &[u8]) -> bool {
    if datagram.first() != Some(&packet::OP_HARD_RESET_V3) {
        return true;
    }
    let wkc_len = datagram.len().saturating_sub(packet::TLS_CRYPT_LEN);
    datagram
        .get(datagram.len().saturating_sub(2)..)
        .is_some_and(|len| usize::from(u16::from_be_bytes([len[0], len[1]])) == wkc_len)
}

impl DatagramDetector for OpenVpnUdpDetector {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        by_first(datagrams, is_hard_reset)
    }
}

impl FromUdpConf for OpenVpnUdpDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{slices, udp_foreign, udp_own};
    use crate::testing::{Outcome as Judged, judge_datagrams, random_datagrams};

    /// The TCP capture of the same mode, for comparison.
    fn tcp(mode: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/openvpn/openvpn-2.6-{mode}.bin", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    }

    #[test]
    fn every_real_hard_reset_matches_and_is_the_tcp_packet_without_its_length() {
        let own = udp_own("openvpn");
        assert_eq!(own.len(), 6);
        for (name, flow) in &own {
            assert_eq!(judge_datagrams(&OpenVpnUdpDetector, &slices(flow)), Judged::Match, "{name}");
            assert_eq!(flow.len(), 1, "{name}: one hard reset, then silence");
        }
        for mode in ["plain", "tls-auth", "tls-auth-sha256", "tls-auth-sha512", "tls-crypt"] {
            let (_, flow) = own.iter().find(|(n, _)| n.ends_with(&format!("udp-{mode}.udp"))).unwrap();
            let tcp = tcp(mode);
            // Same length and the same fixed fields; session ids and HMACs differ.
            assert_eq!(flow[0].len() + 2, tcp.len(), "{mode}");
            assert_eq!(flow[0][0], tcp[2], "{mode}");
        }
    }

    #[test]
    fn other_captures_junk_and_truncations_are_refused() {
        let mut flows = udp_foreign("openvpn");
        flows
            .extend(random_datagrams(0x0b, 90).into_iter().enumerate().map(|(i, d)| (format!("random #{i}"), vec![d])));
        flows.push(("zeros".into(), vec![vec![0; 54]]));
        for (name, flow) in &flows {
            assert_eq!(judge_datagrams(&OpenVpnUdpDetector, &slices(flow)), Judged::No, "{name}");
        }
        for (name, flow) in udp_own("openvpn") {
            for len in 0..flow[0].len() {
                let verdict = OpenVpnUdpDetector.detect(&[&flow[0][..len]]);
                assert_eq!(verdict, DatagramVerdict::NoMatch, "{name} cut to {len}");
            }
        }
        // A tls-crypt-v2 reset whose wrapped key's length is not its own.
        let (_, flow) = udp_own("openvpn").into_iter().find(|(n, _)| n.ends_with("tls-crypt-v2.udp")).unwrap();
        let mut longer = flow[0].clone();
        longer.extend_from_slice(&[0x01, 0x2b]);
        assert_eq!(OpenVpnUdpDetector.detect(&[&longer]), DatagramVerdict::NoMatch);
        // The TCP framing is not the UDP one.
        assert_eq!(OpenVpnUdpDetector.detect(&[&tcp("plain")]), DatagramVerdict::NoMatch);
    }

    #[test]
    fn a_dns_query_shaped_like_a_tls_crypt_reset_is_refused() {
        // ID 0x38.., one question, a 1-byte first label: bytes 9..13 read
        // 00 00 00 01, the tls-crypt replay id; 54 bytes long.
        let mut query = vec![0x38, 0x11, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 4];
        query.extend_from_slice(b"test");
        query.resize(54, 0);
        assert!(matches!(packet::tls_crypt(&query, 54), Outcome::Yes));
        assert_eq!(OpenVpnUdpDetector.detect(&[&query]), DatagramVerdict::NoMatch);
    }
}
