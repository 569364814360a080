//! serve2's `sk_lookup` program: steers new TCP connections and new UDP
//! flows on chosen local ports to the daemon's sockets, hands the
//! connections of kernel-direct ports to their backend's own listener, and
//! refuses sources a policy's rules or rate limit turn away.
//!
//! It never black-holes a port. Every path that does not assign a socket
//! returns `SK_PASS` without an assignment, which lets the kernel's normal
//! socket lookup decide — so when the daemon is gone (its sockets leave the
//! SOCKMAP by themselves), ports behave as if serve2 had never been there.
//! The only `SK_DROP` is a refusal by source policy, which the client sees
//! as an immediate reset.
//!
//! UDP: the kernel looks for a connected socket matching the datagram's
//! 4-tuple before it runs this program, so the daemon's per-flow connected
//! sockets receive their flows' later datagrams directly; the program only
//! sees datagrams no connected socket claims (new flows).
//!
//! Built for `bpfel-unknown-none` by serve2-user's build script (aya-build).
//! For the host target (`cargo clippy --workspace`, `cargo test --workspace`)
//! it is an ordinary binary with a stub `main`, so the program's code is
//! type-checked and linted with the rest of the workspace on stable.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::bindings::sk_action::{SK_DROP, SK_PASS};
use aya_ebpf::bindings::{BPF_F_NO_PREALLOC, bpf_sk_lookup};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::macros::{map, sk_lookup};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{Array, LpmTrie, LruHashMap, PerCpuArray, SockMap};
use aya_ebpf::programs::SkLookupContext;
use aya_log_ebpf::debug;
use serve2_common::{
    COUNTER_COUNT, Counter, FLAG_SCOPED, HEARTBEAT_STALE_NS, LISTENER_SLOTS, LISTENER_TCP, LISTENER_UDP, MAX_POLICIES,
    POLICY_COUNTER_COUNT, POLICY_FLAGS, POLICY_HAS_ALLOW, POLICY_INTERVAL_NS, POLICY_PREFIXES, POLICY_RATE_LIMITED,
    POLICY_TOLERANCE_NS, PORT_COUNT, PORT_DIRECT, PORT_SOURCES, PORT_TCP, PORT_UDP, PolicyCounter, RATE_CAPACITY,
    RateKey, SCOPE_CAPACITY, SETTING_COUNT, SOURCE_ALLOW, SOURCE_DENY, SOURCES_CAPACITY, Setting, port_policy,
};

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const ENOENT: i32 = 2;

#[map]
static PORTS: Array<u32> = Array::with_max_entries(PORT_COUNT, 0);
#[map]
static LISTENER: SockMap = SockMap::with_max_entries(LISTENER_SLOTS, 0);
#[map]
static DIRECT: SockMap = SockMap::with_max_entries(PORT_COUNT, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
#[map]
static POLICY_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_POLICIES * POLICY_COUNTER_COUNT, 0);
#[map]
static SETTINGS: Array<u32> = Array::with_max_entries(SETTING_COUNT, 0);
#[map]
static HEARTBEAT: Array<u64> = Array::with_max_entries(1, 0);
#[map]
static SCOPE_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(SCOPE_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
static SCOPE_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(SCOPE_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
static SOURCES_V4: LpmTrie<[u8; 6], u8> = LpmTrie::with_max_entries(SOURCES_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
static SOURCES_V6: LpmTrie<[u8; 18], u8> = LpmTrie::with_max_entries(SOURCES_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
static POLICY_SETTINGS: Array<[u64; 4]> = Array::with_max_entries(MAX_POLICIES, 0);
#[map]
static RATES: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(RATE_CAPACITY, 0);

#[sk_lookup]
pub fn serve2_steer(ctx: SkLookupContext) -> u32 {
    count(Counter::Lookups);
    // SAFETY: the kernel hands every sk_lookup program a valid context.
    let lookup = unsafe { &*ctx.lookup };
    let (wanted, slot) = match lookup.protocol {
        IPPROTO_TCP => (PORT_TCP, LISTENER_TCP),
        IPPROTO_UDP => (PORT_UDP, LISTENER_UDP),
        _ => return SK_PASS,
    };
    let entry = PORTS.get(lookup.local_port).copied().unwrap_or(0);
    if entry & wanted == 0 {
        return SK_PASS;
    }
    if !in_scope(lookup) {
        count(Counter::OutOfScope);
        return SK_PASS;
    }
    let policy = port_policy(entry);
    // Refusals hold even while the daemon is stopped: refusing is not a
    // black hole, and a denied source must not slip through a hang.
    if wanted == PORT_TCP
        && entry & PORT_SOURCES != 0
        && let Some(refusal) = refused(lookup, policy)
    {
        count(Counter::Refused);
        count_policy(refusal, policy);
        return SK_DROP;
    }
    if wanted == PORT_TCP && entry & PORT_DIRECT != 0 {
        // The backend's own listener: no daemon, no heartbeat needed.
        if DIRECT.redirect_sk_lookup(&ctx, lookup.local_port, 0).is_ok() {
            count(Counter::KernelRouted);
            count_policy(PolicyCounter::KernelRouted, policy);
            return SK_PASS;
        }
        // Gone (the slot empties when the backend closes it) or no longer
        // listening: the daemon forwards instead.
        count(Counter::DirectFallbacks);
    }
    // A daemon that has not beaten for a while is stopped or hung: its
    // socket would only queue the connection. Fail open instead.
    if heartbeat_stale() {
        count(Counter::Stale);
        return SK_PASS;
    }
    match LISTENER.redirect_sk_lookup(&ctx, slot, 0) {
        Ok(()) => count(if wanted == PORT_TCP { Counter::Steered } else { Counter::UdpSteered }),
        // No socket in the map: the daemon is gone. Fail open.
        Err(e) if e == -ENOENT => count(Counter::NoSocket),
        // The socket cannot take this connection (say, an IPv6-only socket
        // and an IPv4 client): leave it to the normal lookup.
        Err(e) => {
            count(Counter::AssignErrors);
            debug!(&ctx, "serve2: bpf_sk_assign failed ({}) for port {}", e, lookup.local_port);
        }
    }
    SK_PASS
}

/// Why `policy` refuses this connection's source, if it does: an allow/deny
/// rule (the longest matching prefix decides; with an allow list, no match
/// refuses), then the per-prefix rate limit.
fn refused(lookup: &bpf_sk_lookup, policy: u16) -> Option<PolicyCounter> {
    let settings = POLICY_SETTINGS.get(u32::from(policy))?;
    let flags = settings[POLICY_FLAGS];
    let (rule, key) = match lookup.family {
        AF_INET => {
            let address = lookup.remote_ip4.to_ne_bytes();
            let [p0, p1] = policy.to_be_bytes();
            let trie_key = [p0, p1, address[0], address[1], address[2], address[3]];
            let rule = SOURCES_V4.get(Key::new(48, trie_key)).copied();
            let prefix = (settings[POLICY_PREFIXES] & 0xff) as u32;
            let mut masked = [0u32; 4];
            masked[0] = mask_word(lookup.remote_ip4, prefix);
            (rule, RateKey { policy, family: 4, address: masked })
        }
        AF_INET6 => {
            let words = lookup.remote_ip6;
            let mut trie_key = [0u8; 18];
            let [p0, p1] = policy.to_be_bytes();
            trie_key[0] = p0;
            trie_key[1] = p1;
            for (i, word) in words.iter().enumerate() {
                trie_key[2 + i * 4..6 + i * 4].copy_from_slice(&word.to_ne_bytes());
            }
            let rule = SOURCES_V6.get(Key::new(144, trie_key)).copied();
            let prefix = ((settings[POLICY_PREFIXES] >> 8) & 0xff) as u32;
            let mut masked = [0u32; 4];
            for (i, word) in words.iter().enumerate() {
                masked[i] = mask_word(*word, prefix.saturating_sub(i as u32 * 32));
            }
            (rule, RateKey { policy, family: 6, address: masked })
        }
        _ => return None,
    };
    match rule {
        Some(SOURCE_DENY) => return Some(PolicyCounter::Denied),
        Some(SOURCE_ALLOW) => {}
        _ if flags & POLICY_HAS_ALLOW != 0 => return Some(PolicyCounter::Denied),
        _ => {}
    }
    if flags & POLICY_RATE_LIMITED != 0
        && !within_rate(&key, settings[POLICY_INTERVAL_NS], settings[POLICY_TOLERANCE_NS])
    {
        return Some(PolicyCounter::RateLimited);
    }
    None
}

/// The first `prefix` bits (at most 32) of a network-order address word.
fn mask_word(word: u32, prefix: u32) -> u32 {
    let host = u32::from_be(word);
    let mask = match prefix {
        0 => 0,
        1..=31 => u32::MAX << (32 - prefix),
        _ => u32::MAX,
    };
    (host & mask).to_be()
}

/// GCRA: a source prefix may connect while its theoretical arrival time is
/// at most `tolerance` ahead of now; each connection pushes it `interval`
/// further. (Two CPUs racing on one prefix may both pass: a limit, not an
/// exact count.)
fn within_rate(key: &RateKey, interval: u64, tolerance: u64) -> bool {
    // SAFETY: a helper without arguments, allowed in every program type.
    let now = unsafe { bpf_ktime_get_ns() };
    match RATES.get_ptr_mut(key) {
        Some(arrival) => {
            // SAFETY: a value slot of this map, valid for this program run.
            let theoretical = unsafe { *arrival }.max(now);
            if theoretical - now > tolerance {
                return false;
            }
            // SAFETY: as above.
            unsafe { *arrival = theoretical + interval };
            true
        }
        None => {
            // A full LRU table evicts rather than fails; should an insert
            // fail anyway, the connection is let through: a limit must not
            // turn into an outage.
            let _ = RATES.insert(key, now + interval, 0);
            true
        }
    }
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
    bump(&COUNTERS, counter as u32);
}

fn count_policy(counter: PolicyCounter, policy: u16) {
    bump(&POLICY_COUNTERS, counter.slot(policy));
}

fn bump(counters: &PerCpuArray<u64>, slot: u32) {
    if let Some(value) = counters.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot; nothing else on this CPU runs concurrently.
        unsafe { *value += 1 };
    }
}

/// Never reached: the verifier refuses a program that can reach this loop,
/// so a panic path shows up as a load error, not as a hung kernel.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The host build's entry point: the program only runs in the kernel.
#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("serve2-ebpf is the kernel side of serve2: serve2d loads it (built for bpfel-unknown-none) itself");
    std::process::exit(2);
}
