//! The in-kernel relay experiment: a stream verdict program that sends each
//! socket's incoming bytes straight out of its peer socket.
//!
//! Both sockets of a relayed connection sit in `RELAY_SOCKETS`, keyed by
//! their socket cookies; `RELAY_PEERS` maps each cookie to the peer's.

use aya_ebpf::bindings::sk_action::SK_PASS;
use aya_ebpf::helpers::bpf_get_socket_cookie;
use aya_ebpf::macros::{map, stream_verdict};
use aya_ebpf::maps::{HashMap, SockHash};
use aya_ebpf::programs::SkBuffContext;
use serve2_common::RELAY_CAPACITY;

#[map]
static RELAY_SOCKETS: SockHash<u64> = SockHash::with_max_entries(RELAY_CAPACITY, 0);
#[map]
static RELAY_PEERS: HashMap<u64, u64> = HashMap::with_max_entries(RELAY_CAPACITY, 0);

#[stream_verdict]
pub fn serve2_relay(ctx: SkBuffContext) -> u32 {
    // SAFETY: the context is a valid skb owned by a socket in the map.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    // SAFETY: plain lookup; the value is copied out at once.
    match unsafe { RELAY_PEERS.get(cookie) }.copied() {
        // SK_PASS once redirected; SK_DROP if the peer left the map.
        Some(peer) => RELAY_SOCKETS.redirect_skb(&ctx, peer, 0) as u32,
        // No peer (being torn down): keep the bytes on this socket, where
        // userspace can still read them.
        None => SK_PASS,
    }
}
