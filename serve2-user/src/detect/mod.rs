//! Protocol detection: the pure detectors of [`serve2_detect`] (re-exported
//! here) and the engine that drives them over a connection.
//!
//! A [`Detector`] is a pure function over the bytes buffered so far: it says
//! [`Verdict::Match`], [`Verdict::NoMatch`] or [`Verdict::NeedMore`]. The
//! engine reads only what the remaining detectors can still use, runs every
//! undecided detector over the whole prefix after each read, and picks the
//! first match in configured order.

pub(crate) mod engine;

pub use serve2_detect::*;
