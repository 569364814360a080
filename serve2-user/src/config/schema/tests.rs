//! The schema against its checked-in copy, the examples, and the loader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_aux::serde_introspection::serde_introspect;
use serde_json::{Value, json};

use super::schema;
use crate::config::raw::{
    CertPair, HttpConf, ProxyConf, ROUTE_KEYS, RawConfig, RawProtocol, RouteConf, TlsConf, TlsMatcherConf,
};
use crate::config::{Config, RawPolicy, RawSteer, kinds};

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the generated schema compiles")
}

/// The schema's complaints about `doc`, one line each.
fn complaints(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("at `{}`: {e}", e.instance_path())).collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

fn fields(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|&name| name.to_owned()).collect()
}

#[test]
fn the_checked_in_schema_is_current() {
    let path = repo_file("docs/config.schema.json");
    let generated = schema();
    if std::env::var_os("SERVE2_BLESS").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let checked_in: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        checked_in == generated,
        "docs/config.schema.json is not the schema the config types generate; refresh it with \
         `serve2d schema > docs/config.schema.json` or `SERVE2_BLESS=1 cargo test -p serve2 --lib config::schema`"
    );
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let generated = schema();
    jsonschema::meta::validate(&generated).unwrap();
    assert_eq!(generated["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(generated["title"], super::SCHEMA_TITLE);
}

/// The ```json blocks of README.md as configurations to validate. A block
/// that is a JSON object is a whole configuration, or, when it has `kind`,
/// one `protocols` entry (validated as `{"protocols": [entry]}`); a block
/// that is JSON only once wrapped in `{…}` (`"steer": {…}, "policies": […]`)
/// is top-level keys, validated wrapped. Any other block fails the test, so
/// no example escapes.
fn readme_examples() -> Vec<(usize, Value)> {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let mut examples = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (number, line) in readme.lines().enumerate() {
        match &mut block {
            None if line.trim_start().starts_with("```json") => block = Some((number + 2, String::new())),
            None => {}
            Some((first, text)) if line.trim_start().starts_with("```") => {
                let value = match serde_json::from_str::<Value>(text) {
                    Ok(entry) if entry.get("kind").is_some() => json!({ "protocols": [entry] }),
                    Ok(whole) => whole,
                    Err(_) => serde_json::from_str(&format!("{{{text}}}")).unwrap_or_else(|e| {
                        panic!("README.md:{first}: a ```json block that is neither JSON nor top-level keys: {e}")
                    }),
                };
                assert!(value.is_object(), "README.md:{first}: a ```json block that is not a configuration");
                examples.push((*first, value));
                block = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    examples
}

#[test]
fn example_conf_and_every_readme_example_validate() {
    let validator = validator();
    let example: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("example_conf.json")).unwrap()).unwrap();
    assert_eq!(complaints(&validator, &example), Vec::<String>::new(), "example_conf.json");
    let examples = readme_examples();
    assert!(!examples.is_empty(), "README.md has ```json examples");
    for (line, example) in examples {
        assert_eq!(complaints(&validator, &example), Vec::<String>::new(), "README.md:{line}: {example}");
    }
}

/// Documents the schema and the loader must both accept (`true`) or both
/// refuse (`false`).
fn agreement_cases() -> Vec<(&'static str, bool, Value)> {
    let one = |entry: Value| json!({"address": "127.0.0.1:0", "protocols": [entry]});
    vec![
        (
            "tlsroute with its keys",
            true,
            one(
                json!({"kind": "tlsroute", "conf": {"target": "127.0.0.1:9", "serverNames": ["*.example.com"], "alpn": ["h2"], "maxHello": 4096, "proxyProtocol": "v2"}}),
            ),
        ),
        (
            "an unknown key in tlsroute's conf",
            false,
            one(json!({"kind": "tlsroute", "conf": {"target": "127.0.0.1:9", "serverName": ["a.example"]}})),
        ),
        ("tlsroute without target", false, one(json!({"kind": "tlsroute", "conf": {"serverNames": ["a.example"]}}))),
        ("tlsroute without conf", false, one(json!({"kind": "tlsroute"}))),
        (
            "ssh with a key of another kind",
            false,
            one(json!({"kind": "ssh", "conf": {"target": "127.0.0.1:9", "hosts": ["a"]}})),
        ),
        (
            "regex with one pattern",
            true,
            one(json!({"kind": "regex", "conf": {"target": "127.0.0.1:9", "patterns": "^HELLO"}})),
        ),
        (
            "regex with no pattern",
            false,
            one(json!({"kind": "regex", "conf": {"target": "127.0.0.1:9", "patterns": []}})),
        ),
        (
            "httproute's hosts as a string",
            false,
            one(json!({"kind": "httproute", "conf": {"target": "127.0.0.1:9", "hosts": "a.example"}})),
        ),
        ("an unknown kind", false, one(json!({"kind": "sshh", "conf": {"target": "127.0.0.1:9"}}))),
        (
            "a default proxy without magic",
            true,
            one(json!({"kind": "proxy", "default": true, "conf": {"target": "127.0.0.1:9"}})),
        ),
        (
            "proxyProtocol v3",
            false,
            one(json!({"kind": "proxy", "conf": {"magic": "X", "target": "127.0.0.1:9", "proxyProtocol": "v3"}})),
        ),
        (
            "transparent as a string",
            false,
            one(json!({"kind": "ssh", "conf": {"target": "127.0.0.1:9", "transparent": "yes"}})),
        ),
        ("echo with a conf key", false, one(json!({"kind": "echo", "conf": {"magic": "ECHO"}}))),
        ("an unknown top-level key", false, json!({"adress": ":8080", "protocols": [{"kind": "echo"}]})),
        (
            "a forward route",
            true,
            json!({"address": "127.0.0.1:0", "forward": {"target": "127.0.0.1:9", "proxyProtocol": "v1"}}),
        ),
        (
            "an unknown key in forward",
            false,
            json!({"address": "127.0.0.1:0", "forward": {"target": "127.0.0.1:9", "tls": true}}),
        ),
        (
            "an unknown relay",
            false,
            json!({"address": "127.0.0.1:0", "relay": "zerocopy", "protocols": [{"kind": "echo"}]}),
        ),
        (
            "a port list that is one string",
            false,
            json!({"steer": {"ports": ["80,443"]}, "protocols": [{"kind": "echo"}]}),
        ),
        ("port 0", false, json!({"steer": {"ports": [0]}, "protocols": [{"kind": "echo"}]})),
        (
            "an unknown key in a policy",
            false,
            json!({"steer": {"ports": [80]}, "policies": [{"port": [80], "protocols": [{"kind": "echo"}]}]}),
        ),
    ]
}

#[test]
fn the_schema_and_the_loader_agree_on_what_is_a_configuration() {
    let validator = validator();
    for (what, valid, doc) in agreement_cases() {
        let schema_says = complaints(&validator, &doc);
        assert_eq!(schema_says.is_empty(), valid, "schema on {what}: {schema_says:?}");
        let loader_says = Config::parse(Path::new("case.json"), &doc.to_string());
        assert_eq!(loader_says.is_ok(), valid, "loader on {what}: {:?}", loader_says.err());
    }
}

#[test]
fn top_level_and_policy_keys_are_exactly_the_loaders() {
    let generated = schema();
    let defs = &generated["$defs"];
    assert_eq!(keys(&generated["properties"]), fields(serde_introspect::<RawConfig<'_>>()), "top level");
    assert_eq!(keys(&defs["RawPolicy"]["properties"]), fields(serde_introspect::<RawPolicy<'_>>()), "policies[]");
    assert_eq!(keys(&defs["RawSteer"]["properties"]), fields(serde_introspect::<RawSteer>()), "steer");
    assert_eq!(keys(&defs["RouteConf"]["properties"]), fields(serde_introspect::<RouteConf>()), "routes");
    assert_eq!(keys(&defs["CertPair"]["properties"]), fields(serde_introspect::<CertPair>()), "certs[]");
    for (kind, names) in [
        ("proxy", serde_introspect::<ProxyConf>()),
        ("tls", serde_introspect::<TlsConf>()),
        ("tlsmatcher", serde_introspect::<TlsMatcherConf>()),
        ("http", serde_introspect::<HttpConf>()),
        ("echo", &[]),
        ("discard", &[]),
    ] {
        let properties = defs[format!("{kind}Conf")].get("properties").cloned().unwrap_or_else(|| json!({}));
        assert_eq!(keys(&properties), fields(names), "{kind}'s conf");
    }
    for kind in serve2_detect::registry::KINDS {
        let mut generator = schemars::SchemaGenerator::default();
        let own = kind.conf_schema(&mut generator);
        let own = own.get("properties").cloned().unwrap_or_else(|| json!({}));
        let mut expected = keys(&own);
        assert!(ROUTE_KEYS.iter().all(|k| !expected.contains(*k)), "{}'s own keys shadow a route key", kind.name);
        expected.extend(ROUTE_KEYS.iter().map(|&k| k.to_owned()));
        assert_eq!(keys(&defs[format!("{}Conf", kind.name)]["properties"]), expected, "{}'s conf", kind.name);
    }
}

#[test]
fn every_kind_is_one_branch_keyed_by_kind() {
    let generated = schema();
    let branches = generated["$defs"]["Protocol"]["oneOf"].as_array().unwrap();
    let names: Vec<&str> = branches.iter().map(|b| b["properties"]["kind"]["const"].as_str().unwrap()).collect();
    assert_eq!(names, kinds().collect::<Vec<_>>());
    for branch in branches {
        assert_eq!(keys(&branch["properties"]), fields(serde_introspect::<RawProtocol<'_>>()));
        assert_eq!(branch["additionalProperties"], false);
    }
}
