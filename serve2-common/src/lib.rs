//! Names and layouts shared by serve2's `sk_lookup` program and the daemon
//! that loads it. `no_std`: the kernel side links it too.
#![no_std]

/// Port → steering state (`u32` array of [`PORT_COUNT`] entries):
/// [`NOT_STEERED`] or [`STEERED`]. (Which protocols a port gets is the
/// daemon's business: it reads the dialled port from the accepted socket.)
pub const PORTS_MAP: &str = "PORTS";
/// The listening socket connections are assigned to (`SOCKMAP`, one slot).
pub const LISTENER_MAP: &str = "LISTENER";
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
/// Entries in [`PORTS_MAP`]: every TCP port.
pub const PORT_COUNT: u32 = 1 << 16;
/// Value in [`PORTS_MAP`] for a port left to the kernel's normal lookup.
pub const NOT_STEERED: u32 = 0;
/// Value in [`PORTS_MAP`] for a port steered to the daemon.
pub const STEERED: u32 = 1;
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
    /// Program runs (every new TCP connection and UDP lookup in the namespace).
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
}
/// Entries in [`COUNTERS_MAP`].
pub const COUNTER_COUNT: u32 = 6;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::Lookups,
        Counter::Steered,
        Counter::NoSocket,
        Counter::AssignErrors,
        Counter::OutOfScope,
        Counter::Stale,
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
        }
    }
}
