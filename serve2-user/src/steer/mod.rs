//! Kernel steering: the embedded `sk_lookup` program, loaded and attached to
//! this network namespace, sends new connections on chosen ports to one
//! listening socket of ours.
//!
//! Lifetime: the program link and the maps live as long as [`Steering`]
//! (and so the process). When the process ends, however it ends, the kernel
//! detaches the program and the listener leaves the SOCKMAP; no port keeps
//! pointing at a dead daemon.

mod plan;
mod privileges;

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, PerCpuArray, SockMap};
use aya::programs::SkLookup;
use ipnet::IpNet;
use serve2_common::{
    COUNTERS_MAP, Counter, FLAG_SCOPED, HEARTBEAT_INTERVAL_NS, HEARTBEAT_MAP, LISTENER_MAP, NOT_STEERED, PORTS_MAP,
    PROGRAM, SCOPE_V4_MAP, SCOPE_V6_MAP, SETTINGS_MAP, STEERED, Setting,
};

pub use plan::{SteerPlan, listening_ports};

/// The object built from `serve2-ebpf` by `build.rs`.
pub(crate) static PROGRAM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/serve2-ebpf.o"));

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
    /// The port map, changed on reload.
    ports: std::sync::Mutex<Array<MapData, u32>>,
}

/// The daemon's heartbeat in the program's map: while it beats, steered
/// connections go to the daemon; once it stops beating for a second
/// (process stopped, runtime hung), the program lets the kernel's normal
/// lookup take them instead of queueing them.
pub struct Heartbeat {
    map: std::sync::Mutex<Array<MapData, u64>>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat").finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// How often to beat.
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_nanos(HEARTBEAT_INTERVAL_NS);

    /// Records "alive now" (the clock `bpf_ktime_get_ns` reads).
    pub fn beat(&self) {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the struct passed.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
            return;
        }
        let ns = (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64);
        if let Ok(mut map) = self.map.lock()
            && let Err(e) = map.set(0, ns, 0)
        {
            tracing::warn!(error = %e, "steering heartbeat");
        }
    }

    /// Beats every [`Heartbeat::INTERVAL`] until the task is dropped.
    pub async fn keep_beating(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Self::INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.beat();
        }
    }
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering").finish_non_exhaustive()
    }
}

/// The program's per-CPU counters, readable while it runs.
pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for KernelCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.read()).finish()
    }
}

impl KernelCounters {
    /// Each counter summed over CPUs, by name.
    pub fn read(&self) -> Vec<(&'static str, u64)> {
        Counter::ALL
            .iter()
            .map(|&counter| {
                let total = self.map.get(&(counter as u32), 0).map_or(0, |per_cpu| per_cpu.iter().sum());
                (counter.name(), total)
            })
            .collect()
    }
}

impl Steering {
    /// Loads the program, fills its maps from `plan`, puts `listener` (a
    /// dual-stack `[::]` socket, possibly the first of an SO_REUSEPORT group)
    /// in its SOCKMAP, and attaches it to the
    /// calling thread's network namespace — in that order, so no connection
    /// is ever steered to an empty map.
    pub fn attach(listener: &impl AsRawFd, plan: &SteerPlan, scope: &[IpNet]) -> Result<Steering, SteerError> {
        privileges::check()?;
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(PROGRAM_OBJECT).map_err(SteerError::Object)?;
        start_kernel_log(&mut ebpf);
        let mut ports: Array<_, u32> = typed_map(&mut ebpf, PORTS_MAP)?;
        for port in plan.steered.iter() {
            ports.set(u32::from(port), STEERED, 0).map_err(map_error(PORTS_MAP))?;
        }
        if !scope.is_empty() {
            fill_scope(&mut ebpf, scope)?;
            let mut settings: Array<_, u32> = typed_map(&mut ebpf, SETTINGS_MAP)?;
            settings.set(Setting::Flags as u32, FLAG_SCOPED, 0).map_err(map_error(SETTINGS_MAP))?;
        }
        // Alive from the first connection on (beaten again below).
        let heartbeat =
            ebpf.take_map(HEARTBEAT_MAP).ok_or_else(|| SteerError::Missing(format!("map {HEARTBEAT_MAP}")))?;
        let heartbeat: Array<MapData, u64> = Array::try_from(heartbeat).map_err(map_error(HEARTBEAT_MAP))?;
        let heartbeat = Arc::new(Heartbeat { map: std::sync::Mutex::new(heartbeat) });
        heartbeat.beat();
        let mut sockets: SockMap<_> = typed_map(&mut ebpf, LISTENER_MAP)?;
        sockets.set(0, &listener.as_raw_fd(), 0).map_err(map_error(LISTENER_MAP))?;

        let program: &mut SkLookup = ebpf
            .program_mut(PROGRAM)
            .ok_or(SteerError::Missing(format!("program {PROGRAM}")))?
            .try_into()
            .map_err(|source| SteerError::Program { step: "finding", source })?;
        program.load().map_err(|source| SteerError::Program { step: "loading", source })?;
        // This thread's namespace: the one the listener was created in.
        let netns = File::open("/proc/thread-self/ns/net").map_err(SteerError::Namespace)?;
        program.attach(netns).map_err(|source| SteerError::Program { step: "attaching", source })?;

        let counters = ebpf.take_map(COUNTERS_MAP).ok_or_else(|| SteerError::Missing(format!("map {COUNTERS_MAP}")))?;
        let counters = PerCpuArray::try_from(counters).map_err(map_error(COUNTERS_MAP))?;
        let ports = ebpf.take_map(PORTS_MAP).ok_or_else(|| SteerError::Missing(format!("map {PORTS_MAP}")))?;
        let ports = Array::try_from(ports).map_err(map_error(PORTS_MAP))?;
        Ok(Steering {
            _ebpf: ebpf,
            counters: Arc::new(KernelCounters { map: counters }),
            heartbeat,
            ports: std::sync::Mutex::new(ports),
        })
    }

    /// The program's counters.
    pub fn counters(&self) -> Arc<KernelCounters> {
        self.counters.clone()
    }

    /// Steers `ports`, or stops steering them. Each port flips on its own:
    /// connections already accepted are never touched.
    pub fn set_ports(&self, ports: &crate::ports::PortSet, steered: bool) -> Result<(), SteerError> {
        // A poisoned lock only means another reload panicked mid-way; the
        // map itself is the kernel's and still consistent per port.
        let mut map = self.ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = if steered { STEERED } else { NOT_STEERED };
        for port in ports.iter() {
            map.set(u32::from(port), value, 0).map_err(map_error(PORTS_MAP))?;
        }
        Ok(())
    }

    /// The heartbeat to keep beating while the daemon serves.
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> SteerError {
    move |source| SteerError::Map { map, source }
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
        COUNTERS_MAP, HEARTBEAT_MAP, LISTENER_MAP, PORTS_MAP, PROGRAM, SCOPE_V4_MAP, SCOPE_V6_MAP, SETTINGS_MAP,
    };

    /// The embedded object parses without privileges and holds the program
    /// and every map the daemon opens by name (a build mismatch would
    /// otherwise only show as root, at start).
    #[test]
    fn the_embedded_object_has_the_program_and_every_map_the_daemon_uses() {
        let object = aya_obj::Object::parse(super::PROGRAM_OBJECT).expect("the embedded object parses");
        for map in [PORTS_MAP, LISTENER_MAP, COUNTERS_MAP, SETTINGS_MAP, SCOPE_V4_MAP, SCOPE_V6_MAP, HEARTBEAT_MAP] {
            assert!(object.maps.contains_key(map), "no map {map}; it has {:?}", object.maps.keys().collect::<Vec<_>>());
        }
        assert!(object.programs.contains_key(PROGRAM), "no program {PROGRAM}");
        assert_eq!(object.programs.len(), 1, "only the steering program ships");
    }
}
