//! `rdp`: an RDP client's first PDU, a TPKT (RFC 1006) carrying an X.224
//! Connection Request (MS-RDPBCGR 2.2.1.1).
//!
//! The request is `03 00 LEN:u16be` (TPKT), then the X.224 CR TPDU: a length
//! indicator (`LEN - 5`), `E0` (CR, credit 0), dst-ref `00 00`, src-ref (any),
//! class option `00`. After that come an optional cookie
//! (`Cookie: mstshash=NAME\r\n`) or routing token (text ending in `\r\n`),
//! then an optional RDP Negotiation Request (`01 flags 08 00 protocols:u32`).
//!
//! The 11 fixed bytes decide, each refused as soon as it is wrong, with the
//! LI checked against the TPKT length. One more byte is read when the TPDU has
//! a variable part: ISO-on-TCP users of the same header (Siemens S7, other
//! RFC 1006 stacks) put X.224 parameters there, codes `80`–`FF`, where RDP
//! has text or the negotiation request's type `01`.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// TPKT version 3, then the reserved byte.
const TPKT_START: [u8; 2] = [0x03, 0x00];
/// TPKT header (4) + the X.224 CR's fixed part (LI, code, dst-ref, src-ref,
/// class option: 7).
const FIXED_LEN: usize = 11;
/// The TPKT header (4 bytes) and the LI byte itself: LI counts the rest of
/// the TPDU, so it is the TPKT length minus this.
const LI_OFFSET: usize = 5;
/// LI is one byte and 255 is reserved, so the TPKT length is at most this.
const MAX_TPKT_LEN: usize = LI_OFFSET + 254;
/// X.224 Connection Request with credit 0, as RDP sends it.
const CR_CDT0: u8 = 0xE0;
/// `TYPE_RDP_NEG_REQ`: the negotiation request's type byte.
const RDP_NEG_REQ: u8 = 0x01;

/// Recognises an RDP TPKT + X.224 connection request.
#[derive(Debug, Clone, Default)]
pub struct RdpDetector;

impl Detector for RdpDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let mut tpkt_len = 0usize;
        for (i, &b) in prefix.iter().enumerate().take(FIXED_LEN + 1) {
            let fits = match i {
                0 | 1 => b == TPKT_START[i],
                // Big-endian length: the high byte alone already rules out
                // anything above MAX_TPKT_LEN (0x0103).
                2 => {
                    tpkt_len = usize::from(b) << 8;
                    tpkt_len <= MAX_TPKT_LEN
                }
                3 => {
                    tpkt_len |= usize::from(b);
                    (FIXED_LEN..=MAX_TPKT_LEN).contains(&tpkt_len)
                }
                4 => usize::from(b) + LI_OFFSET == tpkt_len,
                5 => b == CR_CDT0,
                6 | 7 => b == 0, // dst-ref is zero in a CR
                8 | 9 => true,   // src-ref: the client's choice
                10 => b == 0,    // class 0, no extended formats
                // The variable part's first byte: cookie or routing token
                // text, or the negotiation request; not an X.224 parameter.
                _ => b == RDP_NEG_REQ || (0x20..=0x7E).contains(&b),
            };
            if !fits {
                return Verdict::NoMatch;
            }
        }
        if prefix.len() < FIXED_LEN {
            return Verdict::need(FIXED_LEN);
        }
        let decisive = if tpkt_len == FIXED_LEN { FIXED_LEN } else { FIXED_LEN + 1 };
        if prefix.len() >= decisive { Verdict::MATCH } else { Verdict::need(decisive) }
    }
}

impl FromConf for RdpDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
