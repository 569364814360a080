//! `adb`: an Android Debug Bridge CNXN message, the host's first message to
//! a device (adb's `protocol.txt`).
//!
//! A message is a 24-byte little-endian header (command, arg0, arg1,
//! data_length, data_check, magic = command ^ 0xffffffff) and a payload.
//! The host's CNXN carries arg0 = protocol version (0x01000000, or
//! 0x01000001 from adb versions that skip data checksums), arg1 = the
//! largest payload it accepts, and a banner `host:serial:banner`
//! (`host::features=…` from current adb, `host::\0` from old ones). adb
//! limits the CNXN payload to MAX_PAYLOAD_V1 (4096 bytes) because the
//! peer's limit is not known yet.
//!
//! The current adb's CNXN is over 128 bytes (the feature list), so the
//! detector decides on the header and the first five payload bytes
//! (`host:`), 29 bytes in all, and never on data_check: it covers the whole
//! payload, which may lie beyond `maxRead`. It checks, and refuses at the
//! first byte that cannot fit:
//!
//! - command `CNXN` (a first byte other than `C` or `00` is refused at once);
//! - version 0x01000000 or 0x01000001;
//! - a non-zero arg1 and a data_length of 5 (`host:`) to 4096;
//! - the magic, and a payload starting `host:`.
//!
//! The empty-message quirk: adb 26.0.0 rc1 (build 4321094) sent an empty
//! message before its CNXN, a side effect of an AOSP change that was later
//! reverted. That message is a header of zeros (command 0, no payload)
//! whose magic is therefore 0xffffffff. sslh's probe accepts it when a CNXN
//! follows, and so does this detector: those 24 bytes exactly, then a CNXN
//! judged as above (a match at 53 bytes). All zeros are refused at byte 21.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict, starts_like};

/// The message header size.
const HEADER_LEN: usize = 24;

/// The CNXN command, as it appears on the wire.
const CNXN: &[u8; 4] = b"CNXN";

/// The CNXN magic: `CNXN` ^ 0xffffffff, little-endian.
const CNXN_MAGIC: [u8; 4] = [0xbc, 0xb1, 0xa7, 0xb1];

/// Where the magic starts in a header.
const MAGIC_AT: usize = 20;

/// The bytes of the version (arg0) after its lowest: 0x010000xx.
const VERSION_HIGH: [u8; 3] = [0x00, 0x00, 0x01];

/// The highest low byte of a known version (0x01000001, skip checksum).
const MAX_VERSION_LOW: u8 = 0x01;

/// The start of every host banner, and the payload bytes the detector reads.
const HOST: &[u8] = b"host:";

/// The shortest CNXN payload: `host:`.
const MIN_CNXN_PAYLOAD: u32 = HOST.len() as u32;

/// adb's MAX_PAYLOAD_V1, the CNXN payload limit.
const MAX_CNXN_PAYLOAD: u32 = 4096;

/// What adb 26.0.0 rc1 sent before its CNXN: a header of zeros, magic
/// 0xffffffff.
const EMPTY_MESSAGE: [u8; HEADER_LEN] = {
    let mut header = [0u8; HEADER_LEN];
    let mut i = MAGIC_AT;
    while i < HEADER_LEN {
        header[i] = 0xff;
        i += 1;
    }
    header
};

/// Recognises an Android Debug Bridge CNXN message.
#[derive(Debug, Clone, Default)]
pub struct AdbDetector;

impl Detector for AdbDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let (cnxn, offset) = match starts_like(prefix, &EMPTY_MESSAGE) {
            Some(true) => (&prefix[HEADER_LEN..], HEADER_LEN),
            // The empty message starts with 00, a CNXN with `C`: either the
            // prefix is still the quirk's or it has to be a CNXN.
            Some(false) => return Verdict::need_up_to(prefix.len() + 1, HEADER_LEN + CNXN_DECISION),
            None => (prefix, 0),
        };
        match judge_cnxn(cnxn) {
            Step::No => Verdict::NoMatch,
            Step::Partial => Verdict::need_up_to(prefix.len() + 1, offset + CNXN_DECISION),
            Step::Whole => Verdict::MATCH,
        }
    }
}

/// The bytes of a CNXN the detector reads: the header and `host:`.
const CNXN_DECISION: usize = HEADER_LEN + HOST.len();

/// How far a CNXN judged so far got.
enum Step {
    /// A byte cannot fit.
    No,
    /// Everything so far fits.
    Partial,
    /// All [`CNXN_DECISION`] bytes are there and fit.
    Whole,
}

/// Judges the start of a CNXN message, field by field, as far as `msg` goes.
fn judge_cnxn(msg: &[u8]) -> Step {
    let from = |at: usize| msg.get(at..).unwrap_or_default();
    let version_ok = msg.get(4).is_none_or(|&low| low <= MAX_VERSION_LOW);
    let fits = starts_like(msg, CNXN).is_some()
        && version_ok
        && starts_like(from(5), &VERSION_HIGH).is_some()
        && le32(msg, 8).is_none_or(|max_payload| max_payload != 0)
        && le32(msg, 12).is_none_or(|len| (MIN_CNXN_PAYLOAD..=MAX_CNXN_PAYLOAD).contains(&len))
        && starts_like(from(MAGIC_AT), &CNXN_MAGIC).is_some();
    match (fits, starts_like(from(HEADER_LEN), HOST)) {
        (false, _) | (_, None) => Step::No,
        (true, Some(false)) => Step::Partial,
        (true, Some(true)) => Step::Whole,
    }
}

/// The little-endian u32 at `at`, once all four bytes are there.
fn le32(msg: &[u8], at: usize) -> Option<u32> {
    let bytes = msg.get(at..at + 4)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

impl FromConf for AdbDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
