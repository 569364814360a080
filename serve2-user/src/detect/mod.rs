//! Protocol detection.
//!
//! A [`Detector`] is a pure function over the bytes buffered so far: it says
//! [`Verdict::Match`], [`Verdict::NoMatch`] or [`Verdict::NeedMore`]. The engine
//! (the `engine` module) reads only what the remaining detectors can still use, runs
//! every undecided detector over the whole prefix after each read, and picks
//! the first match in configured order.
//!
//! Detectors must be monotonic: once a detector says `Match` or `NoMatch` for a
//! prefix, it must say the same for every longer prefix. That is what makes the
//! verdict independent of how the client's bytes were split into segments.

pub(crate) mod engine;
mod http;
mod magic;
pub mod tls;

pub use http::{H2_PREFACE, HttpDetector};
pub use magic::MagicDetector;
pub use tls::{ClientHelloDetector, TlsStateMatcher};

use crate::conn::TlsInfo;

/// A detector's answer for the bytes buffered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The prefix identifies the protocol.
    Match,
    /// The prefix can never become this protocol.
    NoMatch,
    /// Undecided: at least this many bytes (in total, counted from the first
    /// byte) must be buffered before the detector can answer.
    NeedMore(usize),
}

/// What a detector may know about the connection besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectContext<'a> {
    /// The TLS session this layer was decrypted from, if the nearest transport
    /// is TLS terminated by serve2.
    pub tls: Option<&'a TlsInfo>,
    /// How many transports (such as TLS) this layer is nested in; 0 for the
    /// raw TCP connection.
    pub depth: u8,
}

/// How many bytes the engine may buffer on a detector's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteLimit {
    /// The configured plaintext cap (`maxRead`).
    MaxRead,
    /// A detector-specific cap, for formats whose first message is larger than
    /// any sensible `maxRead` (a TLS ClientHello).
    AtLeast(usize),
}

/// Recognises one protocol from the first bytes a client sends.
///
/// Implementations must be pure and monotonic (see the module docs) and
/// cheap: they run after every read over the whole buffered prefix.
pub trait Detector: Send + Sync + std::fmt::Debug + 'static {
    /// Judges the buffered prefix. `prefix` may be empty (before the first
    /// read); detectors that decide on connection state alone, like
    /// [`TlsStateMatcher`], answer then.
    fn detect(&self, prefix: &[u8], ctx: &DetectContext<'_>) -> Verdict;

    /// The most bytes this detector may ask the engine to buffer. A detector
    /// still undecided at its limit is treated as [`Verdict::NoMatch`].
    fn byte_limit(&self) -> ByteLimit {
        ByteLimit::MaxRead
    }
}

/// A detector that never matches: the detector of a default-only protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverDetector;

impl Detector for NeverDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers asserting that a detector's verdict does not depend on how the
    //! input was segmented.
    use super::*;

    /// Runs `detector` over every prefix of `flight`, as the engine would see
    /// them when the client sends one byte per write, and returns the verdict
    /// reached at the first decisive prefix (or the last verdict).
    pub fn verdict_byte_by_byte(detector: &dyn Detector, flight: &[u8], ctx: &DetectContext<'_>) -> Verdict {
        let mut last = Verdict::NeedMore(1);
        for end in 0..=flight.len() {
            let verdict = detector.detect(&flight[..end], ctx);
            if let Verdict::NeedMore(total) = verdict {
                assert!(total > end, "NeedMore({total}) must exceed the {end} bytes buffered");
            } else {
                // Monotonic: every longer prefix must agree.
                for longer in end..=flight.len() {
                    assert_eq!(
                        detector.detect(&flight[..longer], ctx),
                        verdict,
                        "verdict changed between {end} and {longer} bytes"
                    );
                }
                return verdict;
            }
            last = verdict;
        }
        last
    }

    /// Asserts the whole flight and the byte-by-byte run agree, and returns
    /// the verdict.
    pub fn assert_segmentation_independent(detector: &dyn Detector, flight: &[u8], ctx: &DetectContext<'_>) -> Verdict {
        let whole = detector.detect(flight, ctx);
        let split = verdict_byte_by_byte(detector, flight, ctx);
        assert_eq!(whole, split, "whole flight and one byte per write disagree");
        whole
    }
}
