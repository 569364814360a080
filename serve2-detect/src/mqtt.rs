//! `mqtt`: an MQTT CONNECT packet, protocol 3.1 (`MQIsdp`), 3.1.1 or 5.
//!
//! A client's first packet must be CONNECT (MQTT 3.1.1 §3.1, MQTT 5 §3.1):
//!
//! - fixed header byte `0x10` (packet type 1, flags 0);
//! - Remaining Length, a variable byte integer of 1 to 4 bytes (7 bits each,
//!   least significant first, top bit = more bytes follow). Overlong
//!   encodings (a last byte of zero after a continuation) are malformed in
//!   MQTT 5 (§1.5.5) and not what clients produce, so they are refused; so is a
//!   length too short to hold the variable header and a client id length;
//! - protocol name `00 04 "MQTT"` with level 4 (3.1.1) or 5, or
//!   `00 06 "MQIsdp"` with level 3 (3.1). Levels `0x84` and `0x83` are also
//!   accepted: a mosquitto bridge sets the top bit of the level to say it is
//!   a bridge (`try_private`, on by default; seen from 3.1 and 3.1.1 bridges, not
//!   from MQTT 5 ones);
//! - connect flags: the reserved bit 0 must be clear, the Will QoS cannot be
//!   3, Will QoS and Will Retain must be zero without the Will flag, and
//!   before MQTT 5 a password needs a user name. Brokers close the
//!   connection on any of these, so no real client sends them.
//!
//! The detector matches on the connect flags byte (10 bytes for a short
//! 3.1.1 CONNECT, at most 15) and refuses at the first byte that cannot fit:
//! the first byte for anything but `0x10`.

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict, starts_like};

/// The CONNECT fixed header byte: packet type 1, no flags.
const CONNECT: u8 = 0x10;

/// The most bytes a Remaining Length may take.
const MAX_LENGTH_BYTES: usize = 4;

/// The protocol name of MQTT 3.1.1 and 5, with its length prefix.
const MQTT: &[u8] = b"\x00\x04MQTT";

/// The protocol name of MQTT 3.1, with its length prefix.
const MQISDP: &[u8] = b"\x00\x06MQIsdp";

/// The top bit of the protocol level a mosquitto bridge sets.
const BRIDGE_BIT: u8 = 0x80;

/// The longest a decision can take: header, 4 length bytes, the longer
/// name, level and flags.
const MAX_DECISION: usize = 1 + MAX_LENGTH_BYTES + MQISDP.len() + 2;

/// The shortest Remaining Length of any CONNECT (3.1.1's).
const MIN_REMAINING: u32 = Version::V311.min_remaining();

/// Connect flag bits (MQTT 3.1.1 §3.1.2.3).
const RESERVED: u8 = 0x01;
const WILL: u8 = 0x04;
const WILL_QOS: u8 = 0x18;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USER_NAME: u8 = 0x80;

/// Recognises an MQTT CONNECT packet (3.1, 3.1.1, 5).
#[derive(Debug, Clone, Default)]
pub struct MqttDetector;

impl Detector for MqttDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let undecided = |max: usize| Verdict::need_up_to(prefix.len() + 1, max);
        match prefix.first() {
            None => return undecided(MAX_DECISION),
            Some(&CONNECT) => {}
            Some(_) => return Verdict::NoMatch,
        }
        let (remaining, header_len) = match remaining_length(&prefix[1..]) {
            Length::Invalid => return Verdict::NoMatch,
            Length::Partial => return undecided(MAX_DECISION),
            Length::Value { value, bytes } => (value, 1 + bytes),
        };
        if remaining < MIN_REMAINING {
            return Verdict::NoMatch;
        }
        let variable = &prefix[header_len..];
        let name = match (starts_like(variable, MQTT), starts_like(variable, MQISDP)) {
            (None, None) => return Verdict::NoMatch,
            (Some(true), _) => MQTT,
            (_, Some(true)) => MQISDP,
            (Some(false), None) => return undecided(header_len + MQTT.len() + 2),
            // The names differ at their second byte: both are open only
            // before it.
            (_, Some(false)) => return undecided(header_len + MQISDP.len() + 2),
        };
        let Some(&level) = variable.get(name.len()) else {
            return undecided(header_len + name.len() + 2);
        };
        let Some(version) = Version::of(name, level) else {
            return Verdict::NoMatch;
        };
        if remaining < version.min_remaining() {
            return Verdict::NoMatch;
        }
        match variable.get(name.len() + 1) {
            None => undecided(header_len + name.len() + 2),
            Some(&flags) if version.flags_valid(flags) => Verdict::MATCH,
            Some(_) => Verdict::NoMatch,
        }
    }
}

/// A Remaining Length read from the bytes after the fixed header byte.
enum Length {
    /// Five bytes, or an overlong encoding.
    Invalid,
    /// Every byte so far has the continuation bit.
    Partial,
    /// The length and how many bytes encoded it.
    Value {
        /// The decoded length.
        value: u32,
        /// 1 to 4.
        bytes: usize,
    },
}

/// Decodes an MQTT variable byte integer at the start of `bytes`.
fn remaining_length(bytes: &[u8]) -> Length {
    let mut value = 0u32;
    for (i, &b) in bytes.iter().take(MAX_LENGTH_BYTES).enumerate() {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A zero after a continuation byte adds nothing: a longer
            // encoding than needed.
            return if i > 0 && b == 0 { Length::Invalid } else { Length::Value { value, bytes: i + 1 } };
        }
    }
    if bytes.len() >= MAX_LENGTH_BYTES { Length::Invalid } else { Length::Partial }
}

/// The protocol revision named by the protocol name and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `MQIsdp`, level 3.
    V31,
    /// `MQTT`, level 4.
    V311,
    /// `MQTT`, level 5.
    V5,
}

impl Version {
    /// The revision of protocol `name` at `level`, if it is one.
    fn of(name: &[u8], level: u8) -> Option<Version> {
        let bridge = level & BRIDGE_BIT != 0;
        match (name == MQTT, level & !BRIDGE_BIT, bridge) {
            (false, 3, _) => Some(Version::V31),
            (true, 4, _) => Some(Version::V311),
            // mosquitto sends a plain 5 from MQTT 5 bridges (see the bridge5 capture).
            (true, 5, false) => Some(Version::V5),
            _ => None,
        }
    }

    /// The shortest Remaining Length of a CONNECT: the variable header (name,
    /// level, flags, keep alive; MQTT 5 adds at least a property length
    /// byte) and the client id's length field.
    const fn min_remaining(self) -> u32 {
        // name + level + flags + keep alive (2) [+ property length] + client id length (2)
        match self {
            Version::V31 => 8 + 1 + 1 + 2 + 2,
            Version::V311 => 6 + 1 + 1 + 2 + 2,
            Version::V5 => 6 + 1 + 1 + 2 + 1 + 2,
        }
    }

    /// Whether a broker of this revision would accept the connect flags.
    fn flags_valid(self, flags: u8) -> bool {
        let will_qos = (flags & WILL_QOS) >> 3;
        let will_ok = if flags & WILL == 0 { flags & (WILL_QOS | WILL_RETAIN) == 0 } else { will_qos < 3 };
        let password_ok = self == Version::V5 || flags & PASSWORD == 0 || flags & USER_NAME != 0;
        flags & RESERVED == 0 && will_ok && password_ok
    }
}

impl FromConf for MqttDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
