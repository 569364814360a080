//! `serve2d schema`: prints the configuration's JSON Schema, the one
//! checked in as docs/config.schema.json.

use std::process::Command;

use crate::support::process::binary;

#[test]
fn schema_prints_the_checked_in_json_schema() {
    let output = Command::new(binary()).arg("schema").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, serve2::config::schema());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.schema.json");
    let checked_in: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(printed == checked_in, "docs/config.schema.json is stale: `serve2d schema > docs/config.schema.json`");
    assert_eq!(printed["title"], serve2::config::SCHEMA_TITLE);
}
