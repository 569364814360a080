//! Names and layouts shared by serve2's `sk_lookup` program and the daemon
//! that loads it. `no_std`: the kernel side links it too.
#![no_std]

/// Port → steering state (`u32` array of [`PORT_COUNT`] entries): the
/// `PORT_*` flag bits, and in the top 16 bits the index of the policy whose
/// source rules apply ([`port_entry`]). (Which protocols a port gets is the
/// daemon's business: it reads the dialled port from the accepted socket.)
pub const PORTS_MAP: &str = "PORTS";
/// The daemon's sockets connections are assigned to (`SOCKMAP`):
/// [`LISTENER_TCP`], the TCP listener; [`LISTENER_UDP`], the UDP socket.
pub const LISTENER_MAP: &str = "LISTENER";
/// Slot of the daemon's TCP listener in [`LISTENER_MAP`].
pub const LISTENER_TCP: u32 = 0;
/// Slot of the daemon's UDP socket in [`LISTENER_MAP`].
pub const LISTENER_UDP: u32 = 1;
/// Slots in [`LISTENER_MAP`].
pub const LISTENER_SLOTS: u32 = 2;
/// Kernel-direct routes (`SOCKMAP` of [`PORT_COUNT`] slots, by dialled
/// port): the backend's own listening socket, which takes the port's new
/// connections without the daemon. A slot empties by itself when the
/// backend closes its socket; the port then falls back to the daemon.
pub const DIRECT_MAP: &str = "DIRECT";
/// Source rules of every policy over IPv4 (LPM trie; key: the policy index,
/// big-endian `u16`, then the 4 address bytes; prefix length 16 + the
/// address prefix): [`SOURCE_ALLOW`] or [`SOURCE_DENY`]. The longest
/// matching prefix decides.
pub const SOURCES_V4_MAP: &str = "SOURCES_V4";
/// Source rules over IPv6, as [`SOURCES_V4_MAP`] with 16 address bytes.
pub const SOURCES_V6_MAP: &str = "SOURCES_V6";
/// Per-policy source settings (`[u64; 4]` array of [`MAX_POLICIES`]
/// entries, slots `POLICY_*`).
pub const POLICY_SETTINGS_MAP: &str = "POLICY_SETTINGS";
/// Per-source-prefix rate state (LRU hash, [`RATE_CAPACITY`] entries): key
/// [`RateKey`] as 5 `u32`s (policy, then the masked address; IPv4 in the
/// first word), value the GCRA theoretical arrival time in nanoseconds.
pub const RATES_MAP: &str = "RATES";
/// Per-CPU, per-policy counters (`u64`, index `policy *
/// POLICY_COUNTER_COUNT + counter`, see [`PolicyCounter`]).
pub const POLICY_COUNTERS_MAP: &str = "POLICY_COUNTERS";
/// Per-CPU event counters (`u64`, indexed by [`Counter`]).
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Program settings (`u32` array, indexed by [`Setting`]).
pub const SETTINGS_MAP: &str = "SETTINGS";
/// The daemon's heartbeat (`u64` array, one slot): the `CLOCK_MONOTONIC`
/// time in nanoseconds of its last beat; 0 = no heartbeat kept.
pub const HEARTBEAT_MAP: &str = "HEARTBEAT";
/// A heartbeat older than this means the daemon cannot run (stopped, hung):
/// the program then leaves connections to the kernel's normal lookup rather
/// than queue them on a listener nobody accepts from.
pub const HEARTBEAT_STALE_NS: u64 = 1_000_000_000;
/// How often the daemon beats (a quarter of the staleness limit).
pub const HEARTBEAT_INTERVAL_NS: u64 = HEARTBEAT_STALE_NS / 4;
/// Local IPv4 prefixes steering is limited to (LPM trie, 4-byte keys).
pub const SCOPE_V4_MAP: &str = "SCOPE_V4";
/// Local IPv6 prefixes steering is limited to (LPM trie, 16-byte keys).
pub const SCOPE_V6_MAP: &str = "SCOPE_V6";
/// The program's name in the object file.
pub const PROGRAM: &str = "serve2_steer";
/// Entries in [`PORTS_MAP`]: every port.
pub const PORT_COUNT: u32 = 1 << 16;
/// Value in [`PORTS_MAP`] for a port left to the kernel's normal lookup.
pub const NOT_STEERED: u32 = 0;
/// [`PORTS_MAP`] bit: new TCP connections go to the daemon's listener.
pub const PORT_TCP: u32 = 1;
/// [`PORTS_MAP`] bit: UDP datagrams of new flows go to the daemon's UDP socket.
pub const PORT_UDP: u32 = 2;
/// [`PORTS_MAP`] bit: try the port's kernel-direct route ([`DIRECT_MAP`])
/// before the daemon's listener.
pub const PORT_DIRECT: u32 = 4;
/// [`PORTS_MAP`] bit: the policy's source rules apply to new TCP connections.
pub const PORT_SOURCES: u32 = 8;
/// Mask of the flag bits of a [`PORTS_MAP`] entry.
pub const PORT_FLAGS: u32 = 0xffff;

/// A [`PORTS_MAP`] entry: `flags` and the policy index.
pub const fn port_entry(flags: u32, policy: u16) -> u32 {
    (flags & PORT_FLAGS) | ((policy as u32) << 16)
}

/// The policy index of a [`PORTS_MAP`] entry.
pub const fn port_policy(entry: u32) -> u16 {
    (entry >> 16) as u16
}

/// Policies the kernel keeps source settings and counters for (index 0 is
/// the top level's steered ports, `policies[i]` is `i + 1`).
pub const MAX_POLICIES: u32 = 1024;
/// [`POLICY_SETTINGS_MAP`] slot: flag bits, [`POLICY_HAS_ALLOW`], [`POLICY_RATE_LIMITED`].
pub const POLICY_FLAGS: usize = 0;
/// [`POLICY_SETTINGS_MAP`] slot: nanoseconds between connections at the sustained rate.
pub const POLICY_INTERVAL_NS: usize = 1;
/// [`POLICY_SETTINGS_MAP`] slot: how far ahead of now a source's arrival
/// time may run (interval × (burst − 1)).
pub const POLICY_TOLERANCE_NS: usize = 2;
/// [`POLICY_SETTINGS_MAP`] slot: the rate key's IPv4 prefix length (low
/// byte) and IPv6 prefix length (next byte).
pub const POLICY_PREFIXES: usize = 3;
/// Policy flag: sources matching no rule are refused (an allow list exists).
pub const POLICY_HAS_ALLOW: u64 = 1;
/// Policy flag: new connections are rate-limited per source prefix.
pub const POLICY_RATE_LIMITED: u64 = 2;
/// Source rule value: allowed.
pub const SOURCE_ALLOW: u8 = 1;
/// Source rule value: refused.
pub const SOURCE_DENY: u8 = 2;
/// Capacity of each source trie.
pub const SOURCES_CAPACITY: u32 = 16_384;
/// Capacity of the rate table (least recently seen prefixes are evicted).
pub const RATE_CAPACITY: u32 = 65_536;

/// Key of [`RATES_MAP`]: the policy and the source address masked to the
/// policy's prefix (IPv4 in `address[0]`, the rest zero; family in `family`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateKey {
    /// The policy index.
    pub policy: u16,
    /// 4 or 6.
    pub family: u16,
    /// The masked address, in network byte order.
    pub address: [u32; 4],
}

/// What the program counts per policy, per CPU.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyCounter {
    /// Connections refused by an allow/deny rule.
    Denied = 0,
    /// Connections refused by the rate limit.
    RateLimited = 1,
    /// Connections handed to the backend's own listener (kernel-direct).
    KernelRouted = 2,
}
/// Counters per policy in [`POLICY_COUNTERS_MAP`].
pub const POLICY_COUNTER_COUNT: u32 = 3;

impl PolicyCounter {
    /// Every counter, in index order.
    pub const ALL: [PolicyCounter; POLICY_COUNTER_COUNT as usize] =
        [PolicyCounter::Denied, PolicyCounter::RateLimited, PolicyCounter::KernelRouted];

    /// A short name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            PolicyCounter::Denied => "denied",
            PolicyCounter::RateLimited => "rate_limited",
            PolicyCounter::KernelRouted => "kernel_routed",
        }
    }

    /// The slot of this counter for `policy` in [`POLICY_COUNTERS_MAP`].
    pub const fn slot(self, policy: u16) -> u32 {
        policy as u32 * POLICY_COUNTER_COUNT + self as u32
    }
}
/// Capacity of each scope trie.
pub const SCOPE_CAPACITY: u32 = 256;

/// Settings slots.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// Bit flags, see [`FLAG_SCOPED`].
    Flags = 0,
}
/// Entries in [`SETTINGS_MAP`].
pub const SETTING_COUNT: u32 = 1;
/// Steer only connections whose local address is in a scope trie.
pub const FLAG_SCOPED: u32 = 1;

/// What the program counts, per CPU.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Program runs (every new TCP connection and unconnected UDP lookup in
    /// the namespace).
    Lookups = 0,
    /// Connections assigned to the daemon's listener.
    Steered = 1,
    /// Steered port but no listener in the map (daemon gone): passed on.
    NoSocket = 2,
    /// `bpf_sk_assign` refused the listener: passed on.
    AssignErrors = 3,
    /// Steered port but local address outside the scope: passed on.
    OutOfScope = 4,
    /// Steered port but the daemon's heartbeat is stale: passed on.
    Stale = 5,
    /// UDP datagrams assigned to the daemon's UDP socket.
    UdpSteered = 6,
    /// Connections refused by a source rule or rate limit (reset at once).
    Refused = 7,
    /// Connections handed to a backend's own listener.
    KernelRouted = 8,
    /// Kernel-direct route empty or refused: sent to the daemon instead.
    DirectFallbacks = 9,
}
/// Entries in [`COUNTERS_MAP`].
pub const COUNTER_COUNT: u32 = 10;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::Lookups,
        Counter::Steered,
        Counter::NoSocket,
        Counter::AssignErrors,
        Counter::OutOfScope,
        Counter::Stale,
        Counter::UdpSteered,
        Counter::Refused,
        Counter::KernelRouted,
        Counter::DirectFallbacks,
    ];

    /// A short name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Lookups => "lookups",
            Counter::Steered => "steered",
            Counter::NoSocket => "no_socket",
            Counter::AssignErrors => "assign_errors",
            Counter::OutOfScope => "out_of_scope",
            Counter::Stale => "stale_daemon",
            Counter::UdpSteered => "udp_steered",
            Counter::Refused => "refused",
            Counter::KernelRouted => "kernel_routed",
            Counter::DirectFallbacks => "direct_fallbacks",
        }
    }
}
