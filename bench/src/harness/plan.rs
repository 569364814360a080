//! What one run measures, and with what: the command line, and the plan
//! made from it.

use std::path::PathBuf;

use anyhow::Context;

use crate::systems::System;

/// `serve2-bench`: serve2d against direct connections, HAProxy and sslh, on
/// the same origins, the same load and the same machine (as root).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "serve2-bench")]
pub struct BenchArgs {
    /// Rounds; each round measures every system once, in turn.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Seconds per timed metric (bulk transfer, connection rate, HTTP).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// One round, 2 s per timed metric, 500 held connections: for checking the harness.
    #[arg(long)]
    pub quick: bool,
    /// Only these systems (comma-separated; `udp` stands for every UDP
    /// row); `direct` is always measured, the ratios need it.
    #[arg(long, value_delimiter = ',', value_name = "SYSTEM,...")]
    pub only: Vec<String>,
    /// The serve2d systems that are silent by design (`serve2`, the steered
    /// and catalogue rows) log their per-connection lines too, as deployed.
    #[arg(long)]
    pub log_connections: bool,
    /// Where serve2d and serve2-load are (default: next to this program).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Output folder: results.json, report.md, ratios.svg, and work/ for
    /// the generated configurations and logs.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    pub out: PathBuf,
    /// The page whose generated section gets the results.
    #[arg(long, value_name = "FILE", default_value = "docs/PERFORMANCE.md")]
    pub docs: PathBuf,
}

/// The run's settings and paths.
#[derive(Debug)]
pub struct Plan {
    pub rounds: u32,
    pub seconds: u64,
    /// Connections `hold` keeps open for the idle-cost metric.
    pub held: usize,
    /// Sequential connections timed by `latency`.
    pub latency_count: usize,
    /// Connections the syscall phase counts, after its warm-up.
    pub syscall_connections: usize,
    pub systems: Vec<System>,
    /// Whether any system besides `direct` is measured on TCP, or on UDP:
    /// `direct` runs only the kinds something is compared with.
    pub tcp: bool,
    pub udp: bool,
    /// Flows `udp-hold` keeps open for the idle-cost metric.
    pub udp_held: usize,
    /// Most flows one new-flow run starts: every flow stays in the proxy
    /// for its timeout (serve2: `establishedTimeout`, 120 s), so they must
    /// fit under serve2's default `maxFlows` (65,536) and, one backend
    /// socket each, the descriptor limit.
    pub udp_max_flows: usize,
    pub serve2d: PathBuf,
    pub load: PathBuf,
    /// Output folder; generated configs and logs go in `work`.
    pub out: PathBuf,
    pub work: PathBuf,
    pub docs: PathBuf,
    /// Whether the silent serve2d systems log a line per connection too.
    pub log_connections: bool,
}

impl Plan {
    pub fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let systems = chosen_systems(&args.only)?;
        let others = || systems.iter().filter(|&&system| system != System::Direct);
        let (tcp, udp) = (others().any(|s| s.has_tcp()), others().any(|s| s.has_udp()));
        let bin_dir = match &args.bin_dir {
            Some(dir) => dir.clone(),
            None => {
                let exe = std::env::current_exe().context("cannot find the serve2-bench executable")?;
                exe.parent().context("serve2-bench has no folder")?.to_owned()
            }
        };
        let out = std::path::absolute(&args.out)?;
        let (rounds, seconds, held, udp_held) =
            if args.quick { (1, 2, 500, 2000) } else { (args.rounds.max(1), args.seconds.max(1), 5000, 10_000) };
        Ok(Plan {
            rounds,
            seconds,
            held,
            latency_count: 2000,
            syscall_connections: 2000,
            systems,
            tcp,
            udp,
            udp_held,
            udp_max_flows: udp_max_flows(crate::netns::open_files_limit()?),
            serve2d: bin_dir.join("serve2d"),
            load: bin_dir.join("serve2-load"),
            work: out.join("work"),
            out,
            docs: std::path::absolute(&args.docs)?,
            log_connections: args.log_connections,
        })
    }
}

/// [`Plan::udp_max_flows`] under a descriptor limit of `files`.
fn udp_max_flows(files: u64) -> usize {
    (files.saturating_sub(1000) as usize).min(40_000)
}

/// `direct`, then every system `--only` names (all of them without it).
fn chosen_systems(only: &[String]) -> anyhow::Result<Vec<System>> {
    if only.is_empty() {
        return Ok(System::ALL.to_vec());
    }
    let mut systems = vec![System::Direct];
    for name in only {
        let named = if name.trim() == "udp" {
            System::UDP.to_vec()
        } else {
            vec![System::parse(name).with_context(|| {
                let known: Vec<&str> = System::ALL.iter().map(|s| s.name()).collect();
                format!("unknown system `{name}`; known: udp, {}", known.join(", "))
            })?]
        };
        for system in named {
            if !systems.contains(&system) {
                systems.push(system);
            }
        }
    }
    Ok(systems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(only: &[&str]) -> Vec<&'static str> {
        let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
        chosen_systems(&only).unwrap().into_iter().map(System::name).collect()
    }

    #[test]
    fn new_flows_fit_the_descriptors_and_the_table() {
        assert_eq!(udp_max_flows(20_000), 19_000);
        assert_eq!(udp_max_flows(1 << 20), 40_000);
        assert_eq!(udp_max_flows(500), 0);
    }

    #[test]
    fn only_udp_is_direct_and_the_udp_rows() {
        assert_eq!(names(&["udp"]), ["direct", "serve2-udp", "serve2-udp-detect", "nginx-udp"]);
        assert_eq!(
            names(&["nginx-udp", "udp", "serve2"]),
            ["direct", "nginx-udp", "serve2-udp", "serve2-udp-detect", "serve2"]
        );
        assert_eq!(names(&[]).len(), System::ALL.len());
        let only = ["nginx".to_owned()];
        assert!(chosen_systems(&only).unwrap_err().to_string().contains("known: udp, direct"));
    }
}
