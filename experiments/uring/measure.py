#!/usr/bin/env python3
"""Measures the three proxies against direct connections on the benchmark's
connection workload (issue 9, point 3). Run as root from the repository
root, after building serve2-load and this crate in release mode:

    python3 experiments/uring/measure.py [--rounds 5] [--seconds 5] [--out DIR]

It re-runs itself in a fresh network namespace (lo up, the ephemeral port
range widened as `cargo xtask bench` does), starts one banner origin, then:

- timed rounds, interleaved (direct, epoll, uring, ... then again): each
  proxy freshly started in its own cgroup v2; `serve2-load connrate
  --concurrency 16`, the proxy's CPU time over it (cgroup `cpu.stat` and
  /proc/PID/stat utime+stime), then `serve2-load latency`;
- a counting pass per proxy, separate so that tracing never slows a timed
  run: `perf stat` on syscall and io_uring tracepoints over a connrate run
  and over a latency run (one connection at a time), and `strace -c -f`
  over a connrate run for the per-syscall breakdown.

Writes results.json and report.md to --out (default target/uring-measure
under this crate) and prints the report.
"""

import argparse
import json
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOAD = os.path.join(ROOT, "target/release/serve2-load")
PROXY = os.path.join(HERE, "target/release/uring-experiment")
MARKER = "URING_MEASURE_NETNS"
CONCURRENCY = 16
LATENCY_COUNT = 2000

# name -> proxy arguments (None: the client connects to the origin itself)
SYSTEMS = {
    "direct": None,
    "epoll": ["epoll"],
    "uring": ["uring"],
    "uring-plain": ["uring", "--plain"],
    "uring-plain-sync": ["uring", "--plain", "--sync-shutdown"],
    "hybrid": ["hybrid"],
}

# Tracepoints counted per connection in the counting pass.
EVENTS = [
    "raw_syscalls:sys_enter",
    "io_uring:io_uring_submit_req",
    "io_uring:io_uring_queue_async_work",
    "io_uring:io_uring_poll_arm",
    "io_uring:io_uring_task_add",
    "context-switches",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (at most, with --quiet-rounds)")
    parser.add_argument(
        "--quiet-rounds",
        type=int,
        default=0,
        help="stop once this many quiet rounds (see --quiet-below) are in, or after --rounds",
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--out", default=os.path.join(HERE, "target/uring-measure"))
    parser.add_argument("--no-counting", action="store_true", help="skip the perf/strace pass")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.25,
        help="a round is quiet if, in each of its runs, other processes used fewer cores than this",
    )
    parser.add_argument("--report-only", metavar="RESULTS_JSON", help="re-render the report of an earlier run")
    args = parser.parse_args()
    if args.report_only:
        with open(args.report_only) as f:
            results = json.load(f)
        print(render(results, [s for s in args.systems.split(",") if s], args))
        return
    if os.environ.get(MARKER) is None:
        env = dict(os.environ, **{MARKER: "1"})
        os.execvpe("unshare", ["unshare", "--net", "--", sys.executable, *sys.argv], env)
    prepare_namespace()
    systems = [s for s in args.systems.split(",") if s]
    for name in systems:
        if name not in SYSTEMS:
            sys.exit(f"unknown system {name}; known: {', '.join(SYSTEMS)}")
    os.makedirs(args.out, exist_ok=True)
    global HARNESS
    HARNESS = Cgroup("harness")
    origin = start([LOAD, "origin", "--listen", "127.0.0.1:0", "--mode", "banner"], HARNESS)
    results = {"machine": machine(), "rounds": [], "counting": {}}
    try:
        quiet = 0
        for round_index in range(args.rounds):
            samples = []
            for name in systems:
                sample = timed_round(name, origin.addr, args.seconds)
                sample["round"] = round_index + 1
                print(f"round {round_index + 1} {name}: {json.dumps(sample)}", file=sys.stderr)
                samples.append(sample)
            results["rounds"] += samples
            quiet += all(s["foreign_cores"] < args.quiet_below for s in samples)
            if args.quiet_rounds and quiet >= args.quiet_rounds:
                break
        if not args.no_counting:
            for name in systems:
                if SYSTEMS[name] is not None:
                    results["counting"][name] = counting_pass(name, origin.addr, args.out)
                    print(f"counting {name}: {json.dumps(results['counting'][name])}", file=sys.stderr)
    finally:
        origin.stop()
        HARNESS.remove()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    report = render(results, systems, args)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    print(report)


def prepare_namespace():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Each proxied connection opens a backend connection from 127.0.0.1:
    # the default 28k ephemeral ports would bound the rate (as in the bench).
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write("1024 65535")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine():
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "model": model, "kernel": os.uname().release, "date": time.strftime("%F %T %Z")}


class Cgroup:
    """A cgroup v2 of our own: CPU time of every thread that ever ran in it
    (io_uring's io-wq workers included)."""

    def __init__(self, name):
        root = next(
            line.split()[1] for line in open("/proc/self/mounts") if line.split()[2] == "cgroup2"
        )
        self.path = os.path.join(root, f"uring-measure-{os.getpid()}-{name}")
        os.makedirs(self.path, exist_ok=True)

    def enter(self):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write("0")

    def cpu_us(self):
        with open(os.path.join(self.path, "cpu.stat")) as f:
            return next(int(l.split()[1]) for l in f if l.startswith("usage_usec"))

    def remove(self):
        for _ in range(500):
            if not os.path.exists(self.path):
                return
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.01)


class Started:
    """A process that prints {"ready":"ADDR"} once listening."""

    def __init__(self, process, addr, cgroup):
        self.process, self.addr, self.cgroup = process, addr, cgroup

    def stop(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if self.cgroup:
            self.cgroup.remove()

    def proc_cpu_us(self):
        """(utime, stime) of every thread, from /proc/PID/stat."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        return int(fields[11]) * tick_us, int(fields[12]) * tick_us


def start(command, cgroup):
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=cgroup.enter if cgroup else None
    )
    ready, _, _ = select.select([process.stdout], [], [], 10)
    if not ready:
        process.kill()
        sys.exit(f"{command} printed no ready line")
    line = process.stdout.readline().decode()
    return Started(process, json.loads(line)["ready"], cgroup)


def load(command, addr, *rest, wrap=()):
    out = subprocess.run(
        [*wrap, LOAD, command, "--target", addr, *rest],
        capture_output=True,
        check=True,
        text=True,
        preexec_fn=HARNESS.enter,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def busy_us():
    """CPU time the whole machine spent busy (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) * 1e6 / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def timed_round(name, origin, seconds):
    sample = {"system": name, "loadavg_before": loadavg()}
    proxy = None
    if SYSTEMS[name] is not None:
        proxy = start([PROXY, *SYSTEMS[name], "--listen", "127.0.0.1:0", "--target", origin], Cgroup(name))
    target = proxy.addr if proxy else origin
    try:
        cpu_before = (proxy.cgroup.cpu_us(), proxy.proc_cpu_us()) if proxy else None
        ours_before = HARNESS.cpu_us() + (cpu_before[0] if proxy else 0)
        busy_before, started = busy_us(), time.time()
        rate = load("connrate", target, "--concurrency", str(CONCURRENCY), "--seconds", str(seconds))
        ours = HARNESS.cpu_us() + (proxy.cgroup.cpu_us() if proxy else 0) - ours_before
        # Cores' worth of CPU used by anything else during the run: other
        # sessions on this shared machine.
        sample["foreign_cores"] = max(0.0, busy_us() - busy_before - ours) / ((time.time() - started) * 1e6)
        sample["conns_per_sec"] = rate["conns_per_sec"]
        sample["ok"] = rate["ok"]
        sample["errors"] = rate["errors"] + rate["misroutes"]
        if proxy and rate["ok"]:
            sample["cpu_us_per_conn"] = (proxy.cgroup.cpu_us() - cpu_before[0]) / rate["ok"]
            user, system = proxy.proc_cpu_us()
            sample["user_us_per_conn"] = (user - cpu_before[1][0]) / rate["ok"]
            sample["sys_us_per_conn"] = (system - cpu_before[1][1]) / rate["ok"]
        latency = load("latency", target, "--count", str(LATENCY_COUNT))
        sample.update({k: latency[k] for k in ("p50_us", "p90_us", "p99_us")})
        sample["errors"] += latency["errors"] + latency["misroutes"]
    finally:
        if proxy:
            proxy.stop()
    sample["loadavg_after"] = loadavg()
    return sample


def counting_pass(name, origin, out):
    result = {}
    for workload, args in [
        ("connrate", ["connrate", "--concurrency", str(CONCURRENCY), "--seconds", "3"]),
        ("latency", ["latency", "--count", str(LATENCY_COUNT)]),
    ]:
        proxy = start([PROXY, *SYSTEMS[name], "--listen", "127.0.0.1:0", "--target", origin], Cgroup(name))
        try:
            counts_file = os.path.join(out, f"perf-{name}-{workload}.csv")
            perf = ["perf", "stat", "-x,", "-o", counts_file, "-e", ",".join(EVENTS), "-p", str(proxy.process.pid), "--"]
            rate = load(args[0], proxy.addr, *args[1:], wrap=perf)
            ok = rate["ok"]
            counts = {}
            for line in open(counts_file):
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[2] in EVENTS and fields[0].isdigit():
                    counts[fields[2].split(":")[-1]] = int(fields[0]) / ok
            result[workload] = {"conns": ok, "per_conn": counts}
        finally:
            proxy.stop()
    result["strace"] = strace_pass(name, origin, out)
    return result


def strace_pass(name, origin, out):
    proxy = start([PROXY, *SYSTEMS[name], "--listen", "127.0.0.1:0", "--target", origin], Cgroup(name))
    summary = os.path.join(out, f"strace-{name}.txt")
    tracer = subprocess.Popen(
        ["strace", "-f", "-c", "-o", summary, "-p", str(proxy.process.pid)], stderr=subprocess.DEVNULL
    )
    try:
        # strace attaches to every thread before tracing: wait until each
        # one reports a tracer.
        deadline = time.time() + 10
        while time.time() < deadline and not all_traced(proxy.process.pid):
            time.sleep(0.01)
        rate = load("connrate", proxy.addr, "--concurrency", str(CONCURRENCY), "--seconds", "3")
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        proxy.stop()
    calls = {}
    for line in open(summary):
        fields = line.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    ok = rate["ok"]
    return {"conns": ok, "per_conn": {k: v / ok for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}}


def all_traced(pid):
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            if any(l.startswith("TracerPid:\t0") for l in f):
                return False
    return True


def spread(values, fmt="{:.0f}"):
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def render(results, systems, args):
    m = results["machine"]
    args.rounds = max((s["round"] for s in results["rounds"]), default=0)
    lines = [
        f"Measured {m['date']}: {m['cpus']} cores ({m['model']}), Linux {m['kernel']}; "
        f"{args.rounds} interleaved rounds × {args.seconds} s connrate (concurrency {CONCURRENCY}), "
        f"{LATENCY_COUNT} latency samples per round.",
        "",
    ]
    lines += main_table(results, results["rounds"], systems)
    quiet_rounds = {
        r
        for r in {s["round"] for s in results["rounds"]}
        if all(s.get("foreign_cores", 1e9) < args.quiet_below for s in results["rounds"] if s["round"] == r)
    }
    quiet = [s for s in results["rounds"] if s["round"] in quiet_rounds]
    lines += [
        "",
        f"Quiet rounds only ({len(quiet_rounds)} of {args.rounds}: other processes below {args.quiet_below} cores "
        "in every run of the round):",
        "",
    ]
    lines += main_table(results, quiet, systems) if quiet else ["(none)"]
    loads = [s["loadavg_before"] for s in results["rounds"]]
    foreign = [s["foreign_cores"] for s in results["rounds"] if "foreign_cores" in s]
    lines += [
        "",
        "Cells: median (min–max) over rounds; ×direct, ×epoll: ratio within each round, then median. CPU: the proxy's cgroup "
        "(`cpu.stat`, io-wq workers included) over the connrate run; user: utime from /proc/PID/stat. "
        "Counts: perf tracepoints over a separate 3 s connrate run.",
        "",
        f"Load average before the runs: {min(loads):.2f}–{max(loads):.2f} (ours alone keeps it near 3); "
        f"CPU used by other processes during the connrate runs: {spread(foreign, '{:.2f}')} cores.",
        "",
        "Counting pass (perf tracepoints per connection; 16 concurrent / one at a time):",
        "",
        "| system | syscalls | ring ops | io-wq punts | poll arms | task-work adds | context switches |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in systems:
        counting = results["counting"].get(name)
        if not counting:
            continue
        cells = []
        for key in EVENTS:
            key = key.split(":")[-1]
            pair = [counting.get(w, {}).get("per_conn", {}).get(key) for w in ("connrate", "latency")]
            cells.append(" / ".join("—" if v is None else f"{v:.1f}" for v in pair))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "strace -c -f over a connrate run, calls per connection (slowed by tracing):", ""]
    for name in systems:
        counting = results["counting"].get(name)
        if counting:
            per = counting["strace"]["per_conn"]
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items() if v >= 0.01))
    return "\n".join(lines) + "\n"


def main_table(results, rounds, systems):
    lines = [
        "| system | conns/s | ×direct | ×epoll | TTFR p50 µs | TTFR p99 µs | CPU µs/conn | CPU ×epoll | of which user | "
        "syscalls/conn | io_uring_enter/conn | ring ops/conn | io-wq punts/conn | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_round = {}
    for s in rounds:
        by_round.setdefault(s["round"], {})[s["system"]] = s
    for name in systems:
        samples = [s for s in rounds if s["system"] == name]
        ratios = [
            r[name]["conns_per_sec"] / r["direct"]["conns_per_sec"]
            for r in by_round.values()
            if name in r and "direct" in r and r["direct"].get("conns_per_sec")
        ]
        def paired(key, base):
            return [
                r[name][key] / r[base][key]
                for r in by_round.values()
                if name in r and base in r and r[name].get(key) and r[base].get(key)
            ]

        counting = results["counting"].get(name, {})
        rate_counts = counting.get("connrate", {}).get("per_conn", {})
        enter = counting.get("strace", {}).get("per_conn", {}).get("io_uring_enter")

        def count(key):
            return f"{rate_counts[key]:.1f}" if key in rate_counts else "—"

        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                name,
                spread([s["conns_per_sec"] for s in samples if "conns_per_sec" in s]),
                spread(ratios, "{:.2f}") if name != "direct" else "—",
                spread(paired("conns_per_sec", "epoll"), "{:.2f}") if name != "epoll" else "—",
                spread([s["p50_us"] for s in samples if "p50_us" in s], "{:.1f}"),
                spread([s["p99_us"] for s in samples if "p99_us" in s], "{:.0f}"),
                spread([s["cpu_us_per_conn"] for s in samples if "cpu_us_per_conn" in s], "{:.1f}"),
                spread(paired("cpu_us_per_conn", "epoll"), "{:.2f}") if name not in ("epoll", "direct") else "—",
                spread([s["user_us_per_conn"] for s in samples if "user_us_per_conn" in s], "{:.1f}"),
                count("sys_enter"),
                f"{enter:.2f}" if enter is not None else ("0" if counting else "—"),
                count("io_uring_submit_req"),
                count("io_uring_queue_async_work"),
                sum(s.get("errors", 0) for s in samples),
            )
        )
    return lines


if __name__ == "__main__":
    main()
