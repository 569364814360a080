//! `postgres`: the first message of a PostgreSQL frontend (protocol 3, see
//! "Message Formats" in the PostgreSQL documentation).
//!
//! A client opens with an Int32 length (big-endian, counting itself) and an
//! Int32 code, then the message body:
//!
//! - SSLRequest: length 8, code 80877103 (`04 d2 16 2f`), what psql and
//!   pg_isready send first by default (`sslmode=prefer`);
//! - GSSENCRequest: length 8, code 80877104 (`04 d2 16 30`), sent first when
//!   `gssencmode` is `prefer` or `require` and libpq finds a Kerberos
//!   credential cache;
//! - StartupMessage: code 196608 (`00 03 00 00`, protocol 3.0), then
//!   `name\0value\0` pairs and a final `\0`.
//!
//! The detector decides on those 8 bytes and never waits for the body: a
//! StartupMessage with a few options is longer than the default `maxRead`.
//! Five of the eight bytes are fixed (all eight for the two requests) and
//! the length is bounded, which keeps other binary protocols out:
//!
//! - the length is exactly 8 for the two requests, and 16..=10000 for a
//!   StartupMessage: 10000 is the server's own limit
//!   (`MAX_STARTUP_PACKET_LENGTH`), 16 the shortest message a server
//!   accepts (it insists on a non-empty `user`: 8 + `user\0` + `x\0` + the
//!   final `\0`). So the first two bytes are always zero.
//! - the StartupMessage code must be major 3, minor 0..=255 (`00 03 00 xx`):
//!   a server answers a newer 3.x minor with NegotiateProtocolVersion, and
//!   PostgreSQL 18 clients may ask for 3.2, so the minor is not pinned to 0.
//!   Protocol 2 (`00 02 00 00`) is refused: servers dropped it in
//!   PostgreSQL 14.
//!
//! CancelRequest (length 16, code 80877102) is refused: it does not start a
//! session. libpq sends it on a new connection to ask the server that
//! issued a backend key to cancel a running query, and the server closes
//! that connection at once. Matching it would hand the key to whatever
//! backend the `postgres` route names, which need not be the server that
//! issued it. The consequence: query cancellation (psql's Ctrl-C) through
//! serve2 works only if those connections reach that server another way.
//!
//! Every other 8-byte header is refused at the first byte that cannot fit:
//! the first byte for anything not starting with `00`, the fourth for a
//! length outside the ranges above (all zeros: after 4 bytes), the fifth for
//! a CancelRequest.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict, starts_like};

/// Length and code: everything the detector looks at.
const HEADER_LEN: usize = 8;

/// The length of an SSLRequest or a GSSENCRequest.
const REQUEST_LEN: u32 = 8;

/// The shortest StartupMessage a server accepts: 8 + `user\0` + `x\0` + `\0`.
const MIN_STARTUP_LEN: u32 = 16;

/// The longest StartupMessage a server accepts (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_LEN: u32 = 10_000;

/// The first three bytes of the SSLRequest (80877103) and GSSENCRequest
/// (80877104) codes; the fourth tells them apart.
const REQUEST_CODE_HEAD: [u8; 3] = [0x04, 0xd2, 0x16];

/// The last code byte of an SSLRequest.
const SSL_REQUEST_LAST: u8 = 0x2f;

/// The last code byte of a GSSENCRequest.
const GSSENC_REQUEST_LAST: u8 = 0x30;

/// Protocol major 3, the high byte of the minor version (the low byte is free).
const STARTUP_CODE_HEAD: [u8; 3] = [0x00, 0x03, 0x00];

/// Recognises a PostgreSQL SSLRequest, GSSENCRequest or StartupMessage.
#[derive(Debug, Clone, Default)]
pub struct PostgresDetector;

impl Detector for PostgresDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let undecided = Verdict::need_up_to(prefix.len() + 1, HEADER_LEN);
        let Some(length) = prefix.get(..4) else {
            return if length_may_start(prefix) { undecided } else { Verdict::NoMatch };
        };
        let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        let (code_head, last_ok): (&[u8], fn(u8) -> bool) = match length {
            REQUEST_LEN => (&REQUEST_CODE_HEAD, |b| b == SSL_REQUEST_LAST || b == GSSENC_REQUEST_LAST),
            MIN_STARTUP_LEN..=MAX_STARTUP_LEN => (&STARTUP_CODE_HEAD, |_| true),
            _ => return Verdict::NoMatch,
        };
        let code = &prefix[4..];
        if starts_like(code, code_head).is_none() {
            return Verdict::NoMatch;
        }
        match code.get(code_head.len()) {
            None => undecided,
            Some(&last) if last_ok(last) => Verdict::MATCH,
            Some(_) => Verdict::NoMatch,
        }
    }
}

/// Whether the first 0 to 3 bytes can begin a length of 8 or
/// 16..=10000: the two high bytes are zero, the third at most 10000 >> 8.
fn length_may_start(head: &[u8]) -> bool {
    head.iter().enumerate().all(|(i, &b)| if i < 2 { b == 0 } else { u32::from(b) <= MAX_STARTUP_LEN >> 8 })
}

impl FromConf for PostgresDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
