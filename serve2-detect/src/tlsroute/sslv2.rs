//! The SSLv2-format compatibility ClientHello (RFC 5246 Appendix E.2).

use crate::tls::HANDSHAKE_CLIENT_HELLO;

/// Header of an SSLv2-format hello: two length bytes, then msg_type, version
/// and the three 16-bit lengths (RFC 5246 Appendix E.2).
pub(super) const V2_HEADER: usize = 2 + 9;
/// The smallest body: one cipher spec and a 16-byte challenge.
const V2_MIN_BODY: usize = 9 + 3 + 16;

/// Result of checking an SSLv2-format compatibility ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V2Scan {
    /// Whole and consistent.
    Complete,
    /// Plausible so far: decisive at `min` bytes, all of it at `max`.
    Incomplete {
        /// The next byte that may be checked.
        min: usize,
        /// The whole message (or the fixed header while the length is unknown).
        max: usize,
    },
    /// Not an SSLv2-format compatibility hello.
    Invalid,
}

/// Checks the SSLv2-format ClientHello a TLS 1.0–1.2 client may send for
/// compatibility with SSL 2.0 servers: a 2-byte header with the high bit set,
/// msg_type 1, version 03 00–03 03, cipher specs in 3-byte units, a 0- or
/// 16-byte session id and a 16–32-byte challenge. Each field is refused as
/// soon as it arrives; `max_message` bounds the 15-bit length.
pub(super) fn scan_v2(input: &[u8], max_message: usize) -> V2Scan {
    let at = |i: usize| input.get(i).copied();
    let u16_at = |i: usize| Some(usize::from(u16::from_be_bytes([at(i)?, at(i + 1)?])));
    let Some(first) = at(0).filter(|b| b & 0x80 != 0) else {
        return if input.is_empty() { V2Scan::Incomplete { min: 1, max: V2_HEADER } } else { V2Scan::Invalid };
    };
    let Some(second) = at(1) else {
        return V2Scan::Incomplete { min: 2, max: V2_HEADER };
    };
    let body_len = usize::from(first & 0x7f) << 8 | usize::from(second);
    let (cipher_specs, session_id, challenge) = (u16_at(5), u16_at(7), u16_at(9));
    let invalid = body_len < V2_MIN_BODY
        || body_len > max_message
        || at(2).is_some_and(|msg_type| msg_type != HANDSHAKE_CLIENT_HELLO)
        || at(3).is_some_and(|major| major != 3)
        || at(4).is_some_and(|minor| minor > 3)
        || cipher_specs.is_some_and(|n| n == 0 || n % 3 != 0)
        || session_id.is_some_and(|n| n != 0 && n != 16)
        || challenge.is_some_and(|n| !(16..=32).contains(&n));
    if invalid {
        return V2Scan::Invalid;
    }
    let total = 2 + body_len;
    match (cipher_specs, session_id, challenge) {
        (Some(c), Some(s), Some(ch)) if 9 + c + s + ch != body_len => V2Scan::Invalid,
        (Some(_), Some(_), Some(_)) if input.len() >= total => V2Scan::Complete,
        (Some(_), Some(_), Some(_)) => V2Scan::Incomplete { min: total, max: total },
        _ => V2Scan::Incomplete { min: input.len() + 1, max: total },
    }
}
