//! Which UDP ports to steer, as [`crate::steer::SteerPlan`] decides for
//! TCP: ports `steer.udpPorts` lists one by one always; ports from ranges
//! and `"all"` only where no other socket is bound (an unconnected UDP
//! socket in `/proc/thread-self/net/udp{,6}`).

use std::io;

use crate::config::UdpSteer;
use crate::ports::PortSet;

/// The UDP ports to mark in the kernel's port map, and the ones left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpPlan {
    /// Ports steered to serve2's UDP socket.
    pub steered: PortSet,
    /// Ports a range or `"all"` named, left alone because another socket
    /// is bound there.
    pub skipped: PortSet,
    /// Ports a range or `"all"` named, left alone because a UDP target
    /// listens there locally.
    pub local_targets: PortSet,
}

impl UdpPlan {
    /// `in_use`: ports with an unconnected UDP socket ([`bound_udp_ports`]);
    /// `own`: serve2's own among them — its UDP sockets, and on a reload the
    /// ports steered now (each has a reply socket bound while it has flows).
    pub fn new(steer: &UdpSteer, in_use: &PortSet, own: &PortSet) -> UdpPlan {
        let others = in_use.difference(own);
        let skipped = steer.ranged.intersection(&others).difference(&steer.listed).difference(&steer.exclude);
        UdpPlan {
            steered: steer.configured().difference(&skipped),
            skipped,
            local_targets: steer.local_targets.clone(),
        }
    }
}

/// UDP ports with an unconnected socket bound in the calling thread's
/// network namespace (IPv4 and IPv6): where another program receives.
/// Connected sockets (state 01) are clients, not receivers, and are left
/// out, serve2's own backend sockets among them.
pub fn bound_udp_ports() -> io::Result<PortSet> {
    let mut ports = PortSet::new();
    for table in ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => parse_bound(&text, &mut ports),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ports)
}

/// Adds the local ports of `/proc/net/udp{,6}` rows in state 07 (unconnected).
fn parse_bound(table: &str, ports: &mut PortSet) {
    for row in table.lines().skip(1) {
        let mut fields = row.split_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if state != "07" {
            continue;
        }
        if let Some(port) = local.rsplit_once(':').and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok()) {
            ports.insert(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1001 2 0 0
  124: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1002 2 0 0
";

    #[test]
    fn only_unconnected_sockets_hold_a_port() {
        let mut ports = PortSet::new();
        parse_bound(UDP, &mut ports);
        assert_eq!(ports.to_string(), "5353");
    }

    #[test]
    fn ranges_skip_ports_in_use_but_listed_ports_are_taken() {
        let mut steer = UdpSteer::default();
        steer.listed.insert(5353);
        steer.ranged.insert_range(5350, 5360);
        steer.exclude.insert(5351);
        let in_use: PortSet = [5353, 5355, 5358].into_iter().collect();
        let own: PortSet = [5358].into_iter().collect();
        let plan = UdpPlan::new(&steer, &in_use, &own);
        assert_eq!(plan.skipped.to_string(), "5355");
        assert_eq!(plan.steered.to_string(), "5350,5352-5354,5356-5360");
    }
}
