//! The UDP engine's sockets at the kernel's level: each datagram's dialled
//! address, replies from a chosen address, and the sharing rules that let a
//! reply socket bind a port serve2's own backend sockets hold.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use serve2::config::ListenAddress;
use serve2::udp::socket::{RecvBatch, bind, bind_reply, send_from, upstream_socket};

use crate::support::in_netns;

/// The next datagram on `socket` (non-blocking), polled within 10 s.
fn receive_one(batch: &mut RecvBatch, socket: &UdpSocket) -> (Vec<u8>, serve2::udp::socket::Addresses) {
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    loop {
        match batch.receive(socket.as_raw_fd()) {
            Ok(n) if n > 0 => {
                let (data, addresses, truncated) = batch.datagram(0).unwrap();
                assert!(!truncated);
                return (data.to_vec(), addresses);
            }
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => panic!("{e}"),
            _ => {
                assert!(std::time::Instant::now() < deadline, "no datagram");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn blocking(bind: &str) -> UdpSocket {
    let socket = UdpSocket::bind(bind).unwrap();
    socket.set_read_timeout(Some(crate::support::WAIT)).unwrap();
    socket
}

#[test]
fn a_dual_stack_socket_reports_each_dialled_address_and_replies_from_it() {
    in_netns(|| async {
        let server = bind(&ListenAddress::AllInterfaces(0)).unwrap();
        let port = server.local_addr().unwrap().port();
        let mut batch = RecvBatch::new();
        for (client_at, dialled) in [("127.0.0.1:0", "127.0.0.1"), ("127.0.0.1:0", "127.0.0.3"), ("[::1]:0", "[::1]")] {
            let dialled: SocketAddr = format!("{dialled}:{port}").parse().unwrap();
            let client = blocking(client_at);
            client.send_to(b"hello", dialled).unwrap();
            let (data, addresses) = receive_one(&mut batch, &server);
            assert_eq!(data, b"hello");
            assert_eq!(addresses.source, client.local_addr().unwrap(), "IPv4 clients are reported as IPv4");
            assert_eq!(addresses.dialled, Some(dialled));
            send_from(server.as_raw_fd(), true, b"back", addresses.source, dialled.ip()).unwrap();
            let mut buffer = [0u8; 16];
            let (n, from) = client.recv_from(&mut buffer).unwrap();
            assert_eq!((&buffer[..n], from), (&b"back"[..], dialled));
        }
    });
}

#[test]
fn a_reply_socket_can_bind_a_port_a_backend_socket_holds_and_backend_sockets_never_share_one() {
    in_netns(|| async {
        let backend = blocking("127.0.0.1:0");
        let upstream = upstream_socket(backend.local_addr().unwrap()).unwrap();
        let held = upstream.local_addr().unwrap();
        // Under "all" a client may dial exactly that port on that address.
        let reply = bind_reply(held).expect("a reply socket shares the port of a connected backend socket");
        // Backend sockets take their ports before SO_REUSEADDR: the kernel
        // never hands the same one out twice.
        let others: Vec<UdpSocket> =
            (0..200).map(|_| upstream_socket(backend.local_addr().unwrap()).unwrap()).collect();
        let mut ports: Vec<u16> = others.iter().map(|s| s.local_addr().unwrap().port()).collect();
        ports.push(held.port());
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 201, "two backend sockets shared a port");
        // The backend's answers still reach the connected socket, not the
        // reply socket bound to the same address and port.
        backend.send_to(b"answer", held).unwrap();
        upstream.set_nonblocking(false).unwrap();
        upstream.set_read_timeout(Some(crate::support::WAIT)).unwrap();
        let mut buffer = [0u8; 16];
        let n = upstream.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"answer");
        // Without steering, another client's datagram to that port lands on
        // the unconnected reply socket: serve2 reads reply sockets too.
        let client = blocking("127.0.0.1:0");
        client.send_to(b"stray", held).unwrap();
        reply.set_nonblocking(false).unwrap();
        reply.set_read_timeout(Some(crate::support::WAIT)).unwrap();
        let (n, from) = reply.recv_from(&mut buffer).unwrap();
        assert_eq!((&buffer[..n], from), (&b"stray"[..], client.local_addr().unwrap()));
    });
}

/// A socket as the steered one is (non-blocking, dialled addresses on),
/// bound to `127.0.0.1:0`, but with SO_REUSEADDR: so that, without a
/// steering program, the engine's reply socket for this very address
/// can bind beside it and take its datagrams, as it would if steering
/// stopped.
fn steered_stand_in() -> UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_nonblocking(true).unwrap();
    let one: libc::c_int = 1;
    // SAFETY: the option value is a live c_int of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_IP,
            libc::IP_RECVORIGDSTADDR,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.into()
}

#[test]
fn steered_flows_answer_through_a_socket_bound_to_the_dialled_address_which_also_takes_strays() {
    in_netns(|| async {
        let backend = crate::support::udp::UdpBackend::start("b").await;
        let text =
            format!(r#"{{"udpAddress": "127.0.0.1:0", "udp": {{"forward": {{"target": "{}"}}}}}}"#, backend.addr);
        let config = serve2::Config::parse(std::path::Path::new("t.json"), &text).unwrap();
        let server = serve2::udp::UdpServer::new(serve2::udp::UdpRouter::new(&config, None));
        let socket = steered_stand_in();
        let dialled = socket.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn({
            let server = server.clone();
            async move {
                server
                    .serve(socket, true, async {
                        let _ = stopped.await;
                    })
                    .await
            }
        });
        let client = crate::support::udp::client().await;
        // The first datagram reaches the daemon's socket; its flow's reply
        // socket binds the dialled address and answers from it.
        assert_eq!(crate::support::udp::exchange(&client, dialled, "1").await, "b:1");
        // Later datagrams land on the (newer) reply socket, as they would
        // with steering gone: still the same flow, answered the same way.
        assert_eq!(crate::support::udp::exchange(&client, dialled, "2").await, "b:2");
        let other = crate::support::udp::client().await;
        assert_eq!(crate::support::udp::exchange(&other, dialled, "3").await, "b:3");
        let status = server.status();
        assert_eq!((status.flows, status.policies[0].created), (2, 2));
        assert_eq!(status.listeners, [format!("{dialled} (steering)")]);
        let _ = stop.send(());
        tokio::time::timeout(crate::support::WAIT, serving).await.unwrap().unwrap();
        assert_eq!(server.status().flows, 0, "every flow ended at shutdown");
    });
}
