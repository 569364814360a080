//! The UDP headline (issue 11): serve2's UDP flows against direct and
//! against the UDP peer, judged like the TCP targets (per round, then the
//! median). sslh's UDP mode would be the peer, but Debian 12's sslh is 1.20,
//! which has no UDP; nginx's stream module stands in, and sslh's row says so.

use crate::headline::{HEADER, Rule, Target, Verdict, target, verdict_row};
use crate::stats::rounds;

/// The serve2 rows and the peer.
const SERVE2: &str = "serve2-udp";
const DETECT: &str = "serve2-udp-detect";
const PEER: &str = "nginx-udp";

const fn udp(target: Target) -> Target {
    Target { udp: true, ..target }
}

fn megabytes(sample: &crate::sample::Sample) -> Option<f64> {
    sample.udp_bytes_per_sec.map(|bytes| bytes / 1e6)
}

/// At least 0.7 of direct's throughput, and ahead of the peer on every row.
pub const UDP_TARGETS: [Target; 7] = [
    udp(target("UDP 64 B round trips/s, 1 flow", SERVE2, "direct", |s| s.udp_dgrams_per_sec, Rule::AtLeast(0.7))),
    udp(target("UDP 1200 B MB/s, 1 flow", SERVE2, "direct", megabytes, Rule::AtLeast(0.7))),
    udp(target("UDP 64 B round trips/s, 1 flow", SERVE2, PEER, |s| s.udp_dgrams_per_sec, Rule::AtLeast(1.0))),
    udp(target("UDP 1200 B MB/s, 1 flow", SERVE2, PEER, megabytes, Rule::AtLeast(1.0))),
    udp(target("UDP new flows/s", SERVE2, PEER, |s| s.udp_flows_per_sec, Rule::AtLeast(1.0))),
    udp(target(
        "UDP new flows/s, detected (quic, wireguard)",
        DETECT,
        PEER,
        |s| s.udp_flows_per_sec,
        Rule::AtLeast(1.0),
    )),
    udp(target("UDP memory per idle flow", SERVE2, PEER, |s| s.udp_idle_kib_per_flow, Rule::AtMost(1.0))),
];

/// Why sslh has no UDP row.
pub const SSLH_UDP: &str = "sslh's UDP mode: not available — Debian 12 ships sslh 1.20, without UDP \
    (sslh's ChangeLog adds UDP after v1.21; `sslh-select -h` lists no UDP option); nginx's stream \
    module is the UDP peer instead.";

/// The UDP headline table, or `None` when no UDP target was measured.
pub fn table(verdicts: &[Verdict], round_count: u32) -> Option<String> {
    let udp: Vec<&Verdict> = verdicts.iter().filter(|v| v.udp).collect();
    if udp.is_empty() {
        return None;
    }
    let mut table = String::from(HEADER);
    for v in udp {
        table.push_str(&verdict_row(v));
    }
    table.push_str(&format!("| {SSLH_UDP} | — | — | — | — | not available |\n"));
    if round_count < 3 {
        table.push_str(&format!(
            "\n{}: the targets are judged on medians of at least 3; these are indicative.\n",
            rounds(round_count)
        ));
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headline::verdicts;
    use crate::sample::Sample;

    fn sample(system: &str, round: u32, dgrams: f64, kib: f64) -> Sample {
        Sample {
            system: system.into(),
            round,
            udp_dgrams_per_sec: Some(dgrams),
            udp_idle_kib_per_flow: Some(kib),
            ..Sample::default()
        }
    }

    #[test]
    fn udp_targets_go_to_their_own_table_with_the_sslh_row() {
        let mut samples = Vec::new();
        for round in 0..3 {
            samples.push(sample("direct", round, 100.0, 0.0));
            samples.push(sample("serve2-udp", round, 65.0 + round as f64 * 10.0, 1.0));
            samples.push(sample("nginx-udp", round, 50.0, 2.0));
        }
        let verdicts = verdicts(&samples);
        let udp: Vec<&Verdict> = verdicts.iter().filter(|v| v.udp).collect();
        // Round trips vs direct and vs nginx, memory vs nginx: what was measured.
        assert_eq!(udp.len(), 3, "{udp:?}");
        let vs_direct = udp.iter().find(|v| v.peer == "direct").unwrap();
        assert!((vs_direct.ratio_median - 0.75).abs() < 1e-9 && vs_direct.met); // 0.65, 0.75, 0.85
        let memory = udp.iter().find(|v| v.what.contains("memory")).unwrap();
        assert!((memory.ratio_median - 0.5).abs() < 1e-9 && memory.met);
        let table = table(&verdicts, 3).unwrap();
        assert!(
            table.contains("| UDP 64 B round trips/s, 1 flow: serve2-udp ≥ 0.70× direct | 75.0 | 100 |"),
            "{table}"
        );
        assert!(table.contains("not available |"), "{table}");
        // The TCP headline leaves them out.
        let tcp = crate::headline::table(&verdicts, &[], &samples, 3);
        assert!(!tcp.contains("UDP"), "{tcp}");
    }

    #[test]
    fn a_slow_udp_row_is_not_met_and_nothing_measured_is_no_table() {
        let samples = vec![sample("direct", 0, 100.0, 0.0), sample("serve2-udp", 0, 60.0, 1.0)];
        let verdicts = verdicts(&samples);
        let table = table(&verdicts, 1).unwrap();
        assert!(table.contains("| **0.60** | **no** |"), "{table}");
        assert!(table.contains("1 round: the targets are judged"), "{table}");
        assert!(super::table(&[], 3).is_none());
    }
}
