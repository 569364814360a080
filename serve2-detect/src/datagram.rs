//! The UDP contract: a [`DatagramDetector`] judges the datagrams a new UDP
//! flow has sent so far.
//!
//! Over UDP the unit is the datagram, not the byte: each element of the list
//! is one whole datagram, in arrival order, and a detector answers
//! [`DatagramVerdict::Match`], [`DatagramVerdict::NoMatch`] or
//! [`DatagramVerdict::NeedMore`] (wait for another datagram of this flow).
//! Most protocols decide on the first datagram; a QUIC Initial whose
//! ClientHello is spread over several datagrams (post-quantum key shares)
//! needs them all before `serverNames` or `alpn` can be read.
//!
//! Detectors must be
//!
//! * **monotonic**: once they answer `Match` or `NoMatch` for a list, they
//!   answer the same for every longer list that starts with it (so the
//!   engine may stop calling a decided detector);
//! * **pure and total**: no I/O, no state between calls, no panic on any
//!   bytes; an empty list is `NeedMore`;
//! * **cheap to refuse**: first-byte and length checks come before any
//!   cryptography, so a flow of another protocol costs a few comparisons.
//!
//! A detector may allocate (a QUIC Initial must be decrypted into a scratch
//! buffer): UDP detection runs once per new flow, not once per read.
//! [`crate::testing::judge_datagrams`] checks the contract over every prefix
//! of a captured list. The kinds a configuration can name are in
//! [`crate::udp_registry`].

/// A datagram detector's answer for the datagrams received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramVerdict {
    /// The flow is this protocol.
    Match,
    /// The flow can never be this protocol, whatever datagrams follow.
    NoMatch,
    /// Undecided: wait for another datagram of this flow.
    NeedMore,
}

impl DatagramVerdict {
    /// Whether this is a decision (`Match` or `NoMatch`).
    pub const fn is_decided(self) -> bool {
        !matches!(self, DatagramVerdict::NeedMore)
    }
}

/// Recognises one protocol from the first datagrams of a UDP flow.
pub trait DatagramDetector: Send + Sync + std::fmt::Debug + 'static {
    /// Judges the flow's datagrams so far, in arrival order, each a whole
    /// datagram. Must be monotonic and pure (see the module docs).
    fn detect(&self, datagrams: &[&[u8]]) -> DatagramVerdict;
}

/// Judges a flow by its first datagram alone, for protocols whose first
/// datagram is decisive: `NeedMore` only while there is none.
pub(crate) fn by_first(datagrams: &[&[u8]], judge: impl FnOnce(&[u8]) -> bool) -> DatagramVerdict {
    match datagrams.first() {
        None => DatagramVerdict::NeedMore,
        Some(first) if judge(first) => DatagramVerdict::Match,
        Some(_) => DatagramVerdict::NoMatch,
    }
}
