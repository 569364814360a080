//! Which ports to steer, given the configuration and the sockets already
//! receiving in this network namespace: for TCP (`steer.ports`, listening
//! sockets) and UDP (`steer.udpPorts`, unconnected sockets) alike.

use std::io;

use crate::config::SteerConfig;
use crate::ports::PortSet;

/// The ports to put in the kernel map, and the ones left alone.
#[derive(Debug, Clone)]
pub struct SteerPlan {
    /// Ports steered to serve2.
    pub steered: PortSet,
    /// Ports a range or `"all"` named, left alone because another socket
    /// already listens on them.
    pub skipped: PortSet,
    /// Ports a range or `"all"` named, left alone because a configured
    /// target listens there locally.
    pub local_targets: PortSet,
    /// UDP ports steered to serve2.
    pub udp_steered: PortSet,
}

impl SteerPlan {
    /// Ports listed one by one are always taken; ports from ranges and
    /// `"all"` are skipped where another socket listens (`in_use`, minus
    /// serve2's own `own` listeners); excluded ports never are taken.
    pub fn new(config: &SteerConfig, in_use: &PortSet, own: &PortSet) -> SteerPlan {
        let others = in_use.difference(own);
        let skipped = config.ranged.intersection(&others).difference(&config.listed).difference(&config.exclude);
        let steered = config.configured().difference(&skipped);
        SteerPlan { steered, skipped, local_targets: config.local_targets.clone(), udp_steered: PortSet::new() }
    }
}

/// TCP ports with a listening socket in the calling thread's network
/// namespace (IPv4 and IPv6).
pub fn listening_ports() -> io::Result<PortSet> {
    Ok(super::listening::listening_sockets()?.iter().map(|s| s.local.port()).collect())
}

/// UDP ports with an unconnected socket bound in the calling thread's
/// network namespace (IPv4 and IPv6): where another program receives.
/// Connected sockets are clients, not receivers, and are left out, serve2's
/// own backend sockets among them.
pub fn bound_udp_ports() -> io::Result<PortSet> {
    Ok(super::listening::unconnected_udp_sockets()?.iter().map(|s| s.local.port()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listed: &[u16], ranged: (u16, u16), exclude: &[u16]) -> SteerConfig {
        let mut ranged_set = PortSet::new();
        ranged_set.insert_range(ranged.0, ranged.1);
        SteerConfig {
            listed: listed.iter().copied().collect(),
            ranged: ranged_set,
            exclude: exclude.iter().copied().collect(),
            scope: Vec::new(),
            local_targets: PortSet::new(),
        }
    }

    #[test]
    fn ranges_skip_ports_in_use_but_listed_ports_are_taken() {
        let config = config(&[8005], (8000, 8010), &[8009]);
        let in_use: PortSet = [8003, 8005, 8009, 9000, 8001].into_iter().collect();
        let own: PortSet = [8001].into_iter().collect();
        let plan = SteerPlan::new(&config, &in_use, &own);
        assert_eq!(plan.skipped.to_string(), "8003");
        assert_eq!(plan.steered.to_string(), "8000-8002,8004-8008,8010");
    }

    #[test]
    fn udp_ranges_skip_ports_in_use_but_listed_ports_are_taken() {
        let mut steer = crate::config::UdpSteer::default();
        steer.listed.insert(5353);
        steer.ranged.insert_range(5350, 5360);
        steer.exclude.insert(5351);
        let in_use: PortSet = [5353, 5355, 5358].into_iter().collect();
        let own: PortSet = [5358].into_iter().collect();
        let plan = SteerPlan::new(&steer, &in_use, &own);
        assert_eq!(plan.skipped.to_string(), "5355");
        assert_eq!(plan.steered.to_string(), "5350,5352-5354,5356-5360");
    }
}
