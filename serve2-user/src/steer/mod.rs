//! Kernel steering: the embedded `sk_lookup` program, loaded and attached to
//! this network namespace, sends new connections on chosen ports to one
//! listening socket of ours (and new UDP flows to our UDP socket), refuses
//! the sources a policy's rules turn away, and hands the connections of
//! kernel-direct ports to their backend's own listener.
//!
//! Lifetime: the program link and the maps live as long as [`Steering`]
//! (and so the process). When the process ends, however it ends, the kernel
//! detaches the program and the listener leaves the SOCKMAP; no port keeps
//! pointing at a dead daemon.

mod counters;
mod direct;
mod listening;
mod maps;
mod plan;
mod privileges;
mod table;

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, SockMap};
use aya::programs::SkLookup;
use ipnet::IpNet;
use serve2_common::{
    COUNTERS_MAP, DIRECT_MAP, FLAG_SCOPED, HEARTBEAT_MAP, LISTENER_MAP, LISTENER_TCP, LISTENER_UDP,
    POLICY_COUNTERS_MAP, POLICY_SETTINGS_MAP, PORTS_MAP, PROGRAM, SCOPE_V4_MAP, SCOPE_V6_MAP, SETTINGS_MAP,
    SOURCES_V4_MAP, SOURCES_V6_MAP, Setting,
};

pub use counters::{Heartbeat, KernelCounters};
pub use direct::DirectRoute;
pub use plan::{SteerPlan, bound_udp_ports, listening_ports};
pub use table::{KernelPolicy, KernelTable, TooManyPolicies};

use maps::{KernelMaps, Ports};

/// The object built from `serve2-ebpf` by `build.rs`.
pub(crate) static PROGRAM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/serve2-ebpf"));

/// Why steering could not start, with the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The process lacks capabilities.
    #[error(
        "kernel steering needs CAP_BPF and CAP_NET_ADMIN; missing {}. Run as root or grant them \
         (for example AmbientCapabilities=CAP_BPF CAP_NET_ADMIN), or use a plain \"address\" without \"steer\"",
        .0.join(" and ")
    )]
    MissingCapabilities(Vec<&'static str>),
    /// The kernel has no sk_lookup programs.
    #[error("kernel steering needs Linux 5.9 or later (sk_lookup programs); this kernel is {0}")]
    KernelTooOld(String),
    /// Loading the embedded object failed.
    #[error("loading the eBPF object: {0}")]
    Object(#[source] aya::EbpfError),
    /// The object lacks a map or program the daemon needs (a build mismatch).
    #[error("the eBPF object has no {0}")]
    Missing(String),
    /// Loading, or attaching, the program failed.
    #[error("{step} the sk_lookup program: {source}")]
    Program {
        /// What was being done: loading, attaching.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Opening this thread's network namespace failed.
    #[error("opening this network namespace: {0}")]
    Namespace(#[source] std::io::Error),
    /// The configuration has more policies than the program's maps hold.
    #[error(transparent)]
    TooManyPolicies(#[from] TooManyPolicies),
    /// Filling a map failed.
    #[error("filling the {map} map: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Why.
        #[source]
        source: aya::maps::MapError,
    },
}

/// The loaded, attached program. Dropping it detaches the program.
pub struct Steering {
    _ebpf: Ebpf,
    counters: Arc<KernelCounters>,
    heartbeat: Arc<Heartbeat>,
    /// The maps a reload changes.
    maps: std::sync::Mutex<KernelMaps>,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering").finish_non_exhaustive()
    }
}

/// The daemon's sockets the program assigns to.
#[derive(Debug, Clone, Copy)]
pub struct DaemonSockets<'a> {
    /// The TCP listener: a dual-stack `[::]` socket, possibly the first of
    /// an SO_REUSEPORT group (the kernel spreads over the group).
    pub tcp: BorrowedFd<'a>,
    /// The UDP socket for steered UDP ports, if any.
    pub udp: Option<BorrowedFd<'a>>,
}

impl Steering {
    /// Loads the program, fills its maps from `table` (ports, source rules,
    /// kernel-direct routes) and `scope`, puts the daemon's `sockets` in its
    /// SOCKMAP, and attaches it to the calling thread's network namespace —
    /// in that order, so no connection is ever steered to an empty map.
    pub fn attach(sockets: DaemonSockets<'_>, table: &KernelTable, scope: &[IpNet]) -> Result<Steering, SteerError> {
        privileges::check()?;
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(PROGRAM_OBJECT).map_err(SteerError::Object)?;
        start_kernel_log(&mut ebpf);
        if !scope.is_empty() {
            fill_scope(&mut ebpf, scope)?;
            let mut settings: Array<_, u32> = typed_map(&mut ebpf, SETTINGS_MAP)?;
            settings.set(Setting::Flags as u32, FLAG_SCOPED, 0).map_err(map_error(SETTINGS_MAP))?;
        }
        let mut maps = KernelMaps {
            ports: owned_map(&mut ebpf, PORTS_MAP)?,
            direct: owned_map(&mut ebpf, DIRECT_MAP)?,
            sources_v4: owned_map(&mut ebpf, SOURCES_V4_MAP)?,
            sources_v6: owned_map(&mut ebpf, SOURCES_V6_MAP)?,
            settings: owned_map(&mut ebpf, POLICY_SETTINGS_MAP)?,
            entries: vec![0; table.entries.len()],
            policies: Vec::new(),
            routes: Vec::new(),
        };
        maps.write(table, Ports::Joining)?;
        // Alive from the first connection on (beaten again below).
        let heartbeat = Arc::new(Heartbeat { map: std::sync::Mutex::new(owned_map(&mut ebpf, HEARTBEAT_MAP)?) });
        heartbeat.beat();
        let mut listeners: SockMap<_> = typed_map(&mut ebpf, LISTENER_MAP)?;
        listeners.set(LISTENER_TCP, &sockets.tcp, 0).map_err(map_error(LISTENER_MAP))?;
        if let Some(udp) = sockets.udp {
            listeners.set(LISTENER_UDP, &udp, 0).map_err(map_error(LISTENER_MAP))?;
        }

        let program: &mut SkLookup = ebpf
            .program_mut(PROGRAM)
            .ok_or(SteerError::Missing(format!("program {PROGRAM}")))?
            .try_into()
            .map_err(|source| SteerError::Program { step: "finding", source })?;
        program.load().map_err(|source| SteerError::Program { step: "loading", source })?;
        // This thread's namespace: the one the listener was created in.
        let netns = File::open("/proc/thread-self/ns/net").map_err(SteerError::Namespace)?;
        program.attach(netns).map_err(|source| SteerError::Program { step: "attaching", source })?;

        let counters = KernelCounters {
            map: owned_map(&mut ebpf, COUNTERS_MAP)?,
            policies: owned_map(&mut ebpf, POLICY_COUNTERS_MAP)?,
            names: std::sync::Mutex::new(policy_names(table)),
        };
        Ok(Steering { _ebpf: ebpf, counters: Arc::new(counters), heartbeat, maps: std::sync::Mutex::new(maps) })
    }

    /// The program's counters.
    pub fn counters(&self) -> Arc<KernelCounters> {
        self.counters.clone()
    }

    /// Turns off the ports `table` no longer steers (first step of a reload).
    /// Each port flips on its own: connections already accepted are never
    /// touched.
    pub fn remove_leaving(&self, table: &KernelTable) -> Result<(), SteerError> {
        self.maps().write(table, Ports::Leaving)
    }

    /// Writes the rest of `table`: source rules, kernel-direct routes, and
    /// the ports it steers or changes (last step of a reload).
    pub fn add_joining(&self, table: &KernelTable) -> Result<(), SteerError> {
        self.maps().write(table, Ports::Joining)?;
        if let Ok(mut names) = self.counters.names.lock() {
            *names = policy_names(table);
        }
        Ok(())
    }

    /// Re-points kernel-direct routes at their backends' listeners (a
    /// restarted backend has a new socket); run every second.
    pub fn refresh_routes(&self) {
        self.maps().refresh_routes();
    }

    /// The kernel-direct routes and whether each is in the kernel now.
    pub fn routes(&self) -> Vec<DirectRoute> {
        self.maps().routes.clone()
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, KernelMaps> {
        // A poisoned lock only means another reload panicked mid-way; the
        // maps themselves are the kernel's and consistent per entry.
        self.maps.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The heartbeat to keep beating while the daemon serves.
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }
}

fn policy_names(table: &KernelTable) -> Vec<String> {
    table.policies.iter().map(|p| p.name.clone()).collect()
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> SteerError {
    move |source| SteerError::Map { map, source }
}

/// The object's map `name`, taken out of the object (to be kept past
/// loading), as the map type `T` it is declared with.
fn owned_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, SteerError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| SteerError::Missing(format!("map {name}")))?;
    T::try_from(map).map_err(map_error(name))
}

/// The object's map `name`, as the map type `T` it is declared with.
fn typed_map<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, SteerError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or_else(|| SteerError::Missing(format!("map {name}")))?;
    T::try_from(map).map_err(map_error(name))
}

fn fill_scope(ebpf: &mut Ebpf, scope: &[IpNet]) -> Result<(), SteerError> {
    for net in scope {
        let prefix = u32::from(net.prefix_len());
        match net.addr() {
            IpAddr::V4(v4) => {
                let mut trie: LpmTrie<_, [u8; 4], u8> = typed_map(ebpf, SCOPE_V4_MAP)?;
                trie.insert(&Key::new(prefix, v4.octets()), 1, 0).map_err(map_error(SCOPE_V4_MAP))?;
            }
            IpAddr::V6(v6) => {
                let mut trie: LpmTrie<_, [u8; 16], u8> = typed_map(ebpf, SCOPE_V6_MAP)?;
                trie.insert(&Key::new(prefix, v6.octets()), 1, 0).map_err(map_error(SCOPE_V6_MAP))?;
            }
        }
    }
    Ok(())
}

/// Forwards the program's aya-log records (debug level) to our log.
fn start_kernel_log(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(e) => return tracing::debug!(error = %e, "eBPF log not forwarded"),
    };
    // SAFETY: the logger owns its ring buffer's descriptor, which stays open
    // and unchanged for as long as the AsyncFd owns the logger.
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
    match registered {
        Ok(mut logger) => {
            tokio::spawn(async move {
                while let Ok(mut ready) = logger.readable_mut().await {
                    ready.get_inner_mut().flush();
                    ready.clear_ready();
                }
            });
        }
        Err(e) => tracing::debug!(error = %e, "eBPF log not forwarded"),
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct passed; failure only means a low limit.
    unsafe {
        libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited);
    }
}

#[cfg(test)]
mod tests {
    use serve2_common::{
        COUNTERS_MAP, DIRECT_MAP, HEARTBEAT_MAP, LISTENER_MAP, POLICY_COUNTERS_MAP, POLICY_SETTINGS_MAP, PORTS_MAP,
        PROGRAM, RATES_MAP, SCOPE_V4_MAP, SCOPE_V6_MAP, SETTINGS_MAP, SOURCES_V4_MAP, SOURCES_V6_MAP,
    };

    /// The embedded object parses without privileges and holds the program
    /// and every map the daemon opens by name (a build mismatch would
    /// otherwise only show as root, at start).
    #[test]
    fn the_embedded_object_has_the_program_and_every_map_the_daemon_uses() {
        let object = aya_obj::Object::parse(super::PROGRAM_OBJECT).expect("the embedded object parses");
        let maps = [
            PORTS_MAP,
            LISTENER_MAP,
            DIRECT_MAP,
            COUNTERS_MAP,
            POLICY_COUNTERS_MAP,
            SETTINGS_MAP,
            SCOPE_V4_MAP,
            SCOPE_V6_MAP,
            HEARTBEAT_MAP,
            SOURCES_V4_MAP,
            SOURCES_V6_MAP,
            POLICY_SETTINGS_MAP,
            RATES_MAP,
        ];
        for map in maps {
            assert!(object.maps.contains_key(map), "no map {map}; it has {:?}", object.maps.keys().collect::<Vec<_>>());
        }
        assert!(object.programs.contains_key(PROGRAM), "no program {PROGRAM}");
        assert_eq!(object.programs.len(), 1, "only the steering program ships");
    }
}
