//! `wireguard`: a WireGuard peer's first datagram (the WireGuard whitepaper
//! §5.4, as wireguard-go and the kernel implement it).
//!
//! Two first datagrams are recognised:
//!
//! * a **handshake initiation**: exactly 148 bytes, type 1 and three zero
//!   reserved bytes; with `publicKey` (the server's public key, base64) its
//!   `mac1` must verify too: keyed BLAKE2s-128 over the 116 bytes before it,
//!   keyed with BLAKE2s-256(`"mac1----"` ‖ public key). Only an initiation
//!   made for that server passes, so several WireGuard servers can share one
//!   port and junk of the right length is refused;
//! * a **keepalive**: exactly 32 bytes, type 4 (transport data) and zero
//!   reserved bytes; its counter and tag are encrypted for a session, and it
//!   carries no `mac1`, so only an entry without `publicKey` claims it (a
//!   flow can start with one when a session outlives the flow's entry in
//!   serve2's table).
//!
//! Longer transport data is not claimed: a peer whose data goes unanswered
//! starts a new handshake within seconds (REKEY_TIMEOUT), and that is
//! recognised. Handshake responses and cookie replies are sent by servers.
//! The first datagram decides; later ones are not read.

use base64::Engine;
use blake2::digest::Mac;
use blake2::digest::consts::U16;
use blake2::{Blake2s256, Blake2sMac, Digest};
use serde::Deserialize;

use crate::datagram::{DatagramDetector, DatagramVerdict, by_first};
use crate::registry::ConfError;
use crate::udp_registry::FromUdpConf;

/// A handshake initiation's length.
pub const INITIATION_LEN: usize = 148;
/// A keepalive's length: the transport header and an empty payload's tag.
pub const KEEPALIVE_LEN: usize = 32;
const TYPE_INITIATION: u8 = 1;
const TYPE_TRANSPORT: u8 = 4;
/// Where `mac1` starts: it covers everything before it.
const MAC1_AT: usize = 116;
const MAC_LEN: usize = 16;
const LABEL_MAC1: &[u8] = b"mac1----";

/// Recognises a WireGuard handshake initiation (for one server's key, if
/// given) or keepalive (see the module docs).
#[derive(Clone, Default)]
pub struct WireGuardDetector {
    /// BLAKE2s-256("mac1----" ‖ server public key), when a key is given.
    mac1_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for WireGuardDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireGuardDetector").field("checks_mac1", &self.mac1_key.is_some()).finish()
    }
}

/// The keys of `wireguard`'s `conf`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    /// The server's public key, base64 (as `wg pubkey` prints it): only
    /// initiations whose `mac1` verifies with it match, and keepalives do
    /// not. Absent: any initiation or keepalive.
    #[serde(default)]
    pub public_key: Option<String>,
}

impl WireGuardDetector {
    /// A detector for the server whose public key is `public_key`, or any
    /// server.
    pub fn new(public_key: Option<&[u8; 32]>) -> Self {
        let mac1_key =
            public_key.map(|key| Blake2s256::new().chain_update(LABEL_MAC1).chain_update(key).finalize().into());
        Self { mac1_key }
    }

    fn judge(&self, datagram: &[u8]) -> bool {
        let [kind, 0, 0, 0, ..] = *datagram else {
            return false;
        };
        match (kind, datagram.len(), &self.mac1_key) {
            (TYPE_INITIATION, INITIATION_LEN, None) => true,
            (TYPE_INITIATION, INITIATION_LEN, Some(key)) => mac1_verifies(key, datagram),
            (TYPE_TRANSPORT, KEEPALIVE_LEN, None) => true,
            _ => false,
        }
    }
}

/// Whether the initiation's `mac1` is the keyed BLAKE2s-128 of what precedes
/// it (compared in constant time, although nothing here is secret).
fn mac1_verifies(key: &[u8; 32], initiation: &[u8]) -> bool {
    let Ok(mut mac) = Blake2sMac::<U16>::new_from_slice(key) else {
        return false;
    };
    mac.update(&initiation[..MAC1_AT]);
    mac.verify_slice(&initiation[MAC1_AT..MAC1_AT + MAC_LEN]).is_ok()
}

impl DatagramDetector for WireGuardDetector {
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict {
        by_first(datagrams, |first| self.judge(first))
    }
}

impl FromUdpConf for WireGuardDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        let Some(encoded) = conf.public_key else {
            return Ok(Self::new(None));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| ConfError::key("publicKey", format!("not base64: {e}")))?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            ConfError::key("publicKey", format!("a WireGuard public key is 32 bytes, this one {}", bytes.len()))
        })?;
        Ok(Self::new(Some(&key)))
    }
}

#[cfg(test)]
mod tests;
