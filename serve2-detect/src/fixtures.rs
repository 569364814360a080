//! The repository's captured first flights, for the detectors' unit tests.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Every captured flight (`.bin` under `tests/fixtures/`), by its path
/// there, sorted.
pub(crate) fn all() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut flights = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "bin") {
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                flights.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    flights.sort();
    flights
}

/// Every captured flight but those of `kind`'s own folder.
pub(crate) fn foreign(kind: &str) -> Vec<(String, Vec<u8>)> {
    let own = format!("{kind}/");
    all().into_iter().filter(|(name, _)| !name.starts_with(&own)).collect()
}
