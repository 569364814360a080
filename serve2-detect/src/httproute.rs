//! `httproute`: an HTTP/1.x request (RFC 9112), optionally routed by host.
//!
//! The request line is `METHOD SP request-target SP HTTP-version`, or the
//! HTTP/0.9 `GET /path` with no version. Methods are the RFC 9110 ones plus
//! PATCH (RFC 5789), compared case-sensitively as the RFC says (`get` is not
//! a method); `PRI * HTTP/2.0` is not HTTP/1 (it is `h2c`).
//!
//! # Without `hosts`: decided on the request line's first bytes
//!
//! The detector matches as soon as `METHOD SP` is followed by the start of a
//! plausible request-target, so that other protocols queue behind it as
//! little as possible:
//!
//! - `/` (origin-form, any method, HTTP/0.9 included): `GET /` matches at
//!   5 bytes;
//! - `*` after OPTIONS (asterisk-form);
//! - `scheme://` (absolute-form, as sent to a proxy): matches at the second
//!   `/`. Waiting for `://` rather than a scheme's first letter keeps
//!   text protocols that happen to share a method name out, such as a Redis
//!   inline `GET key` (refused at the `\r`) or `GET user:1000` (at the `1`);
//! - after CONNECT, the first byte of an authority (letter, digit or `[`).
//!
//! Anything else is refused at the first byte that cannot fit: `GETX` at the
//! `X`, `get` at the `g`, `GET  /` at the second space.
//! The version is not read in this mode (`GET / HTTP/2.0` matches): there
//! is nothing to route on, and waiting for it would only delay the match.
//!
//! # With `hosts`: decided at the end of the request head
//!
//! The request's host is the authority of an absolute-form target (userinfo
//! and `:port` stripped), the target of a CONNECT in authority-form, or else
//! the `Host` header (field name case-insensitive, whitespace around the
//! value and any `:port` ignored, IPv6 brackets stripped). The authority
//! wins when both exist (RFC 9112 §3.2.2). The detector reads the whole
//! head, up to the empty line (`\r\n\r\n`, bare `\n\n` tolerated), and
//! matches when the host matches one of the patterns; a request without a
//! host (HTTP/1.0 without `Host`, an empty `Host`, HTTP/0.9, which has no
//! headers) matches only a `""` pattern. A match reports the host (without
//! port) in [`Learned::host`].
//!
//! It refuses as soon as the host is known not to match (at the end of the
//! request line for an authority, at the end of the `Host` line otherwise),
//! and at the first byte of a malformed head: a bare CR, a control byte, a
//! field line that starts with whitespace (obsolete line folding), a field
//! name that is not a token or is followed by whitespace, a second `Host`,
//! a version other than `HTTP/1.x`, an HTTP/0.9 request other than
//! `GET /path`, or a host that is not `host[:port]`.
//!
//! **The head must fit in `maxRead`**: a detector still undecided at the cap
//! is treated as No, and `maxRead` defaults to 128 bytes. curl's requests fit;
//! browsers send heads of 400 to 800 bytes, so users routing browsers on
//! hosts must raise `maxRead`.

use serde::Deserialize;

use crate::names::NamePatterns;
use crate::registry::{ConfError, ConfKey, FromConf};
use crate::{DetectContext, Detector, Learned, Span, Verdict, starts_like};

/// RFC 9110 §9 methods plus PATCH (RFC 5789).
const METHODS: [&[u8]; 9] = [b"GET", b"PUT", b"HEAD", b"POST", b"PATCH", b"TRACE", b"DELETE", b"CONNECT", b"OPTIONS"];

/// The longest URI scheme waited for before its `://` (`https` is 5;
/// registered schemes in proxy requests are far shorter than this).
const MAX_SCHEME: usize = 16;

/// Recognises an HTTP/1.x request, optionally only for some hosts.
#[derive(Debug, Clone, Default)]
pub struct HttpRouteDetector {
    /// `None`: any request, decided on the request line's first bytes.
    hosts: Option<NamePatterns>,
}

/// The keys of `httproute`'s `conf`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    /// Host-name patterns (see [`crate::names`]) matched against the
    /// request's host; absent: every request matches.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
}

/// The shape of the request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `/path`.
    Origin,
    /// `*` (OPTIONS only).
    Asterisk,
    /// `scheme://authority/path`: the authority starts at this offset.
    Absolute(usize),
    /// `host:port` (CONNECT only).
    Authority,
}

/// Inside a TLS session serve2 terminated, a request for another host than
/// the one the ClientHello named is misdirected (RFC 9110 §15.5.20): host
/// routing must not carry a client that opened a session for one name to
/// the backend of another (domain fronting).
fn misdirected(prefix: &[u8], learned: &Learned, ctx: &DetectContext<'_>) -> bool {
    let (Some(sni), Some(host)) = (ctx.tls.and_then(|tls| tls.server_name.as_deref()), learned.host) else {
        return false;
    };
    let host = host.of(prefix);
    let host = host.strip_suffix(b".").unwrap_or(host);
    !host.eq_ignore_ascii_case(sni.trim_end_matches('.').as_bytes())
}

/// Early exit of the parse: the verdict to return now.
type Parse<T> = Result<T, Verdict>;

impl Detector for HttpRouteDetector {
    fn detect(&self, prefix: &[u8], ctx: &DetectContext<'_>) -> Verdict {
        let parsed = method(prefix).and_then(|method| {
            let target = method.len() + 1;
            let form = target_form(prefix, method, target)?;
            Ok((method, target, form))
        });
        match (parsed, &self.hosts) {
            (Err(verdict), _) => verdict,
            (Ok(_), None) => Verdict::MATCH,
            (Ok((method, target, form)), Some(hosts)) => match route(prefix, hosts, method, target, form) {
                Ok(Verdict::Match(learned)) if misdirected(prefix, &learned, ctx) => Verdict::NoMatch,
                Ok(verdict) | Err(verdict) => verdict,
            },
        }
    }
}

impl FromConf for HttpRouteDetector {
    type Conf = Conf;
    fn from_conf(conf: Conf) -> Result<Self, ConfError> {
        let Some(hosts) = conf.hosts else { return Ok(Self { hosts: None }) };
        if hosts.is_empty() {
            return Err(ConfError::key("hosts", "no host patterns: omit `hosts` to match every request"));
        }
        let hosts = NamePatterns::new(&hosts).map_err(|(i, message)| {
            ConfError::at(vec![ConfKey::Key("hosts".to_owned()), ConfKey::Index(i)], message)
        })?;
        Ok(Self { hosts: Some(hosts) })
    }
}

/// Undecided, reading whatever the engine allows (the head ends at an empty
/// line, not at a known length).
fn more(prefix: &[u8]) -> Verdict {
    Verdict::need_up_to(prefix.len() + 1, usize::MAX)
}

/// The method token followed by its space.
fn method(prefix: &[u8]) -> Parse<&'static [u8]> {
    let mut shortest: Option<usize> = None;
    for method in METHODS {
        let n = prefix.len().min(method.len());
        if prefix[..n] != method[..n] {
            continue;
        }
        match prefix.get(method.len()) {
            Some(b' ') => return Ok(method),
            Some(_) => {}
            None => shortest = Some(shortest.map_or(method.len() + 1, |s| s.min(method.len() + 1))),
        }
    }
    Err(shortest.map_or(Verdict::NoMatch, Verdict::need))
}

/// Classifies the request-target starting at `start` from its first bytes.
fn target_form(prefix: &[u8], method: &[u8], start: usize) -> Parse<Form> {
    let Some(&first) = prefix.get(start) else { return Err(Verdict::need(start + 1)) };
    match first {
        b'/' => Ok(Form::Origin),
        b'*' if method == b"OPTIONS" => Ok(Form::Asterisk),
        b'[' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' if method == b"CONNECT" => Ok(Form::Authority),
        b'a'..=b'z' | b'A'..=b'Z' => {
            // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://".
            for (i, &b) in prefix.iter().enumerate().skip(start + 1) {
                match b {
                    b':' => {
                        return match starts_like(&prefix[i..], b"://") {
                            None => Err(Verdict::NoMatch),
                            Some(false) => Err(Verdict::need(i + 3)),
                            Some(true) => Ok(Form::Absolute(i + 3)),
                        };
                    }
                    _ if i - start >= MAX_SCHEME => return Err(Verdict::NoMatch),
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.' => {}
                    _ => return Err(Verdict::NoMatch),
                }
            }
            Err(Verdict::need_up_to(prefix.len() + 1, start + MAX_SCHEME + 3))
        }
        _ => Err(Verdict::NoMatch),
    }
}

/// Parses the rest of the head and judges its host against `hosts`.
fn route(prefix: &[u8], hosts: &NamePatterns, method: &[u8], start: usize, form: Form) -> Parse<Verdict> {
    // The target runs to the space before the version (or, for HTTP/0.9, to
    // the end of the line).
    let mut end = start;
    loop {
        match prefix.get(end) {
            None => return Err(more(prefix)),
            Some(b' ' | b'\r' | b'\n') => break,
            Some(&b) if b > b' ' && b != 0x7f => end += 1,
            Some(_) => return Err(Verdict::NoMatch),
        }
    }
    if form == Form::Asterisk && end != start + 1 {
        return Err(Verdict::NoMatch);
    }
    if prefix.get(end) != Some(&b' ') {
        // HTTP/0.9 had only `GET /path`, and no headers, hence no host.
        if method != b"GET" || form != Form::Origin {
            return Err(Verdict::NoMatch);
        }
        line_end(prefix, end)?;
        return Ok(if hosts.matches(None) { Verdict::MATCH } else { Verdict::NoMatch });
    }
    let authority = match form {
        Form::Absolute(from) => {
            let to = prefix[from..end].iter().position(|b| matches!(b, b'/' | b'?' | b'#')).map_or(end, |p| from + p);
            Some((from, to))
        }
        Form::Authority => Some((start, end)),
        Form::Origin | Form::Asterisk => None,
    };
    let uri_host = match authority {
        Some((from, to)) => host_span(prefix, from, to, true)?,
        None => None,
    };
    if let Some(host) = uri_host
        && !hosts.matches(Some(host.of(prefix)))
    {
        return Err(Verdict::NoMatch);
    }

    let version = end + 1;
    match starts_like(&prefix[version..], b"HTTP/1.") {
        None => return Err(Verdict::NoMatch),
        Some(false) => return Err(more(prefix)),
        Some(true) => {}
    }
    match prefix.get(version + 7) {
        None => return Err(more(prefix)),
        Some(b'0'..=b'9') => {}
        Some(_) => return Err(Verdict::NoMatch),
    }
    let mut pos = line_end(prefix, version + 8)?;

    let mut host_field: Option<Option<Span>> = None;
    loop {
        match prefix.get(pos) {
            None => return Err(more(prefix)),
            Some(b'\r' | b'\n') => {
                line_end(prefix, pos)?;
                break;
            }
            Some(_) => {}
        }
        let name = pos;
        loop {
            match prefix.get(pos) {
                None => return Err(more(prefix)),
                Some(b':') if pos > name => break,
                Some(&b) if is_tchar(b) => pos += 1,
                // Includes whitespace before the colon or the name
                // (obsolete line folding), which RFC 9112 §5 says to reject.
                Some(_) => return Err(Verdict::NoMatch),
            }
        }
        let is_host = prefix[name..pos].eq_ignore_ascii_case(b"host");
        if is_host && host_field.is_some() {
            return Err(Verdict::NoMatch);
        }
        pos += 1;
        let value = pos;
        loop {
            match prefix.get(pos) {
                None => return Err(more(prefix)),
                Some(b'\r' | b'\n') => break,
                Some(&b) if b == b'\t' || (b >= b' ' && b != 0x7f) => pos += 1,
                Some(_) => return Err(Verdict::NoMatch),
            }
        }
        let value_end = pos;
        pos = line_end(prefix, pos)?;
        if is_host {
            let (from, to) = trim_ows(prefix, value, value_end);
            let host = host_span(prefix, from, to, false)?;
            // Without an authority this header is the host for good (a
            // second one is refused), so a mismatch can be refused now.
            if uri_host.is_none() && !hosts.matches(host.map(|h| h.of(prefix))) {
                return Err(Verdict::NoMatch);
            }
            host_field = Some(host);
        }
    }

    let host = uri_host.or(host_field.flatten());
    Ok(if hosts.matches(host.map(|h| h.of(prefix))) {
        Verdict::Match(Learned { host, ..Learned::NOTHING })
    } else {
        Verdict::NoMatch
    })
}

/// Expects a line end (`\r\n`, or a bare `\n`) at `at`; returns the offset
/// after it.
fn line_end(prefix: &[u8], at: usize) -> Parse<usize> {
    match (prefix.get(at), prefix.get(at + 1)) {
        (Some(b'\n'), _) => Ok(at + 1),
        (Some(b'\r'), Some(b'\n')) => Ok(at + 2),
        (Some(b'\r'), None) | (None, _) => Err(more(prefix)),
        _ => Err(Verdict::NoMatch),
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `from..to` without leading and trailing spaces and tabs.
fn trim_ows(prefix: &[u8], mut from: usize, mut to: usize) -> (usize, usize) {
    while from < to && matches!(prefix[from], b' ' | b'\t') {
        from += 1;
    }
    while to > from && matches!(prefix[to - 1], b' ' | b'\t') {
        to -= 1;
    }
    (from, to)
}

/// The host of the authority `from..to` (`[userinfo@]host[:port]`, userinfo
/// only when `userinfo`), without port or IPv6 brackets; `None` when the
/// host is empty. Refuses what is not an authority.
fn host_span(prefix: &[u8], from: usize, to: usize, userinfo: bool) -> Parse<Option<Span>> {
    let mut from = from;
    if userinfo && let Some(at) = prefix[from..to].iter().position(|&b| b == b'@') {
        from += at + 1;
    }
    let authority = &prefix[from..to];
    let (host, port) = if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']').ok_or(Verdict::NoMatch)?;
        let literal = &authority[1..close];
        let ip_char = |b: &u8| b.is_ascii_alphanumeric() || b":.%-_~".contains(b);
        if literal.is_empty() || !literal.iter().all(ip_char) {
            return Err(Verdict::NoMatch);
        }
        ((from + 1, from + close), &authority[close + 1..])
    } else {
        let colon = authority.iter().position(|&b| b == b':').unwrap_or(authority.len());
        // reg-name or IPv4: unreserved, sub-delims and percent-encoding.
        let name_char = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(b);
        if !authority[..colon].iter().all(name_char) {
            return Err(Verdict::NoMatch);
        }
        ((from, from + colon), &authority[colon..])
    };
    if !port.is_empty() && (port[0] != b':' || !port[1..].iter().all(u8::is_ascii_digit)) {
        return Err(Verdict::NoMatch);
    }
    Ok(if host.0 == host.1 { None } else { Span::new(host.0, host.1) })
}

#[cfg(test)]
mod tests;
