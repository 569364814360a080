//! The in-kernel relay (experimental, `"relay": "sockmap"`): after detection
//! both sockets go into a SOCKHASH whose stream verdict program redirects
//! each socket's incoming bytes out of its peer. Userspace only waits for
//! end-of-stream and resets.
//!
//! Known limits, measured and written down in docs/PERFORMANCE.md: the
//! kernel hands redirected bytes to a workqueue, so when one side closes
//! there is no way to know that everything it sent has left the peer socket;
//! serve2 waits until the peer's send queue stays empty before passing the
//! FIN on. Byte counts are not available in this mode.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aya::Ebpf;
use aya::maps::{HashMap, MapData, SockHash};
use aya::programs::SkSkb;
use serve2_common::{RELAY_PEERS_MAP, RELAY_PROGRAM, RELAY_SOCKETS_MAP};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{RelayEnd, RelayReport};

struct KernelRelay {
    _ebpf: Ebpf,
    sockets: Mutex<SockHash<MapData, u64>>,
    peers: Mutex<HashMap<MapData, u64, u64>>,
}

static KERNEL_RELAY: OnceLock<KernelRelay> = OnceLock::new();

/// Loads and attaches the relay program once. Needs CAP_BPF and CAP_NET_ADMIN.
pub fn init() -> Result<(), String> {
    if KERNEL_RELAY.get().is_some() {
        return Ok(());
    }
    let mut ebpf = Ebpf::load(crate::steer::PROGRAM_OBJECT).map_err(|e| e.to_string())?;
    let sockets = ebpf.take_map(RELAY_SOCKETS_MAP).ok_or("no relay socket map")?;
    let sockets: SockHash<MapData, u64> = SockHash::try_from(sockets).map_err(|e| e.to_string())?;
    let peers = ebpf.take_map(RELAY_PEERS_MAP).ok_or("no relay peer map")?;
    let peers: HashMap<MapData, u64, u64> = HashMap::try_from(peers).map_err(|e| e.to_string())?;
    let program: &mut SkSkb = ebpf
        .program_mut(RELAY_PROGRAM)
        .ok_or("no relay program")?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    program.load().map_err(|e| e.to_string())?;
    program.attach(sockets.fd()).map_err(|e| e.to_string())?;
    let relay = KernelRelay { _ebpf: ebpf, sockets: Mutex::new(sockets), peers: Mutex::new(peers) };
    // A concurrent init may have won; either instance works.
    let _ = KERNEL_RELAY.set(relay);
    Ok(())
}

/// Whether [`init`] succeeded.
pub fn available() -> bool {
    KERNEL_RELAY.get().is_some()
}

fn cookie(stream: &TcpStream) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: SO_COOKIE writes a u64 into the buffer we pass with its size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 { Ok(cookie) } else { Err(io::Error::last_os_error()) }
}

fn set_rcvlowat(stream: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: plain setsockopt with an int. Setting SO_RCVLOWAT makes TCP
    // re-check its queue and call data_ready: bytes that arrived before the
    // socket joined the map get their verdict now instead of never.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn unsent_bytes(stream: &TcpStream) -> i32 {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes an int.
    unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    queued
}

/// What one side's readability meant.
enum Event {
    Eof,
    Failed(io::Error),
}

/// Waits until `stream` reports end-of-stream or an error. Bytes are never
/// read: the kernel program takes them.
async fn wait_end(stream: &TcpStream) -> Event {
    loop {
        if let Err(e) = stream.readable().await {
            return Event::Failed(e);
        }
        let mut probe = [0u8; 1];
        let peeked = stream.try_io(Interest::READABLE, || {
            // SAFETY: recv into a one-byte buffer we own.
            let n = unsafe {
                libc::recv(stream.as_raw_fd(), probe.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
            };
            if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n) }
        });
        match peeked {
            Ok(0) => return Event::Eof,
            // Bytes not yet taken by the program: let it run.
            Ok(_) => tokio::task::yield_now().await,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Event::Failed(e),
        }
    }
}

/// Reads what `from` has queued and writes it to `to`.
async fn drain_into(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let mut written = 0;
                while written < n {
                    to.writable().await?;
                    match to.try_write(&buf[written..n]) {
                        Ok(k) => written += k,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Passes a FIN on once the peer's send queue has stayed empty for a moment
/// (the best available sign that redirected bytes have left).
async fn forward_fin(to: &TcpStream) -> io::Result<()> {
    let mut quiet = 0;
    while quiet < 3 {
        quiet = if unsent_bytes(to) == 0 { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    socket2::SockRef::from(to).shutdown(Shutdown::Write)
}

/// Relays `client` and `backend` in the kernel. Returns `Err` with both
/// streams when the in-kernel relay is not available (the caller splices).
pub(super) async fn relay(
    client: TcpStream,
    backend: TcpStream,
) -> Result<(TcpStream, TcpStream, RelayReport), (TcpStream, TcpStream)> {
    let Some(kernel) = KERNEL_RELAY.get() else { return Err((client, backend)) };
    // The kernel hands whole queued skbs to the program, ignoring bytes
    // userspace already read from one: drain what is queued (detection may
    // have read part of an skb) so only untouched skbs remain.
    if drain_into(&client, &backend).await.is_err() {
        return Err((client, backend));
    }
    let (Ok(client_cookie), Ok(backend_cookie)) = (cookie(&client), cookie(&backend)) else {
        return Err((client, backend));
    };
    {
        let mut peers = kernel.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sockets = kernel.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        let joined = peers
            .insert(client_cookie, backend_cookie, 0)
            .and_then(|()| peers.insert(backend_cookie, client_cookie, 0))
            .and_then(|()| sockets.insert(client_cookie, client.as_raw_fd(), 0))
            .and_then(|()| sockets.insert(backend_cookie, backend.as_raw_fd(), 0));
        if joined.is_err() {
            let _ = (peers.remove(&client_cookie), peers.remove(&backend_cookie));
            let _ = (sockets.remove(&client_cookie), sockets.remove(&backend_cookie));
            return Err((client, backend));
        }
    }
    set_rcvlowat(&client);
    set_rcvlowat(&backend);
    let end = watch(&client, &backend).await;
    {
        let mut sockets = kernel.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = (sockets.remove(&client_cookie), sockets.remove(&backend_cookie));
        let mut peers = kernel.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = (peers.remove(&client_cookie), peers.remove(&backend_cookie));
    }
    Ok((client, backend, RelayReport { client_to_backend: 0, backend_to_client: 0, end }))
}

/// Waits for both sides to end, passing each FIN on.
async fn watch(client: &TcpStream, backend: &TcpStream) -> RelayEnd {
    let (mut client_done, mut backend_done) = (false, false);
    while !(client_done && backend_done) {
        tokio::select! {
            event = wait_end(client), if !client_done => match event {
                Event::Eof => {
                    client_done = true;
                    if let Err(e) = forward_fin(backend).await {
                        return RelayEnd::BackendReset(e);
                    }
                }
                Event::Failed(e) => return RelayEnd::ClientReset(e),
            },
            event = wait_end(backend), if !backend_done => match event {
                Event::Eof => {
                    backend_done = true;
                    if let Err(e) = forward_fin(client).await {
                        return RelayEnd::ClientReset(e);
                    }
                }
                Event::Failed(e) => return RelayEnd::BackendReset(e),
            },
        }
    }
    RelayEnd::Closed
}
