//! `regex`: user patterns (`regex::bytes` syntax) on the buffered prefix.
//!
//! Each pattern is compiled at configuration time to a dense DFA
//! (regex-automata), which `detect` walks over the prefix from its first
//! byte. The detector is tri-state, not timeout-driven:
//!
//! - **match** as soon as some pattern matches somewhere in the prefix;
//! - **no** as soon as no pattern can match any extension of the prefix (every
//!   DFA is in its dead state);
//! - otherwise **need more**, asking for whatever the engine allows, so a
//!   detector still undecided at `maxRead` is treated as No.
//!
//! # Anchored and unanchored patterns
//!
//! A pattern that starts with `^` or `\A` (in every alternative) is anchored
//! at the first byte and is refused at the first byte that leaves it no way
//! to match: `^SSH-` refuses a TLS ClientHello after 1 byte. Any other
//! pattern may match anywhere in the prefix, as if written
//! `(?s-u:.)*?(?:PATTERN)`; such a pattern can never be ruled out before
//! `maxRead`, so it holds back every protocol configured after it until the
//! cap for each connection it does not match. Prefer anchored patterns.
//!
//! # The prefix is a stream, not a haystack
//!
//! More bytes may follow, so:
//!
//! - `$` and `\z` (end of input) could only ever match at the end of the
//!   connection, never during detection: patterns using them are refused at
//!   configuration time. Write `(?m)$` or `\r?\n` for an end of line.
//! - A match that depends on the byte after it (`\b`, `\B`, `(?m)$`,
//!   `\b{end}`…) is only seen once that byte has arrived: `foo\b` matches
//!   `foo ` but not yet `foo`, and a match that would end exactly at
//!   `maxRead` is lost. Other patterns match as soon as their last byte is
//!   buffered.
//! - Word boundaries are ASCII (`\b` is read as `(?-u:\b)`): a DFA cannot
//!   follow Unicode word boundaries over arbitrary bytes. This differs from
//!   `regex::bytes` only next to non-ASCII letters and digits.
//! - A pattern that matches the empty string would match every connection
//!   before it sent anything: it is refused at configuration time.
//!
//! Each pattern's DFA is limited to [`DFA_SIZE_LIMIT`]; bounded repetitions
//! of Unicode classes (`\w{50}`) are the usual way to exceed it (`(?-u)`
//! makes classes ASCII and the DFA far smaller).
//!
//! The UDP `regex` kind ([`DatagramRegexDetector`]) compiles the same way and
//! judges a flow's first datagram whole: there the end of the datagram is
//! the end of the input, so `$`, `\z` and `\b` at the end mean what they
//! mean in `regex::bytes`.

use std::fmt;

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, LookSet, Repetition};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use crate::registry::{ConfError, ConfKey, FromConf};
use crate::{DetectContext, Detector, Verdict};

mod datagram;
pub use datagram::DatagramRegexDetector;

/// The most memory one pattern's DFA (and its NFA) may take, in bytes.
pub const DFA_SIZE_LIMIT: usize = 1 << 20;

/// Recognises a prefix that one of the configured patterns matches.
#[derive(Debug, Clone, Default)]
pub struct RegexDetector {
    /// In configuration order; never empty once built from a conf.
    patterns: Vec<Compiled>,
}

/// The keys of `regex`'s `conf`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    /// One pattern or an array of them, in `regex::bytes` syntax.
    pub patterns: Patterns,
}

/// `patterns`: a string, or an array of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(pub Vec<String>);

/// One pattern, ready to walk.
#[derive(Debug, Clone)]
struct Compiled {
    dfa: dense::DFA<Vec<u32>>,
    /// The start state at the first byte (it does not depend on the prefix:
    /// nothing precedes the first byte).
    start: StateID,
    /// Whether a match at the end of the prefix stays a match whatever
    /// follows (no look-ahead), so the DFA's end-of-input transition may be
    /// taken.
    end_is_final: bool,
}

impl Compiled {
    /// `Some(true)`: matched; `Some(false)`: can never match; `None`:
    /// undecided.
    fn judge(&self, prefix: &[u8]) -> Option<bool> {
        let mut state = self.start;
        for &b in prefix {
            state = self.dfa.next_state(state, b);
            if self.dfa.is_special_state(state) {
                if self.dfa.is_match_state(state) {
                    return Some(true);
                }
                // No quit bytes are configured; a quit state would be as
                // final as a dead one.
                if self.dfa.is_dead_state(state) || self.dfa.is_quit_state(state) {
                    return Some(false);
                }
            }
        }
        // Dense DFAs report a match one byte late: a match ending at the last
        // byte shows only on the next byte or at the end of input.
        (self.end_is_final && self.dfa.is_match_state(self.dfa.next_eoi_state(state))).then_some(true)
    }

    /// Whether the pattern matches somewhere in `input`, a whole input that
    /// nothing follows (a datagram).
    fn matches_whole(&self, input: &[u8]) -> bool {
        let mut state = self.start;
        for &b in input {
            state = self.dfa.next_state(state, b);
            if self.dfa.is_special_state(state) {
                if self.dfa.is_match_state(state) {
                    return true;
                }
                if self.dfa.is_dead_state(state) || self.dfa.is_quit_state(state) {
                    return false;
                }
            }
        }
        self.dfa.is_match_state(self.dfa.next_eoi_state(state))
    }
}

/// What follows the bytes a pattern is run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A stream prefix: more bytes may follow (TCP).
    Stream,
    /// A whole datagram: nothing follows.
    Datagram,
}

impl Detector for RegexDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        let mut undecided = false;
        for pattern in &self.patterns {
            match pattern.judge(prefix) {
                Some(true) => return Verdict::MATCH,
                Some(false) => {}
                None => undecided = true,
            }
        }
        if undecided { Verdict::need_up_to(prefix.len() + 1, usize::MAX) } else { Verdict::NoMatch }
    }
}

impl FromConf for RegexDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        Ok(Self { patterns: compile_all(&conf.patterns, Input::Stream)? })
    }
}

/// Compiles every pattern of `patterns`; the error names the bad one.
fn compile_all(patterns: &Patterns, input: Input) -> Result<Vec<Compiled>, ConfError> {
    if patterns.0.is_empty() {
        return Err(ConfError::key("patterns", "at least one pattern is needed"));
    }
    patterns
        .0
        .iter()
        .enumerate()
        .map(|(i, pattern)| {
            compile(pattern, input)
                .map_err(|message| ConfError::at(vec![ConfKey::Key("patterns".to_owned()), ConfKey::Index(i)], message))
        })
        .collect()
}

/// Look-arounds that only look behind: a match using only these is final.
fn look_behind_only() -> LookSet {
    LookSet::empty()
        .insert(Look::Start)
        .insert(Look::StartLF)
        .insert(Look::WordStartHalfAscii)
        .insert(Look::WordStartHalfUnicode)
}

/// Compiles one pattern for `input`, or says why it cannot be used.
fn compile(pattern: &str, input: Input) -> Result<Compiled, String> {
    // `regex::bytes` syntax: Unicode on by default, may match invalid UTF-8.
    let hir = regex_syntax::ParserBuilder::new().utf8(false).build().parse(pattern).map_err(|e| e.to_string())?;
    let properties = hir.properties();
    if input == Input::Stream && properties.look_set().contains(Look::End) {
        return Err(format!(
            "`{pattern}`: `$` and `\\z` (end of input) never match while a connection is being detected; \
             write `(?m)$` or `\\r?\\n` for an end of line"
        ));
    }
    if properties.minimum_len() == Some(0) {
        return Err(format!(
            "`{pattern}` matches the empty string, hence every connection, even one that sent nothing"
        ));
    }
    let end_is_final = properties.look_set().subtract(look_behind_only()).is_empty();
    let anchored = properties.look_set_prefix().contains(Look::Start);
    let hir = ascii_word_boundaries(hir);

    let too_large = || {
        format!(
            "`{pattern}` is too complex: its automaton would exceed {} MiB (bounded repetitions of Unicode \
             classes such as `\\w{{50}}` are the usual cause; `(?-u)` makes classes ASCII)",
            DFA_SIZE_LIMIT >> 20
        )
    };
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new().which_captures(thompson::WhichCaptures::None).nfa_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build_from_hir(&hir)
        .map_err(|e| if e.size_limit().is_some() { too_large() } else { format!("`{pattern}`: {e}") })?;
    let dfa = dense::Builder::new()
        .configure(
            dense::Config::new()
                // Only whether some match exists matters, not which one.
                .match_kind(MatchKind::All)
                .start_kind(if anchored { StartKind::Anchored } else { StartKind::Unanchored })
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .determinize_size_limit(Some(4 * DFA_SIZE_LIMIT)),
        )
        .build_from_nfa(&nfa)
        .map_err(|e| if e.is_size_limit_exceeded() { too_large() } else { format!("`{pattern}`: {e}") })?;
    let start = dfa
        .start_state(&start::Config::new().anchored(if anchored { Anchored::Yes } else { Anchored::No }))
        .map_err(|e| format!("`{pattern}`: {e}"))?;
    Ok(Compiled { dfa, start, end_is_final })
}

/// `hir` with Unicode word boundaries replaced by ASCII ones (a dense DFA
/// would otherwise have to give up on every non-ASCII byte).
fn ascii_word_boundaries(hir: Hir) -> Hir {
    if !hir.properties().look_set().contains_word_unicode() {
        return hir;
    }
    match hir.into_kind() {
        HirKind::Look(look) => Hir::look(match look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            other => other,
        }),
        HirKind::Repetition(rep) => {
            Hir::repetition(Repetition { sub: Box::new(ascii_word_boundaries(*rep.sub)), ..rep })
        }
        HirKind::Capture(cap) => Hir::capture(Capture { sub: Box::new(ascii_word_boundaries(*cap.sub)), ..cap }),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(ascii_word_boundaries).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(ascii_word_boundaries).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(literal) => Hir::literal(literal.0),
        HirKind::Class(class) => Hir::class(class),
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Patterns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a regex or an array of regexes")
            }
            fn visit_str<E: serde::de::Error>(self, pattern: &str) -> Result<Patterns, E> {
                Ok(Patterns(vec![pattern.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Patterns, A::Error> {
                let mut patterns = Vec::new();
                while let Some(pattern) = seq.next_element::<String>()? {
                    patterns.push(pattern);
                }
                Ok(Patterns(patterns))
            }
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

#[cfg(test)]
mod tests;

impl schemars::JsonSchema for Patterns {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Patterns".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1}
            ]
        })
    }
}
