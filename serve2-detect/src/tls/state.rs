//! `tlsmatcher`: matches the state of a TLS session serve2 terminated.

use crate::TlsInfo;
use crate::{DetectContext, Detector, Verdict};

/// Matches a decrypted stream by the properties of its TLS session, reading
/// no bytes. Without any check configured it matches every TLS session.
#[derive(Debug, Clone, Default)]
pub struct TlsStateMatcher {
    server_names: Option<Vec<String>>,
    protocols: Option<Vec<Vec<u8>>>,
    protocol_is_mutual: Option<bool>,
}

impl TlsStateMatcher {
    /// A matcher with no checks: it matches any TLS layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the SNI server name to be one of `names` (case-insensitive, a
    /// trailing dot ignored; `*.example.com` matches exactly one more label).
    pub fn server_names<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Self {
        self.server_names = Some(names.into_iter().map(|n| normalize_name(n.as_ref())).collect());
        self
    }

    /// Requires the ALPN protocol negotiated to be one of `protocols`; an empty
    /// string stands for "no protocol negotiated", as in serve2d.
    pub fn negotiated_protocols<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(mut self, protocols: I) -> Self {
        self.protocols = Some(protocols.into_iter().map(|p| p.as_ref().to_vec()).collect());
        self
    }

    /// Requires that a protocol was (`true`) or was not (`false`) negotiated
    /// with ALPN, i.e. offered by both client and server.
    pub fn negotiated_protocol_is_mutual(mut self, mutual: bool) -> Self {
        self.protocol_is_mutual = Some(mutual);
        self
    }

    fn matches(&self, tls: &TlsInfo) -> bool {
        if let Some(names) = &self.server_names {
            let Some(sni) = tls.server_name.as_deref() else {
                return false;
            };
            let sni = normalize_name(sni);
            if !names.iter().any(|pattern| name_matches(pattern, &sni)) {
                return false;
            }
        }
        if let Some(protocols) = &self.protocols {
            let negotiated = tls.alpn.as_deref().unwrap_or_default();
            if !protocols.iter().any(|p| p == negotiated) {
                return false;
            }
        }
        self.protocol_is_mutual.is_none_or(|mutual| tls.alpn.is_some() == mutual)
    }
}

fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

impl Detector for TlsStateMatcher {
    fn detect(&self, _prefix: &[u8], ctx: &DetectContext<'_>) -> Verdict {
        match ctx.tls {
            Some(tls) if self.matches(tls) => Verdict::MATCH,
            _ => Verdict::NoMatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sni: Option<&str>, alpn: Option<&str>) -> TlsInfo {
        TlsInfo { server_name: sni.map(str::to_owned), alpn: alpn.map(|a| a.as_bytes().to_vec()) }
    }

    fn verdict(matcher: &TlsStateMatcher, tls: Option<&TlsInfo>) -> Verdict {
        matcher.detect(b"", &DetectContext { tls, depth: 1 })
    }

    #[test]
    fn plain_tcp_never_matches() {
        assert_eq!(verdict(&TlsStateMatcher::new(), None), Verdict::NoMatch);
        assert_eq!(verdict(&TlsStateMatcher::new(), Some(&session(None, None))), Verdict::MATCH);
    }

    #[test]
    fn server_names_match_case_insensitively_and_by_wildcard() {
        let m = TlsStateMatcher::new().server_names(["Git.Example.com", "*.apps.example.com"]);
        assert_eq!(verdict(&m, Some(&session(Some("git.example.com"), None))), Verdict::MATCH);
        assert_eq!(verdict(&m, Some(&session(Some("GIT.EXAMPLE.COM."), None))), Verdict::MATCH);
        assert_eq!(verdict(&m, Some(&session(Some("a.apps.example.com"), None))), Verdict::MATCH);
        assert_eq!(verdict(&m, Some(&session(Some("a.b.apps.example.com"), None))), Verdict::NoMatch);
        assert_eq!(verdict(&m, Some(&session(Some("apps.example.com"), None))), Verdict::NoMatch);
        assert_eq!(verdict(&m, Some(&session(Some("www.example.com"), None))), Verdict::NoMatch);
        assert_eq!(verdict(&m, Some(&session(None, None))), Verdict::NoMatch);
    }

    #[test]
    fn negotiated_protocols_and_mutuality() {
        let h2 = TlsStateMatcher::new().negotiated_protocols(["h2"]);
        assert_eq!(verdict(&h2, Some(&session(None, Some("h2")))), Verdict::MATCH);
        assert_eq!(verdict(&h2, Some(&session(None, Some("http/1.1")))), Verdict::NoMatch);
        assert_eq!(verdict(&h2, Some(&session(None, None))), Verdict::NoMatch);
        let none = TlsStateMatcher::new().negotiated_protocols([""]);
        assert_eq!(verdict(&none, Some(&session(None, None))), Verdict::MATCH);
        let mutual = TlsStateMatcher::new().negotiated_protocol_is_mutual(true);
        assert_eq!(verdict(&mutual, Some(&session(None, Some("ssh")))), Verdict::MATCH);
        assert_eq!(verdict(&mutual, Some(&session(None, None))), Verdict::NoMatch);
        let not_mutual = TlsStateMatcher::new().negotiated_protocol_is_mutual(false);
        assert_eq!(verdict(&not_mutual, Some(&session(None, None))), Verdict::MATCH);
    }
}
