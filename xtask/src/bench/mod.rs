//! `cargo xtask bench`: serve2d against direct connections, HAProxy and
//! sslh, on the same origins, the same load and the same machine.
//!
//! The outer process installs and builds, then re-runs itself in a fresh
//! network namespace (`netns`), where every round starts each system in turn
//! (`systems`, `configs`), measures it (`measure`, `tools`, `sample`) and
//! stops it. The results go to target/bench/ and docs/PERFORMANCE.md
//! (`report`, `svg`, `docs`).

mod cgroup;
mod configs;
mod docs;
mod measure;
mod netns;
mod origins;
mod procs;
mod report;
mod sample;
mod svg;
mod systems;
mod tools;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::cmd::{cargo, run as run_loudly, workspace};
use crate::setup;
use systems::System;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Rounds; each round measures every system once, in turn.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per timed metric (bulk transfer, connection rate, HTTP).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// One round, 2 s per timed metric, 500 held connections: for checking the harness.
    #[arg(long)]
    quick: bool,
    /// Only these systems (comma-separated); `direct` is always measured, the ratios need it.
    #[arg(long, value_delimiter = ',', value_name = "SYSTEM,...")]
    only: Vec<String>,
    /// serve2d logs its per-connection summary lines (as deployed, `info`)
    /// instead of running with only start-up lines.
    #[arg(long)]
    log_connections: bool,
}

/// What one run measures, and with what.
#[derive(Debug)]
pub struct Plan {
    pub rounds: u32,
    pub seconds: u64,
    /// Connections `hold` keeps open for the idle-cost metric.
    pub held: usize,
    /// Sequential connections timed by `latency`.
    pub latency_count: usize,
    pub systems: Vec<System>,
    pub serve2d: PathBuf,
    pub load: PathBuf,
    /// Output folder (target/bench); generated configs and logs go in work/.
    pub out: PathBuf,
    pub work: PathBuf,
    /// Whether serve2d logs a line per connection.
    pub log_connections: bool,
}

impl Plan {
    fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let mut systems = vec![System::Direct];
        for name in &args.only {
            let system = System::parse(name).with_context(|| {
                let known: Vec<&str> = System::ALL.iter().map(|s| s.name()).collect();
                format!("unknown system `{name}`; known: {}", known.join(", "))
            })?;
            if !systems.contains(&system) {
                systems.push(system);
            }
        }
        if args.only.is_empty() {
            systems = System::DEFAULT.to_vec();
        }
        let release = workspace().join("target/release");
        let out = workspace().join("target/bench");
        let (rounds, seconds, held) =
            if args.quick { (1, 2, 500) } else { (args.rounds.max(1), args.seconds.max(1), 5000) };
        Ok(Plan {
            rounds,
            seconds,
            held,
            latency_count: 2000,
            systems,
            serve2d: release.join("serve2d"),
            load: release.join("serve2-load"),
            work: out.join("work"),
            out,
            log_connections: args.log_connections,
        })
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args)?;
    if netns::inside() {
        return bench(&plan);
    }
    if !crate::cmd::is_root() {
        bail!("cargo xtask bench needs root: it runs in its own network namespace and steers ports with eBPF");
    }
    setup::packages(setup::BENCH_PACKAGES)?;
    setup::toolchain()?;
    run_loudly(cargo().args(["build", "--release", "-p", "serve2", "-p", "serve2-bench", "--bins"]))?;
    netns::reexec()
}

/// The benchmark proper, inside the namespace.
fn bench(plan: &Plan) -> anyhow::Result<()> {
    netns::prepare()?;
    std::fs::create_dir_all(&plan.work)?;
    let origins = origins::Origins::start(plan)?;
    let mut samples = Vec::new();
    for round in 0..plan.rounds {
        for &system in &plan.systems {
            eprintln!("bench: round {}/{}: {}", round + 1, plan.rounds, system.name());
            let sample = measure::system_round(plan, &origins, system, round);
            for problem in &sample.problems {
                eprintln!("bench:   problem: {problem}");
            }
            samples.push(sample);
        }
    }
    drop(origins);
    let results = report::Results::new(plan, samples);
    let table = results.write(&plan.out)?;
    println!("{table}");
    docs::update(&workspace().join("docs/PERFORMANCE.md"), &results, &table)?;
    eprintln!(
        "bench: wrote {0}/results.json, {0}/report.md, {0}/ratios.svg and docs/PERFORMANCE.md",
        plan.out.display()
    );
    Ok(())
}
