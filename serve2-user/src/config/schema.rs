//! A JSON Schema of the configuration file (`serve2d schema`, checked in as
//! `docs/config.schema.json`), generated with schemars from the very types
//! the loader parses: [`super::raw`], `steer` and `policies`, and every
//! routed kind's own keys from [`serve2_detect::registry::KINDS`]. A key the
//! loader takes is in the schema and the other way round; the doc comments
//! are the descriptions.
//!
//! A `protocols` entry is a union discriminated by `kind`: one `oneOf`
//! branch per kind, `{"kind": {"const": K}, "default": bool, "conf": …}`,
//! with K's `conf` schema (a routed kind's own keys plus the route keys
//! `target`, `proxyProtocol`, `transparent`). Every object is closed
//! (`additionalProperties: false`) as the loader's `deny_unknown_fields` is,
//! so a misspelt key inside a kind's `conf` is caught. The schema checks
//! shapes and types; what needs the file system, name resolution or the
//! whole configuration (certificates exist, ports are steered, one default)
//! is left to `serve2d --check`.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use super::raw::{
    EmptyConf, HttpConf, OneOrMany, ProxyConf, RawConfig, RawProtocol, RouteConf, TlsConf, TlsMatcherConf,
};
use super::steer::PortSpec;
use super::{BUILTIN_KINDS, kinds};
use serve2_detect::registry::{KINDS, Kind};

/// The schema's `title`.
pub const SCHEMA_TITLE: &str = "serve2d configuration";

/// The JSON Schema (draft 2020-12) of a configuration file.
pub fn schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<RawConfig<'static>>();
    schema.insert("title".to_owned(), SCHEMA_TITLE.into());
    let mut schema = schema.to_value();
    plain_descriptions(&mut schema);
    schema
}

/// Turns rustdoc text into plain descriptions: lines of a paragraph joined
/// with spaces, intra-doc links (``[`x`]``) left as code.
fn plain_descriptions(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text.split("\n\n").map(|p| p.replace('\n', " ")).collect::<Vec<_>>().join("\n\n");
                        *text = text.replace("[`", "`").replace("`]", "`");
                    }
                    _ => plain_descriptions(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

impl JsonSchema for RawProtocol<'_> {
    fn schema_name() -> Cow<'static, str> {
        "Protocol".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut branches = Vec::new();
        for kind in BUILTIN_KINDS {
            if let Some((matches, conf)) = builtin(generator, kind) {
                branches.push(branch(generator, kind, matches, conf));
            }
        }
        for kind in KINDS {
            let conf = routed_conf(generator, kind);
            branches.push(branch(generator, kind.name, kind.matches, conf));
        }
        let names: Vec<&str> = kinds().collect();
        json_schema!({
            "description": format!(
                "One entry of `protocols`: `kind` (one of {}) decides what `conf` takes.",
                names.join(", ")
            ),
            "type": "object",
            "required": ["kind"],
            "oneOf": branches,
        })
    }
}

/// What a built-in kind matches, and its `conf` schema (inline).
fn builtin(generator: &mut SchemaGenerator, kind: &str) -> Option<(&'static str, Schema)> {
    Some(match kind {
        "proxy" => ("one of its `magic` strings; proxied to `target`", ProxyConf::json_schema(generator)),
        "tls" => (
            "a TLS ClientHello; TLS is terminated and the clear stream detected again",
            TlsConf::json_schema(generator),
        ),
        "tlsmatcher" => (
            "the TLS session the stream came out of (SNI, ALPN); proxied to `target`",
            TlsMatcherConf::json_schema(generator),
        ),
        "http" => ("an HTTP request; files are served from `path`", HttpConf::json_schema(generator)),
        "echo" => ("`ECHO`; everything is sent back", EmptyConf::json_schema(generator)),
        "discard" => ("`DISCARD`; everything is read and dropped", EmptyConf::json_schema(generator)),
        _ => return None,
    })
}

/// Adds the `properties` and `required` of `route` (the route keys) to a
/// kind's own `conf` schema; returns its object for more keys.
pub(super) fn with_route_keys<'s>(conf: &'s mut Schema, route: &Schema) -> &'s mut serde_json::Map<String, Value> {
    let object = conf.ensure_object();
    for key in ["properties", "required"] {
        let Some(from_route) = route.get(key) else { continue };
        let merged = object.entry(key).or_insert_with(|| if key == "required" { json!([]) } else { json!({}) });
        match (merged, from_route) {
            (Value::Object(own), Value::Object(more)) => own.extend(more.clone()),
            (Value::Array(own), Value::Array(more)) => own.extend(more.iter().cloned()),
            _ => {}
        }
    }
    object
}

/// A routed kind's `conf`: its detector's keys plus the route keys.
fn routed_conf(generator: &mut SchemaGenerator, kind: &Kind) -> Schema {
    let mut conf = kind.conf_schema(generator);
    let route = RouteConf::json_schema(generator);
    let object = with_route_keys(&mut conf, &route);
    object.insert(
        "description".to_owned(),
        format!(
            "`{}`'s `conf`: the route keys (`target` required, `proxyProtocol`, `transparent`) and the kind's \
             own keys.",
            kind.name
        )
        .into(),
    );
    object.insert("type".to_owned(), "object".into());
    object.insert("additionalProperties".to_owned(), false.into());
    conf
}

/// The `oneOf` branch for `kind`; its `conf` schema goes to the
/// definitions as `<kind>Conf` (e.g. `tlsrouteConf`). `conf` is required
/// when it has required keys.
fn branch(generator: &mut SchemaGenerator, kind: &str, matches: &str, conf: Schema) -> Value {
    let conf_required = conf.get("required").and_then(Value::as_array).is_some_and(|keys| !keys.is_empty());
    let name = format!("{kind}Conf");
    let reference = format!("#{}/{name}", generator.settings().definitions_path.trim_end_matches('/'));
    generator.definitions_mut().insert(name, conf.to_value());
    let mut required = vec!["kind"];
    if conf_required {
        required.push("conf");
    }
    json!({
        "title": kind,
        "description": format!("`{kind}`: matches {matches}."),
        "type": "object",
        "properties": {
            "kind": {"description": "The protocol kind.", "const": kind},
            "default": {
                "description": "Use as the fallback when detection fails.",
                "type": "boolean",
                "default": false,
            },
            "conf": {"$ref": reference},
        },
        "required": required,
        "additionalProperties": false,
    })
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string or an array of strings.",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        })
    }
}

impl JsonSchema for PortSpec {
    fn schema_name() -> Cow<'static, str> {
        "PortSpec".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A port: a number from 1 to 65535, a string such as \"22\", a range \"first-last\", \
                            or \"all\".",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": "^(all|\\s*\\+?[0-9]+\\s*(-\\s*\\+?[0-9]+\\s*)?)$"},
            ],
        })
    }
}

#[cfg(test)]
mod tests;
