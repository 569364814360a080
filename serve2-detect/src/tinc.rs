//! `tinc`: the ID request a tinc daemon sends first on a meta connection.
//!
//! The line is `0 NAME MAJOR[.MINOR]\n` (request 0 is ID): tinc 1.0 sends
//! `0 alice 17\n`, tinc 1.1 `0 alice 17.7\n` (`17.1` while it still lacks the
//! peer's Ed25519 key, `17.0` with `ExperimentalProtocol = no`). `tinc join`
//! (1.1) sends an invitation in the same shape, the name being `?` and its
//! throw-away Ed25519 public key in 43 base64 characters.
//!
//! Names are what tinc's `check_id` allows, `[A-Za-z0-9_]+`, capped here at
//! [`MAX_NAME`] bytes; the major version has 1–2 digits and the minor 1–3,
//! as tinc's own parser reads them. Every byte is checked as it arrives and
//! the line matches at its `\n`, at most [`MAX_LINE`] bytes in. Control
//! connections (`0 ^cookie …`) are local to a daemon and are refused.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict, starts_like};

/// The longest node name accepted (tinc allows up to 2048 bytes, but node
/// names are host-name-like; a longer run of name bytes is not tinc).
const MAX_NAME: usize = 64;
/// An unpadded base64 Ed25519 public key: `tinc join`'s invitation "name".
const INVITATION_KEY_LEN: usize = 43;
/// The ID request and the space after it.
const ID_REQUEST: &[u8] = b"0 ";
/// Digits in the protocol major and minor versions.
const MAX_MAJOR_DIGITS: usize = 2;
const MAX_MINOR_DIGITS: usize = 3;
/// The longest line accepted: `0 `, name, space, `MM.mmm`, `\n`.
const MAX_LINE: usize = ID_REQUEST.len() + MAX_NAME + 1 + MAX_MAJOR_DIGITS + 1 + MAX_MINOR_DIGITS + 1;

/// Recognises a tinc 1.0 or 1.1 ID line.
#[derive(Debug, Clone, Default)]
pub struct TincDetector;

/// Where in the line the scan is, with how many bytes the field has so far.
#[derive(Debug, Clone, Copy)]
enum Field {
    Name(usize),
    InvitationKey(usize),
    Major(usize),
    Minor(usize),
}

impl Detector for TincDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let undecided = Verdict::need_up_to(prefix.len() + 1, MAX_LINE);
        match starts_like(prefix, ID_REQUEST) {
            None => return Verdict::NoMatch,
            Some(false) => return undecided,
            Some(true) => {}
        }
        let mut field = Field::Name(0);
        for &b in &prefix[ID_REQUEST.len()..] {
            field = match (field, b) {
                (Field::Name(n), _) if is_name_byte(b) && n < MAX_NAME => Field::Name(n + 1),
                (Field::Name(0), b'?') => Field::InvitationKey(0),
                (Field::Name(n), b' ') if n > 0 => Field::Major(0),
                (Field::InvitationKey(n), _) if is_base64(b) && n < INVITATION_KEY_LEN => Field::InvitationKey(n + 1),
                (Field::InvitationKey(INVITATION_KEY_LEN), b' ') => Field::Major(0),
                (Field::Major(0), b'0') => return Verdict::NoMatch,
                (Field::Major(n), b'0'..=b'9') if n < MAX_MAJOR_DIGITS => Field::Major(n + 1),
                (Field::Major(n), b'.') if n > 0 => Field::Minor(0),
                (Field::Minor(n), b'0'..=b'9') if n < MAX_MINOR_DIGITS => Field::Minor(n + 1),
                (Field::Major(n) | Field::Minor(n), b'\n') if n > 0 => return Verdict::MATCH,
                _ => return Verdict::NoMatch,
            };
        }
        undecided
    }
}

/// What tinc's `check_id` accepts in a node name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// tinc's base64 alphabet for keys (the original one, `+` and `/`).
fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

impl FromConf for TincDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
