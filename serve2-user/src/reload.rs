//! Hot reload: re-read the file the daemon was started with, check it as
//! `--check` does, and swap — protocols, policies, certificates, targets,
//! limits, and the steered ports in the kernel's map — with nothing
//! restarted and no socket closed. Open connections keep the configuration
//! they were accepted under; connections accepted after the swap see only
//! the new one. A file that fails changes nothing.
//!
//! Keys that need new sockets or threads (`address`, `workers`, `control`,
//! logging, `steer` on or off, `steer.addresses`, `shutdownTimeout`, `user`/`group`, `udpAddress`,
//! `steer.udpPorts`) are refused with a message naming them: restart to
//! change them. `udp` blocks and `maxFlows`/`maxFlowsPerSource` reload: new
//! UDP flows take them, open flows keep the block they started under. After a privilege drop the daemon could
//! not bind or load anything new anyway; the kernel maps it already holds
//! stay writable through their descriptors.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::control::ReloadAnswer;
use crate::server::Server;

/// What the daemon runs now, shared with `serve2d status`.
#[derive(Debug)]
pub(crate) struct Live {
    /// The configuration in force.
    pub config: Config,
    /// With steering: the ports in the kernel's map and the ones left alone.
    #[cfg(feature = "steer")]
    pub plan: Option<crate::steer::SteerPlan>,
}

/// The loaded program, shared by reload (which changes its port map) and
/// shutdown (which detaches it first).
#[cfg(feature = "steer")]
pub(crate) type SharedSteering = Arc<std::sync::Mutex<Option<crate::steer::Steering>>>;
/// Stands in for steering in builds without it.
#[cfg(not(feature = "steer"))]
pub(crate) type SharedSteering = Arc<()>;

/// Applies reloads, one at a time.
#[derive(Debug)]
#[cfg_attr(not(feature = "steer"), allow(dead_code))]
pub(crate) struct Reloader {
    pub file: PathBuf,
    pub live: Arc<RwLock<Live>>,
    pub server: Server,
    pub steering: SharedSteering,
    /// serve2's own listening ports (never "another socket listens here").
    pub own_ports: crate::ports::PortSet,
    /// Where reloads are counted and the new sets' connections too.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The UDP server, whose `udp` blocks and flow limits reload too.
    pub udp: Option<crate::udp::UdpServer>,
}

impl Reloader {
    /// Reloads for `requester` (logged), returning the outcome.
    pub fn reload(&self, requester: &str) -> ReloadAnswer {
        tracing::info!(%requester, file = %self.file.display(), "reload requested");
        let result = self.try_reload();
        if let Some(metrics) = &self.metrics {
            metrics.record_reload(result.is_ok());
        }
        let answer = match result {
            Ok(message) => {
                tracing::info!(%requester, "{message}");
                ReloadAnswer { ok: true, message }
            }
            Err(message) => {
                tracing::warn!(%requester, "reload refused; nothing changed: {message}");
                ReloadAnswer { ok: false, message }
            }
        };
        crate::notify::ready();
        answer
    }

    fn try_reload(&self) -> Result<String, String> {
        crate::notify::reloading();
        let mut new = Config::load(&self.file).map_err(|e| e.to_string())?;
        let mut live = self.live.write().map_err(|_| "internal state poisoned".to_owned())?;
        unchangeable(&live.config, &new)?;
        // A policy's maxConnections spans its connections from before.
        for policy in &mut new.policies {
            if let Some(old) = live.config.policies.iter().find(|p| p.name == policy.name) {
                policy.protocols.share_open_count(&old.protocols);
            }
        }
        new.protocols.share_open_count(&live.config.protocols);
        let router = new.router_with(self.metrics.as_deref()).map_err(|e| e.to_string())?;
        let steered = self.swap(&mut live, &new, router)?;
        // New flows take the new blocks; open flows keep theirs.
        if let Some(udp) = &self.udp {
            udp.replace_router(crate::udp::UdpRouter::new(&new, Some(&udp.router())));
        }
        let policies = new.policies.len();
        live.config = new;
        Ok(format!("reloaded {}: {policies} policies{steered}", self.file.display()))
    }

    /// Swaps the router and, with steering, the port map: ports leaving
    /// steering first, then the router, then ports joining — so no
    /// connection is steered to a port the router does not know yet.
    #[cfg(feature = "steer")]
    fn swap(&self, live: &mut Live, new: &Config, router: crate::Router) -> Result<String, String> {
        let (Some(steer), Some(old_plan)) = (&new.steer, &live.plan) else {
            self.server.replace_router(router);
            return Ok(String::new());
        };
        let in_use = crate::steer::listening_ports().map_err(|e| format!("listing listening ports: {e}"))?;
        let mut plan = crate::steer::SteerPlan::new(steer, &in_use, &self.own_ports);
        // UDP ports only change with a restart (`steer.udpPorts`).
        plan.udp_steered = old_plan.udp_steered.clone();
        let guard = self.steering.lock().map_err(|_| "steering state poisoned".to_owned())?;
        let Some(steering) = guard.as_ref() else { return Err("steering is detached (shutting down)".into()) };
        let table = crate::steer::KernelTable::new(new, &plan).map_err(|e| e.to_string())?;
        let leaving = old_plan.steered.difference(&plan.steered);
        steering.remove_leaving(&table).map_err(|e| e.to_string())?;
        self.server.replace_router(router);
        steering.add_joining(&table).map_err(|e| e.to_string())?;
        let message = format!(", {} ports steered ({} left steering)", plan.steered.len(), leaving.len());
        live.plan = Some(plan);
        Ok(message)
    }

    #[cfg(not(feature = "steer"))]
    fn swap(&self, _: &mut Live, _: &Config, router: crate::Router) -> Result<String, String> {
        self.server.replace_router(router);
        Ok(String::new())
    }
}

/// Refuses a new configuration that changes what only a restart can.
fn unchangeable(old: &Config, new: &Config) -> Result<(), String> {
    let mut changed = Vec::new();
    let mut check = |key: &str, same: bool| {
        if !same {
            changed.push(key.to_owned());
        }
    };
    check("address", old.listen == new.listen);
    check("workers", old.workers == new.workers);
    check("control", old.control == new.control);
    check("logStdout/logFile", old.log == new.log);
    check("steer (on or off)", old.steer.is_some() == new.steer.is_some());
    check(
        "steer.addresses",
        old.steer.as_ref().map(|s| &s.scope) == new.steer.as_ref().map(|s| &s.scope) || new.steer.is_none(),
    );
    check("shutdownTimeout", old.shutdown_timeout == new.shutdown_timeout);
    check("user/group", old.run_as == new.run_as);
    check("udpAddress", old.udp.listen == new.udp.listen);
    // The kernel's UDP port map is not rewritten on reload (yet).
    check("steer.udpPorts", old.udp.steer == new.udp.steer || new.steer.is_none());
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} cannot change while running; restart serve2d to change them", changed.join(", ")))
    }
}
