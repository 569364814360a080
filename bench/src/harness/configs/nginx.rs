//! nginx's stream module as the UDP peer: Debian 12 ships sslh 1.20, which
//! has no UDP (sslh's UDP support came after v1.21), so the UDP rows'
//! peer is the best UDP proxy Debian 12 does have.

use std::path::Path;

use super::Setup;

/// Where Debian's libnginx-mod-stream puts the module.
pub const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx proxying UDP on the port to the echo origin, as deployed: Debian's
/// `worker_processes auto`, `reuseport` (nginx's advice for UDP with several
/// workers: a flow's datagrams must reach the worker holding its session),
/// the stream defaults (`proxy_responses` unlimited, `proxy_timeout` 10 min)
/// and a line per session in the access log. `connections` must fit the
/// flows held at once (two descriptors each: client session, upstream).
pub fn nginx_udp(setup: &Setup, work: &Path, connections: u64) -> String {
    let Setup { port, to, .. } = setup;
    let access_log = match &setup.log_file {
        Some(file) => format!("access_log {} session;", file.display()),
        None => "access_log off;".to_owned(),
    };
    format!(
        "\
load_module {STREAM_MODULE};
worker_processes auto;
pid {work}/nginx-udp.pid;
error_log {work}/nginx-udp.error.log warn;
events {{
    worker_connections {connections};
}}
stream {{
    log_format session '$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time';
    {access_log}
    server {{
        listen 127.0.0.1:{port} udp reuseport;
        proxy_pass 127.0.0.1:{udp};
    }}
}}
",
        work = work.display(),
        udp = to.udp,
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::setup;
    use super::*;

    #[test]
    fn nginx_proxies_the_port_to_the_echo_origin_and_logs_each_session() {
        let config = nginx_udp(&setup(Some("/tmp/nginx-udp.log")), Path::new("/tmp/work"), 30000);
        assert!(config.contains("listen 127.0.0.1:9000 udp reuseport;"), "{config}");
        assert!(config.contains("proxy_pass 127.0.0.1:1004;"), "{config}");
        assert!(config.contains("access_log /tmp/nginx-udp.log session;"), "{config}");
        assert!(config.contains("worker_connections 30000;"), "{config}");
        assert!(config.contains("pid /tmp/work/nginx-udp.pid;"), "{config}");
        let silent = nginx_udp(&setup(None), Path::new("/tmp/work"), 30000);
        assert!(silent.contains("access_log off;"), "{silent}");
    }
}
