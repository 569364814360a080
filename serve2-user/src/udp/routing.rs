//! Routing a decided flow: resolving its target if it is a name,
//! connecting its backend socket, starting its replies, and replaying what
//! it buffered.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::flow::{Buffer, FlowEnd, FlowKey, FlowState, OpenFlow};
use super::reply::ReplyPath;
use super::server::Dispatcher;
use super::set::UdpRoute;

impl Dispatcher {
    /// Routes a decided flow: at once for an address, after resolving a name.
    pub(super) fn route(
        &mut self,
        key: &FlowKey,
        protocol: &str,
        via: &'static str,
        route: UdpRoute,
        overflow: Option<&[u8]>,
    ) {
        let Some(flow) = self.table.get_mut(key) else { return };
        flow.protocol = Some(protocol.to_owned());
        flow.via = via;
        flow.target = Some(route.target.clone());
        let FlowState::Detecting(buffer) = std::mem::replace(&mut flow.state, FlowState::Detecting(Buffer::default()))
        else {
            return;
        };
        let mut datagrams = buffer.into_datagrams();
        datagrams.extend(overflow.map(<[u8]>::to_vec));
        if let Ok(address) = route.target.parse::<SocketAddr>() {
            return self.open(key, address, &route, datagrams);
        }
        let mut buffer = Buffer::default();
        for datagram in &datagrams {
            buffer.push(datagram);
        }
        flow.state = FlowState::Resolving(buffer, route.clone());
        let (id, tx, key) = (flow.id, self.resolved_tx.clone(), *key);
        tokio::spawn(async move {
            let address = match tokio::net::lookup_host(&route.target).await {
                Ok(mut addresses) => addresses.next().ok_or_else(|| std::io::Error::other("no address")),
                Err(e) => Err(e),
            };
            let _ = tx.send((key, id, address));
        });
    }

    pub(super) fn resolved(&mut self, key: FlowKey, id: u64, address: std::io::Result<SocketAddr>) {
        let Some(flow) = self.table.get_mut(&key).filter(|f| f.id == id) else { return };
        let FlowState::Resolving(..) = &flow.state else { return };
        let FlowState::Resolving(buffer, route) =
            std::mem::replace(&mut flow.state, FlowState::Detecting(Buffer::default()))
        else {
            return;
        };
        match address {
            Ok(address) => self.open(&key, address, &route, buffer.into_datagrams()),
            Err(e) => {
                flow.span.in_scope(|| tracing::warn!(target = %route.target, error = %e, "udp: cannot resolve target"));
                self.end(&key, FlowEnd::BackendError);
            }
        }
    }

    /// Connects the flow's backend socket, starts its replies, and sends
    /// `datagrams` (the buffered ones, in order).
    fn open(&mut self, key: &FlowKey, backend: SocketAddr, route: &UdpRoute, datagrams: Vec<Vec<u8>>) {
        let reply = if self.steered {
            match self.replies.for_dialled(key.dialled) {
                Ok(socket) => ReplyPath::Bound(socket),
                Err(e) => {
                    self.in_span(
                        key,
                        |dialled| tracing::warn!(%dialled, error = %e, "udp: cannot bind a reply socket"),
                    );
                    return self.end(key, FlowEnd::ReplySocket);
                }
            }
        } else {
            ReplyPath::Main { socket: self.socket.clone(), ipv6_socket: self.ipv6_socket, from: key.dialled.ip() }
        };
        let upstream = match super::socket::upstream_socket(backend).and_then(UdpSocket::from_std) {
            Ok(upstream) => Arc::new(upstream),
            Err(e) => {
                self.in_span(key, |_| tracing::warn!(%backend, error = %e, "udp: cannot reach the backend"));
                return self.end(key, FlowEnd::BackendError);
            }
        };
        let Some(flow) = self.table.get_mut(key) else { return };
        let replies = super::flow::relay_replies(
            upstream.clone(),
            reply,
            key.client,
            flow.shared.clone(),
            self.clock,
            self.stats.clone(),
        );
        let replies = tokio::spawn(tracing::Instrument::instrument(replies, flow.span.clone())).abort_handle();
        let header = route.proxy_header.then(|| super::header::datagram_header(key.client, key.dialled));
        let open = OpenFlow { upstream, header, replies };
        for datagram in &datagrams {
            self.outbox.push(&open.upstream, open.header.as_deref(), datagram);
        }
        flow.state = FlowState::Open(open);
        // The replay goes out now, in order, before any later datagram.
        self.flush();
    }

    fn in_span(&self, key: &FlowKey, log: impl FnOnce(SocketAddr)) {
        match self.table.get(key) {
            Some(flow) => flow.span.in_scope(|| log(key.dialled)),
            None => log(key.dialled),
        }
    }
}
