//! `serve2-bench` (run by `cargo xtask bench`): serve2d against direct
//! connections, HAProxy and sslh — and for UDP, nginx's stream module —
//! on the same origins, the same load and the same machine.
//!
//! It re-runs itself in a fresh network namespace (`netns`), where every
//! round starts each system in turn (`systems`, `launch`, `configs`),
//! measures it (`measure`, `measure_udp`, `tools`, `logcheck`, `procfs`) and stops it; an
//! untimed phase then counts the logging proxies' syscalls per connection
//! under strace (`syscalls`). The results go to the output folder and the
//! docs page (`report`, `stats`, `headline`, `table`, `svg`, `docs`).

mod cgroup;
mod configs;
mod docs;
mod headline;
mod headline_udp;
mod launch;
mod logcheck;
mod measure;
mod measure_udp;
mod netns;
mod origins;
mod plan;
mod procfs;
mod procs;
mod report;
mod sample;
mod stats;
mod svg;
mod syscalls;
mod systems;
mod table;
mod tools;

use std::process::Command;

use anyhow::bail;
use clap::Parser;

use plan::{BenchArgs, Plan};

fn main() -> anyhow::Result<()> {
    let plan = Plan::new(&BenchArgs::parse())?;
    if netns::inside() {
        return bench(&plan);
    }
    if !is_root() {
        bail!("serve2-bench needs root: it runs in its own network namespace and steers ports with eBPF");
    }
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
    let profiles = syscalls::profile_all(plan, &origins);
    drop(origins);
    let results = report::Results::new(plan, samples, profiles);
    let text = results.write(&plan.out)?;
    println!("{text}");
    docs::update(&plan.docs, &results)?;
    eprintln!(
        "bench: wrote {0}/results.json, {0}/report.md, {0}/ratios.svg and {1}",
        plan.out.display(),
        plan.docs.display()
    );
    Ok(())
}

fn is_root() -> bool {
    procs::output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}
