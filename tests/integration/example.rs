//! The custom-protocol example, run as a program.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

/// cargo builds examples for `cargo test`; they sit next to the test binary.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples/custom_protocol")
}

#[test]
fn the_custom_protocol_example_serves_its_protocols() {
    in_netns(|| async {
        let mut child = tokio::process::Command::new(example_binary())
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run examples/custom_protocol: `cargo test` builds it, a `--test` filter alone does not");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap().unwrap();
        let addr = line.strip_prefix("listening on ").expect("listening line").to_owned();

        for (sent, expected) in [
            (&b"HELLO world\n"[..], &b"Hello, world!\n"[..]),
            (b"SECRET\nHELLO transport\n", b"Hello, transport!\n"),
            (b"anything else", b"anything else"),
        ] {
            let mut client = TcpStream::connect(&addr).await.unwrap();
            client.write_all(sent).await.unwrap();
            assert_eq!(read_exact(&mut client, expected.len()).await, expected);
        }
        child.kill().await.unwrap();
    });
}
