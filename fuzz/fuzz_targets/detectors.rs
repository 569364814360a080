//! Every detector on arbitrary bytes: no panic, the `NeedMore` contract,
//! and monotonicity over the flight's prefixes (`serve2_fuzz::check_contract`).
//!
//! Input: a kind index and a conf variant (one byte each, taken modulo the
//! counts), then the flight. `cargo xtask fuzz` seeds the corpus with every
//! captured flight behind every kind index.

#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serve2_fuzz::{Kind, check_contract, kinds};

#[derive(Debug, Arbitrary)]
struct Input {
    kind: u8,
    conf: u8,
    flight: Vec<u8>,
}

static KINDS: LazyLock<Vec<Kind>> = LazyLock::new(kinds);

fuzz_target!(|input: Input| {
    let kind = &KINDS[usize::from(input.kind) % KINDS.len()];
    let variant = &kind.variants[usize::from(input.conf) % kind.variants.len()];
    check_contract(variant, &input.flight);
});
