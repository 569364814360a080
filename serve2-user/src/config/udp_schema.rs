//! The JSON Schema of a `udp.protocols` entry: a union discriminated by
//! `kind`, one branch per UDP kind, each `conf` being the kind's own keys
//! plus the UDP route keys (`target` required, `proxyProtocol`). The UDP
//! kinds' `conf` definitions are named `udp<Kind>Conf` (`udpRegexConf`) so
//! they never clash with the TCP kinds' (`regexConf`).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use super::udp::{RawUdpProtocol, UdpRouteConf};
use crate::udp::kinds::{UdpKind, udp_kinds};

impl JsonSchema for RawUdpProtocol<'_> {
    fn schema_name() -> Cow<'static, str> {
        "UdpProtocol".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let branches: Vec<Value> = udp_kinds().map(|kind| branch(generator, kind)).collect();
        let names: Vec<&str> = udp_kinds().map(|k| k.name).collect();
        json_schema!({
            "description": format!(
                "One entry of `udp.protocols`: `kind` (one of {}) decides what `conf` takes.",
                names.join(", ")
            ),
            "type": "object",
            "required": ["kind"],
            "oneOf": branches,
        })
    }
}

/// The definition name of `kind`'s `conf`: `udp` + the kind capitalised + `Conf`.
pub fn conf_definition(kind: &str) -> String {
    let mut chars = kind.chars();
    let capitalised: String = chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
    format!("udp{capitalised}Conf")
}

fn branch(generator: &mut SchemaGenerator, kind: &UdpKind) -> Value {
    let mut conf = kind.conf_schema(generator);
    let route = UdpRouteConf::json_schema(generator);
    let object = super::schema::with_route_keys(&mut conf, &route);
    let description = format!(
        "`{}`'s `conf` in `udp.protocols`: the route keys (`target` required, `proxyProtocol`) and the kind's own \
         keys.",
        kind.name
    );
    object.insert("description".to_owned(), description.into());
    object.insert("type".to_owned(), "object".into());
    object.insert("additionalProperties".to_owned(), false.into());
    let name = conf_definition(kind.name);
    let reference = format!("#{}/{name}", generator.settings().definitions_path.trim_end_matches('/'));
    generator.definitions_mut().insert(name, conf.to_value());
    json!({
        "title": kind.name,
        "description": format!("`{}`: matches {}.", kind.name, kind.matches),
        "type": "object",
        "properties": {
            "kind": {"description": "The UDP kind.", "const": kind.name},
            "default": {
                "description": "Undetected flows go to this entry's target.",
                "type": "boolean",
                "default": false,
            },
            "conf": {"$ref": reference},
        },
        "required": ["kind", "conf"],
        "additionalProperties": false,
    })
}
