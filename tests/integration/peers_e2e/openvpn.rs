//! A real OpenVPN 2.6 client reaching its server through serve2, over TCP
//! (`address`, the `openvpn` route) and over UDP (`udpAddress`, the UDP
//! `openvpn` kind), in TLS mode with a fresh PKI, the control channel bare,
//! with `--tls-auth`, `--tls-crypt` and `--tls-crypt-v2`; `--dev null`, so
//! no tun device is needed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::run_ok;
use crate::support::udp::UdpDaemon;
use crate::support::*;

const OPENVPN: &str = "/usr/sbin/openvpn";

/// Up to the client's "Initialization Sequence Completed": TLS handshake,
/// pull and one second of PUSH_REQUEST pacing.
const HANDSHAKE: Duration = Duration::from_secs(20);

/// Writes `ca.pem`, `server.pem`/`server.key` and `client.pem`/`client.key`.
fn write_pki(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "serve2 openvpn test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, usage) in
        [("server", ExtendedKeyUsagePurpose::ServerAuth), ("client", ExtendedKeyUsagePurpose::ClientAuth)]
    {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![format!("{name}.test")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        std::fs::set_permissions(dir.join(format!("{name}.key")), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// How the control channel is wrapped: each makes a different first packet
/// (P_CONTROL_HARD_RESET_CLIENT_V2 bare, with an HMAC, encrypted; V3 with a
/// wrapped client key).
#[derive(Debug, Clone, Copy)]
enum Wrap {
    Plain,
    TlsAuth,
    TlsCrypt,
    TlsCryptV2,
}

const WRAPS: [Wrap; 4] = [Wrap::Plain, Wrap::TlsAuth, Wrap::TlsCrypt, Wrap::TlsCryptV2];

impl Wrap {
    /// Makes the keys in `dir`; the server's and the client's extra options.
    async fn keys(self, dir: &Path) -> (Vec<String>, Vec<String>) {
        let at = |name: &str| dir.join(name).display().to_string();
        let genkey = |args: Vec<String>| async move {
            run_ok(Command::new(OPENVPN).arg("--genkey").args(args), WAIT).await;
        };
        let both = |option: &str, key: &str| vec![option.to_owned(), at(key)];
        match self {
            Wrap::Plain => (vec![], vec![]),
            Wrap::TlsAuth => {
                genkey(vec!["secret".into(), at("ta.key")]).await;
                let (mut server, mut client) = (both("--tls-auth", "ta.key"), both("--tls-auth", "ta.key"));
                server.push("0".into());
                client.push("1".into());
                (server, client)
            }
            Wrap::TlsCrypt => {
                genkey(vec!["secret".into(), at("tc.key")]).await;
                (both("--tls-crypt", "tc.key"), both("--tls-crypt", "tc.key"))
            }
            Wrap::TlsCryptV2 => {
                genkey(vec!["tls-crypt-v2-server".into(), at("v2s.key")]).await;
                genkey(vec!["tls-crypt-v2-client".into(), at("v2c.key"), "--tls-crypt-v2".into(), at("v2s.key")]).await;
                (both("--tls-crypt-v2", "v2s.key"), both("--tls-crypt-v2", "v2c.key"))
            }
        }
    }
}

/// How the peers and serve2 carry OpenVPN.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// The server's and the client's `--proto`.
    fn protos(self) -> [&'static str; 2] {
        match self {
            Transport::Tcp => ["tcp-server", "tcp-client"],
            // Point-to-point TLS mode over UDP needs nothing more: the
            // server takes its peer's address from the first packet that
            // authenticates (serve2's backend socket for the whole flow), and
            // the client's replies come from exactly the address it sent to,
            // so neither `--float` nor a fixed `--remote` on the server is
            // needed. `--explicit-exit-notify` only speeds up a peer's exit.
            Transport::Udp => ["udp", "udp"],
        }
    }

    /// A port nothing uses on this transport now.
    fn free_port(self) -> u16 {
        match self {
            Transport::Tcp => free_port(),
            Transport::Udp => crate::support::udp::free_port(),
        }
    }

    /// Waits, bounded, until the server is ready for its client.
    async fn server_ready(self, port: u16, log: &mut Lines<BufReader<ChildStdout>>) {
        match self {
            Transport::Tcp => wait_listening(port).await,
            // Printed once the socket is bound.
            Transport::Udp => wait_for("the OpenVPN UDP server", log, "link local (bound)", WAIT).await,
        }
    }

    /// serve2 with `protocols` in this transport's block.
    async fn serve2(self, protocols: &str) -> Serve2 {
        match self {
            Transport::Tcp => {
                Serve2::Tcp(Daemon::start(&format!(r#"{{"address": ":0", "protocols": [{protocols}]}}"#)).await)
            }
            Transport::Udp => Serve2::Udp(UdpDaemon::start(&format!(r#""udp": {{"protocols": [{protocols}]}}"#)).await),
        }
    }
}

/// serve2 serving TCP or UDP.
enum Serve2 {
    Tcp(Daemon),
    Udp(UdpDaemon),
}

impl Serve2 {
    fn port(&self) -> u16 {
        match self {
            Serve2::Tcp(daemon) => daemon.addr.port(),
            Serve2::Udp(daemon) => daemon.addr.port(),
        }
    }

    async fn stop(self) {
        match self {
            Serve2::Tcp(daemon) => daemon.stop().await,
            Serve2::Udp(daemon) => daemon.stop().await,
        }
    }
}

fn openvpn(dir: &Path, role: &str, args: &[String]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let file = |ext: &str| dir.join(format!("{role}.{ext}"));
    let mut child = Command::new(OPENVPN)
        .args(["--dev", "null", "--ifconfig-noexec", "--verb", "3", "--ca"])
        .arg(dir.join("ca.pem"))
        .arg("--cert")
        .arg(file("pem"))
        .arg("--key")
        .arg(file("key"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads `lines` until one contains `needle`, within `limit`.
async fn wait_for(who: &str, lines: &mut Lines<BufReader<ChildStdout>>, needle: &str, limit: Duration) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) if line.contains(needle) => return,
            Ok(Ok(Some(line))) => seen.push(line),
            Ok(_) => panic!("{who} exited before {needle:?}:\n{}", seen.join("\n")),
            Err(_) => panic!("{who}: no {needle:?} within {limit:?}:\n{}", seen.join("\n")),
        }
    }
}

/// Starts a TLS-mode server on `transport`, serve2 with `protocols`
/// (`{server}` is replaced by its address) and a client through serve2
/// (straight to the server without `protocols`); both must complete
/// initialisation.
async fn client_reaches_server_through(transport: Transport, protocols: Option<&str>, wrap: Wrap) {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let (server_wrap, client_wrap) = wrap.keys(dir.path()).await;
    let port = transport.free_port();
    let [server_proto, client_proto] = transport.protos();
    let mut server_args: Vec<String> =
        ["--proto", server_proto, "--local", "127.0.0.1", "--port", &port.to_string(), "--tls-server", "--dh", "none"]
            .map(String::from)
            .to_vec();
    server_args.extend(server_wrap);
    let (mut server, mut server_log) = openvpn(dir.path(), "server", &server_args);
    transport.server_ready(port, &mut server_log).await;
    assert!(server.try_wait().unwrap().is_none(), "the OpenVPN server exited");

    let daemon = match protocols {
        Some(protocols) => {
            Some(transport.serve2(&protocols.replace("{server}", &json(format!("127.0.0.1:{port}")))).await)
        }
        None => None,
    };
    let remote_port = daemon.as_ref().map_or(port, Serve2::port);
    let client_args = [
        "--client",
        "--proto",
        client_proto,
        "--remote",
        "127.0.0.1",
        &remote_port.to_string(),
        "--remote-cert-tls",
        "server",
        "--verify-x509-name",
        "server",
        "name",
        "--connect-retry-max",
        "1",
    ]
    .map(String::from)
    .into_iter()
    .chain(client_wrap)
    .collect::<Vec<_>>();
    let (_client, mut client_log) = openvpn(dir.path(), "client", &client_args);
    let done = "Initialization Sequence Completed";
    wait_for(&format!("the OpenVPN {transport:?} client ({wrap:?})"), &mut client_log, done, HANDSHAKE).await;
    wait_for(&format!("the OpenVPN {transport:?} server ({wrap:?})"), &mut server_log, done, WAIT).await;
    if let Some(daemon) = daemon {
        daemon.stop().await;
    }
}

/// [`client_reaches_server_through`] for every [`Wrap`] at once.
async fn every_wrap_through(transport: Transport, protocols: Option<&str>) {
    let [a, b, c, d] = WRAPS.map(|wrap| client_reaches_server_through(transport, protocols, wrap));
    tokio::join!(a, b, c, d);
}

/// Ssh and HTTP routes share the port; neither may take OpenVPN's bytes.
const OTHERS: &str = r#"{"kind": "ssh", "conf": {"target": "127.0.0.1:9"}},
    {"kind": "httproute", "conf": {"target": "127.0.0.1:9"}}"#;

/// [`every_wrap_through`] in a fresh namespace, OpenVPN installed.
fn every_wrap_in_netns(transport: Transport, protocols: Option<String>) {
    in_netns(|| async move {
        if peers_available(&[OPENVPN]) {
            every_wrap_through(transport, protocols.as_deref()).await;
        }
    });
}

/// The route entry sending OpenVPN to the server, after `others`.
fn routes(others: &str, kind: &str, default: bool) -> Option<String> {
    let default = if default { r#""default": true, "# } else { "" };
    Some(format!(r#"{others}, {{"kind": "{kind}", {default}"conf": {{"target": {{server}}}}}}"#))
}

/// The control: the peers themselves, serve2 bypassed.
#[test]
fn openvpn_tcp_client_reaches_its_server_directly() {
    every_wrap_in_netns(Transport::Tcp, None);
}

#[test]
fn openvpn_tcp_client_reaches_its_server_through_a_proxy_default() {
    every_wrap_in_netns(Transport::Tcp, routes(OTHERS, "proxy", true));
}

#[test]
fn openvpn_tcp_client_reaches_its_server_through_the_openvpn_route() {
    every_wrap_in_netns(Transport::Tcp, routes(OTHERS, "openvpn", false));
}

/// QUIC and WireGuard share the UDP port; neither may take OpenVPN's
/// datagrams.
const UDP_OTHERS: &str = r#"{"kind": "quic", "conf": {"target": "127.0.0.1:9"}},
    {"kind": "wireguard", "conf": {"target": "127.0.0.1:9"}}"#;

/// The control over UDP: the peers themselves, serve2 bypassed.
#[test]
fn openvpn_udp_client_reaches_its_server_directly() {
    every_wrap_in_netns(Transport::Udp, None);
}

#[test]
fn openvpn_udp_client_reaches_its_server_through_the_udp_openvpn_kind() {
    every_wrap_in_netns(Transport::Udp, routes(UDP_OTHERS, "openvpn", false));
}
