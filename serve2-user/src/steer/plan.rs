//! Which ports to steer, given the configuration and the sockets already
//! listening in this network namespace.

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
}

impl SteerPlan {
    /// Ports listed one by one are always taken; ports from ranges and
    /// `"all"` are skipped where another socket listens (`in_use`, minus
    /// serve2's own `own` listeners); excluded ports never are taken.
    pub fn new(config: &SteerConfig, in_use: &PortSet, own: &PortSet) -> SteerPlan {
        let others = in_use.difference(own);
        let skipped = config.ranged.intersection(&others).difference(&config.listed).difference(&config.exclude);
        let steered = config.configured().difference(&skipped);
        SteerPlan { steered, skipped, local_targets: config.local_targets.clone() }
    }
}

/// TCP ports with a listening socket in the calling thread's network
/// namespace (IPv4 and IPv6).
pub fn listening_ports() -> io::Result<PortSet> {
    let mut ports = PortSet::new();
    for table in ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => parse_listening(&text, &mut ports),
            // No IPv6 in this kernel: nothing listens there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ports)
}

/// Adds the local ports of `/proc/net/tcp{,6}` rows in state LISTEN (0A).
fn parse_listening(table: &str, ports: &mut PortSet) {
    for row in table.lines().skip(1) {
        let mut fields = row.split_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if state != "0A" {
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

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1770 00000000000000000000000000000000:0000 0A 00000000:00000000
";

    #[test]
    fn only_listening_rows_count() {
        let mut ports = PortSet::new();
        parse_listening(TCP, &mut ports);
        parse_listening(TCP6, &mut ports);
        assert_eq!(ports.to_string(), "6000,8080");
    }

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
}
