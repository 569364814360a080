//! `allow`, `deny` and `rateLimit`: which sources a set of steered ports
//! accepts, enforced by the kernel program before accept; and which
//! `forward` routes the kernel can take straight to their backend.

use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;

use super::Checker;
use super::error::JsonPath;
use super::raw::RouteConf;

/// `rateLimit` as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRateLimit {
    /// Sustained new connections per second per source prefix.
    pub per_second: f64,
    /// Connections a prefix may open at once above the sustained rate
    /// (default: `perSecond`, at least 1).
    pub burst: Option<u64>,
    /// IPv4 sources sharing one budget: this prefix length (default 24).
    pub prefix_v4: Option<u8>,
    /// IPv6 sources sharing one budget: this prefix length (default 64).
    pub prefix_v6: Option<u8>,
}

/// A checked per-source-prefix rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained connections per second.
    pub per_second: f64,
    /// Connections allowed at once.
    pub burst: u32,
    /// IPv4 prefix length of a budget.
    pub prefix_v4: u8,
    /// IPv6 prefix length of a budget.
    pub prefix_v6: u8,
}

/// The source rules of one policy (or of the top level's steered ports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRules {
    /// Prefixes accepted; when not empty, sources matching no rule are refused.
    pub allow: Vec<IpNet>,
    /// Prefixes refused. Where an allow and a deny prefix both match, the
    /// longer one decides.
    pub deny: Vec<IpNet>,
    /// The new-connection rate limit per source prefix.
    pub rate_limit: Option<RateLimit>,
}

impl SourceRules {
    /// Whether there is anything for the kernel to check.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.rate_limit.is_none()
    }

    /// What the rules say of a source before any rate limit: refused or
    /// not. The kernel program's rule, modelled for the tests.
    #[cfg(test)]
    pub fn refuses(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        let longest = |nets: &[IpNet]| nets.iter().filter(|n| n.contains(&source)).map(IpNet::prefix_len).max();
        match (longest(&self.allow), longest(&self.deny)) {
            (allow, Some(deny)) if allow.is_none_or(|allow| deny >= allow) => true,
            (Some(_), _) => false,
            (None, _) => !self.allow.is_empty(),
        }
    }
}

/// A `forward` route the kernel may take to its backend's own listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectCandidate {
    /// The `forward` target as written.
    pub target: String,
}

/// The source keys of one object as written.
#[derive(Debug, Default)]
pub(super) struct RawSources<'r> {
    pub allow: Option<&'r [String]>,
    pub deny: Option<&'r [String]>,
    pub rate_limit: Option<&'r RawRateLimit>,
}

impl Checker<'_> {
    /// Checks `allow`, `deny` and `rateLimit` of the object at `at`.
    pub(super) fn sources(&mut self, at: &JsonPath, raw: &RawSources<'_>, steered: bool) -> SourceRules {
        let rules = SourceRules {
            allow: self.prefixes(&at.key("allow"), raw.allow.unwrap_or_default()),
            deny: self.prefixes(&at.key("deny"), raw.deny.unwrap_or_default()),
            rate_limit: raw.rate_limit.and_then(|limit| self.rate_limit(&at.key("rateLimit"), limit)),
        };
        if !rules.is_empty() && !steered {
            let key = if raw.allow.is_some() {
                "allow"
            } else if raw.deny.is_some() {
                "deny"
            } else {
                "rateLimit"
            };
            let message = "source rules are enforced by the kernel steering program: add \"steer\" (they apply to \
                           steered ports)";
            self.problem(at.key(key), message.into());
        }
        rules
    }

    fn prefixes(&mut self, at: &JsonPath, texts: &[String]) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)) {
                Ok(net) => nets.push(canonical(net.trunc())),
                Err(_) => self.problem(
                    at.index(i),
                    format!("`{text}`: expected a source address or prefix like 192.0.2.0/24 or 2001:db8::/32"),
                ),
            }
        }
        nets
    }

    fn rate_limit(&mut self, at: &JsonPath, raw: &RawRateLimit) -> Option<RateLimit> {
        if !(raw.per_second.is_finite() && raw.per_second > 0.0 && raw.per_second <= 1e9) {
            self.problem(at.key("perSecond"), "expected connections per second above 0 (fractions allowed)".into());
            return None;
        }
        let burst = match raw.burst {
            None => raw.per_second.ceil().max(1.0) as u32,
            Some(n @ 1..=1_000_000_000) => n as u32,
            Some(_) => {
                self.problem(at.key("burst"), "expected a number of connections from 1 to 1000000000".into());
                return None;
            }
        };
        let prefix_v4 = raw.prefix_v4.unwrap_or(24);
        let prefix_v6 = raw.prefix_v6.unwrap_or(64);
        if prefix_v4 > 32 {
            self.problem(at.key("prefixV4"), "expected an IPv4 prefix length from 0 to 32".into());
            return None;
        }
        if prefix_v6 > 128 {
            self.problem(at.key("prefixV6"), "expected an IPv6 prefix length from 0 to 128".into());
            return None;
        }
        Some(RateLimit { per_second: raw.per_second, burst, prefix_v4, prefix_v6 })
    }
}

/// The `forward` route of a set, if the kernel could take it straight to
/// its backend: no PROXY header, no transparent connect, no PROXY headers
/// to strip, and not turned off.
pub(super) fn direct_candidate(
    forward: Option<&RouteConf>,
    accept_proxy: Option<&[String]>,
    kernel_direct: Option<bool>,
) -> Option<DirectCandidate> {
    let forward = forward?;
    let plain = forward.proxy_protocol.is_none() && !forward.transparent;
    let no_headers = accept_proxy.is_none_or(<[String]>::is_empty);
    (plain && no_headers && kernel_direct != Some(false)).then(|| DirectCandidate { target: forward.target.clone() })
}

/// IPv4-mapped IPv6 prefixes as the IPv4 prefixes the kernel sees them as.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).map_or(net, |n| n.trunc()),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> SourceRules {
        let nets = |list: &[&str]| list.iter().map(|t| t.parse().expect("a prefix")).collect();
        SourceRules { allow: nets(allow), deny: nets(deny), rate_limit: None }
    }

    #[test]
    fn the_longest_prefix_decides_and_an_allow_list_refuses_the_rest() {
        let r = rules(&["10.1.2.0/24"], &["10.0.0.0/8"]);
        assert!(!r.refuses("10.1.2.3".parse().expect("ip")));
        assert!(r.refuses("10.9.9.9".parse().expect("ip")));
        assert!(r.refuses("192.0.2.1".parse().expect("ip")), "not allowed");
        let deny_only = rules(&[], &["192.0.2.0/24"]);
        assert!(deny_only.refuses("192.0.2.7".parse().expect("ip")));
        assert!(!deny_only.refuses("198.51.100.1".parse().expect("ip")));
        assert!(deny_only.refuses("::ffff:192.0.2.7".parse().expect("ip")), "mapped addresses are IPv4");
    }
}
