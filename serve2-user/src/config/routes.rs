//! `forward`, `onTimeout` and `acceptProxy`: how a protocol set routes
//! connections besides detection (top level and per policy).

use ipnet::IpNet;

use super::error::JsonPath;
use super::raw::{RawProtocol, RouteConf};
use super::{Checker, protocols::Shared};
use crate::detect::{DetectContext, Detector, Verdict};
use crate::protocol::{DetectLimits, Handler, HandlerError, HandlerFuture, Protocol, ProtocolSet};

/// The route keys of one protocol set as written.
#[derive(Debug, Default)]
pub(super) struct RawRoutes<'r> {
    pub forward: Option<&'r RouteConf>,
    pub on_timeout: Option<&'r RouteConf>,
    pub accept_proxy: Option<&'r [String]>,
}

impl Checker<'_> {
    /// Builds the protocol set of the object at `at` (the top level or a
    /// policy): its `protocols`, or its `forward` route, with `onTimeout`
    /// and `acceptProxy`.
    pub(super) fn routed_set(
        &mut self,
        at: &JsonPath,
        protocols: &[RawProtocol<'_>],
        routes: &RawRoutes<'_>,
        limits: DetectLimits,
        shared: Shared,
        allow_empty: bool,
    ) -> Option<ProtocolSet> {
        let accept_proxy = self.accept_proxy(&at.key("acceptProxy"), routes.accept_proxy.unwrap_or_default());
        let set = match routes.forward {
            Some(forward) => {
                if !protocols.is_empty() {
                    let message = "a set with `forward` detects nothing: remove `protocols` or `forward`";
                    self.problem(at.key("forward"), message.into());
                }
                if routes.on_timeout.is_some() {
                    let message = "`onTimeout` has no effect with `forward` (nothing waits for the client)";
                    self.problem(at.key("onTimeout"), message.into());
                }
                let handler = self.route(&at.key("forward"), forward, shared)?;
                ProtocolSet::forward(
                    Protocol::from_arcs("forward", std::sync::Arc::new(NeverDetector), std::sync::Arc::new(handler)),
                    limits,
                )
            }
            None => {
                // A source not trusted to send a PROXY header must not get
                // one through to a backend that trusts serve2.
                let refuse = (!accept_proxy.is_empty())
                    .then(|| Protocol::new("proxy-header", ProxyHeaderDetector, RefuseProxyHeader));
                let set = self.protocol_set(&at.key("protocols"), protocols, limits, shared, allow_empty, refuse)?;
                let on_timeout = match routes.on_timeout {
                    Some(route) => {
                        Some(Protocol::new("timeout", NeverDetector, self.route(&at.key("onTimeout"), route, shared)?))
                    }
                    None => None,
                };
                set.with_on_timeout(on_timeout)
            }
        };
        Some(set.with_accept_proxy(accept_proxy))
    }

    fn accept_proxy(&mut self, at: &JsonPath, sources: &[String]) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for (i, text) in sources.iter().enumerate() {
            match text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)) {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => self.problem(
                    at.index(i),
                    format!("`{text}`: expected a source address or prefix like 127.0.0.0/8 or 2001:db8::/32"),
                ),
            }
        }
        nets
    }
}

use crate::detect::NeverDetector;

/// Matches the start of a PROXY header (v1 or v2).
#[derive(Debug, Clone, Copy)]
struct ProxyHeaderDetector;

impl Detector for ProxyHeaderDetector {
    fn detect(&self, prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        match crate::proxy_header::looks_like_header(prefix) {
            Some(true) => Verdict::MATCH,
            Some(false) => Verdict::need(prefix.len() + 1),
            None => Verdict::NoMatch,
        }
    }
}

/// Closes a connection that sent a PROXY header from an untrusted source.
#[derive(Debug, Clone, Copy)]
struct RefuseProxyHeader;

impl Handler for RefuseProxyHeader {
    fn handle(&self, _conn: crate::conn::Conn) -> HandlerFuture<'_> {
        Box::pin(async {
            Err(HandlerError::Refused("PROXY header from a source not listed in acceptProxy: closed".into()))
        })
    }
}
