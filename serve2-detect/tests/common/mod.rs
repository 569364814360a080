//! What the crate's integration tests share: the captured first flights.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};

/// The repository's captures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Every captured flight (`.bin` under `tests/fixtures/`), by its path
/// there, sorted.
pub fn captured_flights() -> Vec<(String, Vec<u8>)> {
    let mut flights = Vec::new();
    let mut folders = vec![fixtures()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "bin") {
                let name = path.strip_prefix(fixtures()).unwrap().display().to_string();
                flights.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    flights.sort();
    assert!(flights.len() > 50, "only {} captured flights", flights.len());
    flights
}

/// Every captured UDP flow (`.udp` under `tests/fixtures/udp/`), by its
/// path under `tests/fixtures/`, sorted.
pub fn captured_udp_flows() -> Vec<(String, Vec<Vec<u8>>)> {
    let root = fixtures();
    let mut flows = Vec::new();
    let mut folders = vec![root.join("udp")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "udp") {
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                let file = std::fs::read(&path).unwrap();
                let datagrams =
                    serve2_detect::testing::decode_datagrams(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
                flows.push((name, datagrams));
            }
        }
    }
    flows.sort();
    assert!(flows.len() >= 20, "only {} captured UDP flows", flows.len());
    flows
}

/// xorshift64: reproducible, no crate needed.
#[allow(dead_code)] // not every test file uses it
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
