//! The repository's captured first flights, for the detectors' unit tests.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Every file ending in `.{extension}` under `folder`, by its path under
/// `tests/fixtures/`, sorted.
fn files(folder: &Path, extension: &str) -> Vec<(String, Vec<u8>)> {
    let root = root();
    let mut found = Vec::new();
    let mut folders = vec![folder.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                found.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// Every captured flight (`.bin` under `tests/fixtures/`), by its path
/// there, sorted.
pub(crate) fn all() -> Vec<(String, Vec<u8>)> {
    files(&root(), "bin")
}

/// Every captured flight but those of `kind`'s own folder.
pub(crate) fn foreign(kind: &str) -> Vec<(String, Vec<u8>)> {
    let own = format!("{kind}/");
    all().into_iter().filter(|(name, _)| !name.starts_with(&own)).collect()
}

/// Every captured UDP flow (`.udp` under `tests/fixtures/udp/`, see
/// [`crate::testing::decode_datagrams`]), by its path under
/// `tests/fixtures/`, sorted.
pub(crate) fn udp_all() -> Vec<(String, Vec<Vec<u8>>)> {
    let flows: Vec<_> = files(&root().join("udp"), "udp")
        .into_iter()
        .map(|(name, file)| {
            let datagrams = crate::testing::decode_datagrams(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, datagrams)
        })
        .collect();
    assert!(flows.len() >= 20, "only {} UDP captures", flows.len());
    flows
}

/// The UDP captures of `kind`'s folder (`tests/fixtures/udp/{kind}/`).
pub(crate) fn udp_own(kind: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    let own = format!("udp/{kind}/");
    let flows: Vec<_> = udp_all().into_iter().filter(|(name, _)| name.starts_with(&own)).collect();
    assert!(!flows.is_empty(), "no capture in tests/fixtures/{own}");
    flows
}

/// Every UDP capture but those of `kind`'s own folder.
pub(crate) fn udp_foreign(kind: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    let own = format!("udp/{kind}/");
    udp_all().into_iter().filter(|(name, _)| !name.starts_with(&own)).collect()
}

/// Borrows a flow's datagrams as the detectors take them.
pub(crate) fn slices(datagrams: &[Vec<u8>]) -> Vec<&[u8]> {
    datagrams.iter().map(Vec::as_slice).collect()
}
