//! The configuration loader (`serve2::Config::parse`) must never panic:
//! on the input as text (when it is UTF-8), and on a configuration built
//! from the input with a small grammar of serve2's keys, so that most runs
//! get past the JSON syntax into the checks.
//!
//! No network: `Config::parse` resolves a non-numeric `address` and, with
//! `steer`, every `target` (`to_socket_addrs`, to find loops). The grammar
//! writes numeric addresses only, and this binary replaces libc's
//! `getaddrinfo` with one that resolves nothing, so text input naming hosts
//! cannot reach a resolver either. Inputs naming device or kernel files are
//! skipped (a `cert` of `/dev/zero` would be read forever).

#![no_main]

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Resolves nothing: host names are never looked up from this binary
/// (numeric addresses never reach `getaddrinfo`).
///
/// # Safety
///
/// Reads none of its arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    _node: *const c_char,
    _service: *const c_char,
    _hints: *const c_void,
    _res: *mut *mut c_void,
) -> c_int {
    libc::EAI_NONAME
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Files and folders a configuration may name: real ones (so that the TLS
/// and file-server checks go all the way), missing ones, wrong ones.
fn path(u: &mut Unstructured) -> Result<String> {
    let relative = *u.choose(&[
        "demo/tls/cert.pem",
        "demo/tls/key.pem",
        "demo/www",
        "demo/www/index.html",
        "example_conf.json",
        "tests/fixtures",
        "missing/serve2-fuzz.pem",
    ])?;
    Ok(if u.arbitrary()? { format!("{ROOT}/{relative}") } else { relative.to_owned() })
}

fn ip(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => "127.0.0.1".into(),
        1 => "[::1]".into(),
        2 => std::net::Ipv4Addr::from(u.arbitrary::<u32>()?).to_string(),
        _ => format!("[{}]", std::net::Ipv6Addr::from(u.arbitrary::<u128>()?)),
    })
}

fn port(u: &mut Unstructured) -> Result<u32> {
    Ok(*u.choose(&[0, 22, 80, 443, 8022, 8080, 8099, 65_535, 65_536])?)
}

/// A dial target: numeric hosts only (see the file's docs).
fn target(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0 => ":22".into(),
        1 => ip(u)?,
        2 => String::new(),
        _ => format!("{}:{}", ip(u)?, port(u)?),
    })
}

fn address(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => format!(":{}", port(u)?),
        1 => "bad address".into(),
        _ => format!("{}:{}", ip(u)?, port(u)?),
    })
}

/// A short string from the input, or one of `known`.
fn text(u: &mut Unstructured, known: &[&str]) -> Result<String> {
    if known.is_empty() || u.ratio(1, 8)? {
        let len = u.int_in_range(0..=24)?;
        let bytes = u.bytes(len.min(u.len()))?;
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    }
    Ok((*u.choose(known)?).to_owned())
}

/// One string, or an array of them.
fn one_or_many(u: &mut Unstructured, known: &[&str]) -> Result<Value> {
    if u.arbitrary()? {
        return Ok(Value::String(text(u, known)?));
    }
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| text(u, known).map(Value::String)).collect::<Result<Vec<_>>>().map(Value::Array)
}

fn seconds(u: &mut Unstructured) -> Result<Value> {
    Ok(json!(*u.choose(&[0.0, 0.25, 3.0, -1.0, 86_400.0, 86_401.0, 1e300])?))
}

fn port_spec(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=1)? {
        0 => json!(port(u)?),
        _ => json!(*u.choose(&["8000-8099", "all", "22", "9-1", "0-5", "x", "8080-"])?),
    })
}

fn port_list(u: &mut Unstructured) -> Result<Value> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| port_spec(u)).collect::<Result<Vec<_>>>().map(Value::Array)
}

fn prefixes(u: &mut Unstructured) -> Result<Value> {
    let n = u.int_in_range(0..=2)?;
    let known = ["10.0.0.0/8", "::1/128", "127.0.0.1", "192.0.2.0/33", "bogus"];
    (0..n).map(|_| text(u, &known).map(Value::String)).collect::<Result<Vec<_>>>().map(Value::Array)
}

/// Sets `key` to `value()` in about half the objects.
fn maybe(
    u: &mut Unstructured,
    object: &mut Map<String, Value>,
    key: &str,
    value: impl FnOnce(&mut Unstructured) -> Result<Value>,
) -> Result<()> {
    if u.arbitrary()? {
        object.insert(key.to_owned(), value(u)?);
    }
    Ok(())
}

/// `target`, `proxyProtocol`, `transparent`.
fn route_keys(u: &mut Unstructured, object: &mut Map<String, Value>) -> Result<()> {
    if !u.ratio(1, 10)? {
        object.insert("target".into(), Value::String(target(u)?));
    }
    maybe(u, object, "proxyProtocol", |u| Ok(json!(*u.choose(&["v1", "v2", "v3"])?)))?;
    maybe(u, object, "transparent", |u| Ok(json!(u.arbitrary::<bool>()?)))
}

fn route(u: &mut Unstructured) -> Result<Value> {
    let mut object = Map::new();
    route_keys(u, &mut object)?;
    Ok(Value::Object(object))
}

/// Every kind the loader knows, and one it does not.
static KINDS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| serve2::config::kinds().chain(["bogus"]).collect());

const NAMES: &[&str] = &["example.test", "*.example.test", "*", "", "a..b", "x*y.test", "localhost."];
const PATTERNS: &[&str] =
    &["^SSH-", "HTTP/1\\.1", "^\\x16\\x03", "foo\\b", "(?m)^Host: .*$", "a$", "", "(", "\\w{50}", "(?-u:\\w){2,5}"];

fn conf(u: &mut Unstructured, kind: &str) -> Result<Value> {
    let mut object = Map::new();
    match kind {
        "proxy" => {
            maybe(u, &mut object, "magic", |u| one_or_many(u, &["SSH-", "", "X"]))?;
            route_keys(u, &mut object)?;
        }
        "tls" => {
            maybe(u, &mut object, "cert", |u| path(u).map(Value::String))?;
            maybe(u, &mut object, "key", |u| path(u).map(Value::String))?;
            maybe(u, &mut object, "certs", |u| {
                let n = u.int_in_range(0..=2)?;
                (0..n)
                    .map(|_| Ok(json!({"cert": path(u)?, "key": path(u)?})))
                    .collect::<Result<Vec<_>>>()
                    .map(Value::Array)
            })?;
            maybe(u, &mut object, "protos", |u| {
                Ok(Value::Array(vec![Value::String(text(u, &["h2", "http/1.1", "ssh", ""])?)]))
            })?;
        }
        "tlsmatcher" => {
            maybe(u, &mut object, "serverNames", |u| one_or_many(u, NAMES))?;
            maybe(u, &mut object, "negotiatedProtocols", |u| one_or_many(u, &["h2", "", "http/1.1"]))?;
            maybe(u, &mut object, "negotiatedProtocolIsMutual", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
            route_keys(u, &mut object)?;
            maybe(u, &mut object, "dialTLS", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
            maybe(u, &mut object, "caFile", |u| path(u).map(Value::String))?;
            maybe(u, &mut object, "insecureSkipVerify", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
        }
        "http" => {
            maybe(u, &mut object, "path", |u| path(u).map(Value::String))?;
            maybe(u, &mut object, "defaultFile", |u| text(u, &["index.html", "a/b"]).map(Value::String))?;
            maybe(u, &mut object, "notFoundMsg", |u| text(u, &["not here\n"]).map(Value::String))?;
            maybe(u, &mut object, "notFoundFile", |u| path(u).map(Value::String))?;
        }
        "echo" | "discard" | "bogus" => {}
        _ => {
            route_keys(u, &mut object)?;
            match kind {
                "tlsroute" => {
                    maybe(u, &mut object, "serverNames", |u| one_or_many(u, NAMES))?;
                    maybe(u, &mut object, "alpn", |u| one_or_many(u, &["h2", "", "http/1.1"]))?;
                    maybe(u, &mut object, "maxHello", |u| Ok(json!(*u.choose(&[0u64, 1, 600, 65_536, 1 << 30])?)))?;
                }
                "httproute" => maybe(u, &mut object, "hosts", |u| one_or_many(u, NAMES))?,
                "regex" => maybe(u, &mut object, "patterns", |u| one_or_many(u, PATTERNS))?,
                _ => {}
            }
        }
    }
    maybe(u, &mut object, "bogus", |_| Ok(json!(1)))?;
    Ok(Value::Object(object))
}

fn protocols(u: &mut Unstructured) -> Result<Value> {
    let n = u.int_in_range(0..=4)?;
    let mut list = Vec::new();
    for _ in 0..n {
        let kind = *u.choose(&KINDS)?;
        let mut entry = Map::new();
        entry.insert("kind".into(), json!(kind));
        maybe(u, &mut entry, "default", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
        if !u.ratio(1, 6)? {
            entry.insert("conf".into(), conf(u, kind)?);
        }
        list.push(Value::Object(entry));
    }
    Ok(Value::Array(list))
}

fn policies(u: &mut Unstructured) -> Result<Value> {
    let n = u.int_in_range(0..=2)?;
    let mut list = Vec::new();
    for i in 0..n {
        let mut policy = Map::new();
        maybe(u, &mut policy, "name", |_| Ok(json!(format!("p{i}"))))?;
        policy.insert("ports".into(), port_list(u)?);
        maybe(u, &mut policy, "protocols", protocols)?;
        maybe(u, &mut policy, "forward", route)?;
        maybe(u, &mut policy, "onTimeout", route)?;
        maybe(u, &mut policy, "acceptProxy", prefixes)?;
        maybe(u, &mut policy, "maxRead", |u| Ok(json!(u.arbitrary::<u16>()?)))?;
        maybe(u, &mut policy, "detectTimeout", seconds)?;
        maybe(u, &mut policy, "stallTimeout", seconds)?;
        maybe(u, &mut policy, "idleTimeout", seconds)?;
        list.push(Value::Object(policy));
    }
    Ok(Value::Array(list))
}

fn config(u: &mut Unstructured) -> Result<Value> {
    let mut top = Map::new();
    maybe(u, &mut top, "address", |u| address(u).map(Value::String))?;
    maybe(u, &mut top, "maxRead", |u| Ok(json!(*u.choose(&[0u64, 1, 128, 65_536, u64::MAX])?)))?;
    maybe(u, &mut top, "logStdout", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
    maybe(u, &mut top, "logFile", |u| Ok(json!(*u.choose(&["", "/nonexistent/serve2-fuzz.log"])?)))?;
    maybe(u, &mut top, "detectTimeout", seconds)?;
    maybe(u, &mut top, "connectTimeout", seconds)?;
    maybe(u, &mut top, "stallTimeout", seconds)?;
    maybe(u, &mut top, "idleTimeout", seconds)?;
    maybe(u, &mut top, "protocols", protocols)?;
    maybe(u, &mut top, "steer", |u| {
        let mut steer = Map::new();
        steer.insert("ports".into(), port_list(u)?);
        maybe(u, &mut steer, "exclude", port_list)?;
        maybe(u, &mut steer, "addresses", prefixes)?;
        Ok(Value::Object(steer))
    })?;
    maybe(u, &mut top, "policies", policies)?;
    maybe(u, &mut top, "control", |u| Ok(json!(*u.choose(&["", "/nonexistent/serve2-fuzz.sock"])?)))?;
    maybe(u, &mut top, "relay", |u| Ok(json!(*u.choose(&["splice", "copy", "sockmap", "other"])?)))?;
    maybe(u, &mut top, "workers", |u| Ok(json!(*u.choose(&[0u64, 1, 4, 256, 257])?)))?;
    maybe(u, &mut top, "forward", route)?;
    maybe(u, &mut top, "onTimeout", route)?;
    maybe(u, &mut top, "acceptProxy", prefixes)?;
    Ok(Value::Object(top))
}

/// Whether `value` holds a path through /dev, /proc or /sys (a component
/// `dev`, `proc` or `sys`, so relative paths count too).
fn names_special_files(value: &Value) -> bool {
    let special = |s: &str| {
        let s = s.strip_prefix(ROOT).unwrap_or(s);
        s.split(['/', '\\']).any(|part| matches!(part, "dev" | "proc" | "sys"))
    };
    match value {
        Value::String(s) => special(s),
        Value::Array(items) => items.iter().any(names_special_files),
        Value::Object(map) => map.iter().any(|(k, v)| special(k) || names_special_files(v)),
        _ => false,
    }
}

/// Whether `text` is safe to load (see the file's docs). Text that is no
/// JSON document never gets past the syntax check, so it is safe.
fn safe(text: &str) -> bool {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Value::deserialize(&mut deserializer).map_or(true, |value| !names_special_files(&value))
}

fn load(text: &str) {
    if safe(text) {
        // Errors are expected; a panic is the bug.
        let _ = serve2::Config::parse(Path::new("fuzz.json"), text);
    }
}

fuzz_target!(
    init: {
        // Backend TLS without `caFile` loads the system roots on every
        // parse: point them at one small file instead.
        // SAFETY: set before any other thread runs.
        unsafe {
            std::env::set_var("SSL_CERT_FILE", format!("{ROOT}/demo/tls/cert.pem"));
            std::env::set_var("SSL_CERT_DIR", format!("{ROOT}/missing"));
        }
    },
    |data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            load(text);
        }
        if let Ok(value) = config(&mut Unstructured::new(data)) {
            let text = if data.first().is_some_and(|b| b & 1 == 1) {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            if let Ok(text) = text {
                load(&text);
            }
        }
    }
);
