//! `psql` to a real PostgreSQL 15 through serve2's `postgres` route, with
//! and without the SSLRequest first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::{run, run_ok};
use crate::support::*;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A cluster in a temporary folder, run by user `postgres`; stopped on drop
/// (`pg_ctl` detaches the server, so it is no child to kill).
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    started: bool,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let chown = run(Command::new("chown").args(["postgres:postgres"]).arg(dir.path()), WAIT).await;
        assert!(chown.status.success(), "chown: {}", String::from_utf8_lossy(&chown.stderr));
        let mut cluster = Cluster { dir, port: free_port(), started: false };
        let data = cluster.data();
        as_postgres(&[&format!("{BIN}/initdb"), "--no-sync", "--auth=trust", "--username=postgres", "-D"], &data).await;
        let options = format!("-k {} -p {} -c listen_addresses=127.0.0.1", cluster.dir.path().display(), cluster.port);
        let log = cluster.dir.path().join("log");
        let mut start = Command::new("runuser");
        start
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "20", "start"]);
        cluster.started = true;
        let output = run(&mut start, Duration::from_secs(25)).await;
        assert!(
            output.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
                .arg(self.data())
                .args(["-m", "immediate", "-s", "stop"])
                .status();
        }
    }
}

async fn as_postgres(args: &[&str], path: &Path) {
    run_ok(Command::new("runuser").args(["-u", "postgres", "--"]).args(args).arg(path), Duration::from_secs(30)).await;
}

#[test]
fn psql_reaches_postgresql_through_the_postgres_route() {
    in_netns(|| async {
        if !peers_available(&[&format!("{BIN}/initdb"), &format!("{BIN}/pg_ctl"), "/usr/bin/psql", "/usr/sbin/runuser"])
        {
            return;
        }
        let cluster = Cluster::start().await;
        let (other, other_addr) = backend().await;
        let config = format!(
            r#"{{"address": ":0", "protocols": [
                {{"kind": "ssh", "conf": {{"target": {other}}}}},
                {{"kind": "httproute", "conf": {{"target": {other}}}}},
                {{"kind": "postgres", "conf": {{"target": "127.0.0.1:{port}"}}}}
            ]}}"#,
            other = json(&other_addr),
            port = cluster.port
        );
        let daemon = Daemon::start(&config).await;
        // disable: a StartupMessage first; prefer: an SSLRequest first, which
        // this server (no ssl) answers N, and libpq goes on in clear.
        for sslmode in ["disable", "prefer"] {
            let conninfo = format!("host=127.0.0.1 port={} user=postgres sslmode={sslmode}", daemon.addr.port());
            let sql = "select 42, inet_server_port(), (select ssl from pg_stat_ssl where pid = pg_backend_pid())";
            let mut psql = Command::new("psql");
            psql.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", &conninfo, "-c", sql]);
            let out = run_ok(&mut psql, WAIT).await;
            assert_eq!(out, format!("42|{}|f\n", cluster.port), "sslmode={sslmode}");
        }
        // The other routes on the port got nothing.
        assert!(tokio::time::timeout(Duration::from_millis(100), other.accept()).await.is_err());
        daemon.stop().await;
        drop(cluster);
    });
}
