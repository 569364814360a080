//! serve2's `sk_lookup` program: steers new TCP connections on chosen local
//! ports to the daemon's one listening socket.
//!
//! It never refuses a connection. Every path that does not assign the
//! daemon's listener returns `SK_PASS` without an assignment, which lets the
//! kernel's normal socket lookup decide — so when the daemon is gone (its
//! socket leaves the SOCKMAP by itself), ports behave as if serve2 had never
//! been there: refused if nothing else listens, served by whatever does.
#![no_std]
#![no_main]

use aya_ebpf::bindings::sk_action::SK_PASS;
use aya_ebpf::bindings::{BPF_F_NO_PREALLOC, bpf_sk_lookup};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::macros::{map, sk_lookup};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{Array, LpmTrie, PerCpuArray, SockMap};
use aya_ebpf::programs::SkLookupContext;
use aya_log_ebpf::debug;
use serve2_common::{
    COUNTER_COUNT, Counter, FLAG_SCOPED, HEARTBEAT_STALE_NS, NOT_STEERED, PORT_COUNT, SCOPE_CAPACITY, SETTING_COUNT,
    Setting,
};

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const IPPROTO_TCP: u32 = 6;
const ENOENT: i32 = 2;

#[map]
static PORTS: Array<u32> = Array::with_max_entries(PORT_COUNT, 0);
#[map]
static LISTENER: SockMap = SockMap::with_max_entries(1, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
#[map]
static SETTINGS: Array<u32> = Array::with_max_entries(SETTING_COUNT, 0);
#[map]
static HEARTBEAT: Array<u64> = Array::with_max_entries(1, 0);
#[map]
static SCOPE_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(SCOPE_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
static SCOPE_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(SCOPE_CAPACITY, BPF_F_NO_PREALLOC);

#[sk_lookup]
pub fn serve2_steer(ctx: SkLookupContext) -> u32 {
    count(Counter::Lookups);
    // SAFETY: the kernel hands every sk_lookup program a valid context.
    let lookup = unsafe { &*ctx.lookup };
    if lookup.protocol != IPPROTO_TCP {
        return SK_PASS;
    }
    let steered = PORTS.get(lookup.local_port).copied().unwrap_or(NOT_STEERED);
    if steered == NOT_STEERED {
        return SK_PASS;
    }
    if !in_scope(lookup) {
        count(Counter::OutOfScope);
        return SK_PASS;
    }
    // A daemon that has not beaten for a while is stopped or hung: its
    // listener would only queue the connection. Fail open instead.
    if heartbeat_stale() {
        count(Counter::Stale);
        return SK_PASS;
    }
    match LISTENER.redirect_sk_lookup(&ctx, 0, 0) {
        Ok(()) => count(Counter::Steered),
        // No listener in the map: the daemon is gone. Fail open.
        Err(e) if e == -ENOENT => count(Counter::NoSocket),
        // The listener cannot take this connection (say, an IPv6-only socket
        // and an IPv4 client): leave it to the normal lookup.
        Err(e) => {
            count(Counter::AssignErrors);
            debug!(&ctx, "serve2: bpf_sk_assign failed ({}) for port {}", e, lookup.local_port);
        }
    }
    SK_PASS
}

/// Whether the daemon's last heartbeat is older than the limit (never when
/// it keeps none).
fn heartbeat_stale() -> bool {
    let last = HEARTBEAT.get(0).copied().unwrap_or(0);
    // SAFETY: a helper without arguments, allowed in every program type.
    let now = unsafe { bpf_ktime_get_ns() };
    last != 0 && now.saturating_sub(last) > HEARTBEAT_STALE_NS
}

/// With scoping on, only local addresses inside a configured prefix are
/// steered; without it, all are.
fn in_scope(lookup: &bpf_sk_lookup) -> bool {
    let scoped = SETTINGS.get(Setting::Flags as u32).is_some_and(|flags| flags & FLAG_SCOPED != 0);
    if !scoped {
        return true;
    }
    match lookup.family {
        // Both already in network byte order, as the tries store them.
        AF_INET => SCOPE_V4.get(Key::new(32, lookup.local_ip4.to_ne_bytes())).is_some(),
        AF_INET6 => {
            let words = lookup.local_ip6;
            let mut address = [0u8; 16];
            for (i, word) in words.iter().enumerate() {
                address[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            SCOPE_V6.get(Key::new(128, address)).is_some()
        }
        _ => false,
    }
}

fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot; nothing else on this CPU runs concurrently.
        unsafe { *value += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
