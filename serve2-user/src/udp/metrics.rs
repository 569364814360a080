//! The UDP engine's Prometheus series, read from its counters at scrape
//! time (nothing is added on the datagram path):
//!
//! - `serve2_udp_flows_active{policy}`: flows open now;
//! - `serve2_udp_flows_created_total{policy}`: flows created;
//! - `serve2_udp_flows_undetected_total{policy}`: flows whose first
//!   datagrams matched nothing, dropped for want of a default;
//! - `serve2_udp_bytes_total{policy, direction}`: bytes of ended flows;
//! - `serve2_udp_table_full_total{limit}`: datagrams of new flows refused by
//!   `maxFlows` or `maxFlowsPerSource`;
//! - `serve2_udp_dropped_total{reason}`: every dropped datagram, by reason.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::UdpServer;
use super::stats::DropReason;

/// Exposes a [`UdpServer`]'s counters.
#[derive(Debug)]
pub struct UdpCollector {
    server: UdpServer,
}

impl UdpCollector {
    /// The collector of `server`.
    pub fn new(server: UdpServer) -> Self {
        Self { server }
    }
}

type Labels = Vec<(&'static str, String)>;

/// Encodes one family of (labels, value) pairs.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: Vec<(Labels, M)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in &series {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for UdpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let router = self.server.router();
        let policy = |p: &super::router::UdpPolicy| vec![("policy", p.metric_label().to_owned())];
        let active = router.all().map(|p| (policy(p), ConstGauge::new(p.counters.active() as i64))).collect();
        family(&mut encoder, "udp_flows_active", "UDP flows open now, by policy", MetricType::Gauge, active)?;
        let created = router.all().map(|p| (policy(p), ConstCounter::new(p.counters.total_created()))).collect();
        family(&mut encoder, "udp_flows_created", "UDP flows created, by policy", MetricType::Counter, created)?;
        let undetected = router.all().map(|p| (policy(p), ConstCounter::new(p.counters.total_undetected()))).collect();
        family(
            &mut encoder,
            "udp_flows_undetected",
            "UDP flows whose first datagrams matched no protocol and that had no default, by policy",
            MetricType::Counter,
            undetected,
        )?;
        let mut bytes = Vec::new();
        for p in router.all() {
            let (from_client, to_client) = p.counters.bytes();
            for (direction, value) in [("from_client", from_client), ("to_client", to_client)] {
                let mut labels = policy(p);
                labels.push(("direction", direction.to_owned()));
                bytes.push((labels, ConstCounter::new(value)));
            }
        }
        let help = "Bytes of ended UDP flows received from (from_client) and sent to (to_client) clients, by policy";
        family(&mut encoder, "udp_bytes", help, MetricType::Counter, bytes)?;
        let dropped = &self.server.stats().dropped;
        let table_full = [("maxFlows", DropReason::TableFull), ("maxFlowsPerSource", DropReason::SourceFull)]
            .into_iter()
            .map(|(limit, reason)| (vec![("limit", limit.to_owned())], ConstCounter::new(dropped.get(reason))))
            .collect();
        let help = "Datagrams of new UDP flows refused because the flow table was full, by limit";
        family(&mut encoder, "udp_table_full", help, MetricType::Counter, table_full)?;
        let all = DropReason::ALL
            .into_iter()
            .map(|reason| (vec![("reason", reason.as_str().to_owned())], ConstCounter::new(dropped.get(reason))))
            .collect();
        family(&mut encoder, "udp_dropped", "UDP datagrams dropped, by reason", MetricType::Counter, all)
    }
}
