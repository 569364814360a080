//! The epoll proxy: per worker a current-thread tokio runtime over its own
//! listener, one task per connection, as serve2d runs (`serve_per_core`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::relay::{buffers, relay};

/// Serves every listener on its own thread until a worker fails.
pub fn serve(listeners: Vec<std::net::TcpListener>, target: SocketAddr) -> io::Result<()> {
    crate::run_workers(listeners, target, worker)
}

fn worker(listener: std::net::TcpListener, target: SocketAddr) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(proxy(client, target));
                }
                // Out of descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
}

/// One connection: first read, connect, replay, relay.
async fn proxy(mut client: TcpStream, target: SocketAddr) {
    let (mut up, down) = buffers();
    let first = match client.read(&mut up).await {
        Ok(0) | Err(_) => return,
        Ok(n) => n,
    };
    let Ok(mut backend) = TcpStream::connect(target).await else { return };
    if backend.set_nodelay(true).is_err() || backend.write_all(&up[..first]).await.is_err() {
        return;
    }
    relay(client, backend, up, down).await;
}
