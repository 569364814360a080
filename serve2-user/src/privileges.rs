//! Privilege drop (`user`, `group`): once the eBPF program is attached and
//! every socket is bound, the daemon switches to an unprivileged user with
//! no capabilities left (bounding and ambient sets cleared, `no_new_privs`).
//! It keeps what it already holds: the listening sockets, the control
//! socket, and the kernel maps' descriptors — so a reload still changes the
//! steered ports, but can no longer bind a new socket or load a program.

use std::ffi::CString;

/// The user and group to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Why privileges could not be dropped (the daemon does not start then).
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A system call failed.
    #[error("dropping privileges: {step}: {source}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Clearing a capability set failed.
    #[error("dropping privileges: clearing the {set} capability set: {message}")]
    Capabilities {
        /// Which set.
        set: &'static str,
        /// Why.
        message: String,
    },
}

/// Resolves `user` (a name or a numeric id) and `group` (the same; by
/// default the user's primary group). The error says what is unknown.
pub fn resolve(user: &str, group: Option<&str>) -> Result<RunAs, String> {
    let (uid, primary) = match lookup_user(user) {
        Some(found) => found,
        None => match user.parse::<u32>() {
            Ok(uid) => (uid, None),
            Err(_) => return Err(format!("no user `{user}` on this system")),
        },
    };
    let gid = match group {
        Some(group) => match lookup_group(group).or_else(|| group.parse().ok()) {
            Some(gid) => gid,
            None => return Err(format!("no group `{group}` on this system")),
        },
        None => {
            primary.ok_or_else(|| format!("user id {uid} has no entry to take a primary group from: set \"group\""))?
        }
    };
    Ok(RunAs { uid, gid })
}

/// The uid and primary gid of user `name`.
fn lookup_user(name: &str) -> Option<(u32, Option<u32>)> {
    let name = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we
    // copy the two ids out at once, on the one thread that resolves names.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: checked non-null above.
    (!entry.is_null()).then(|| unsafe { ((*entry).pw_uid, Some((*entry).pw_gid)) })
}

fn lookup_group(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: as for getpwnam.
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    // SAFETY: checked non-null.
    (!entry.is_null()).then(|| unsafe { (*entry).gr_gid })
}

/// Switches the process to `run_as` with no capabilities. Call before any
/// worker thread starts (capability sets are per thread; threads started
/// later inherit the dropped state). A thread started before (the log
/// writer) changes user with the process — glibc applies `setresuid` to
/// every thread — and so loses its effective and permitted capabilities.
pub fn drop_to(run_as: RunAs) -> Result<(), PrivilegeError> {
    use caps::CapSet;
    let step = |step: &'static str| move |source| PrivilegeError::Step { step, source };
    // The bounding set needs CAP_SETPCAP: clear it while we have it.
    caps::clear(None, CapSet::Bounding)
        .map_err(|e| PrivilegeError::Capabilities { set: "bounding", message: e.to_string() })?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| PrivilegeError::Capabilities { set: "ambient", message: e.to_string() })?;
    let groups = [run_as.gid];
    // SAFETY: plain system calls on values we own; glibc applies the id
    // changes to every thread of the process.
    unsafe {
        check(libc::setgroups(1, groups.as_ptr())).map_err(step("setgroups"))?;
        check(libc::setresgid(run_as.gid, run_as.gid, run_as.gid)).map_err(step("setresgid"))?;
        check(libc::setresuid(run_as.uid, run_as.uid, run_as.uid)).map_err(step("setresuid"))?;
    }
    // Leaving uid 0 clears the permitted and effective sets; make sure of
    // it for every set (and for a `user` that is root).
    for (set, name) in
        [(CapSet::Effective, "effective"), (CapSet::Permitted, "permitted"), (CapSet::Inheritable, "inheritable")]
    {
        caps::clear(None, set).map_err(|e| PrivilegeError::Capabilities { set: name, message: e.to_string() })?;
    }
    // SAFETY: a prctl with constant arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map_err(step("no_new_privs"))?;
    Ok(())
}

fn check(result: libc::c_int) -> std::io::Result<()> {
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_resolve_and_unknown_ones_are_named() {
        assert_eq!(resolve("root", None), Ok(RunAs { uid: 0, gid: 0 }));
        assert_eq!(resolve("65534", Some("65534")), Ok(RunAs { uid: 65534, gid: 65534 }));
        assert_eq!(resolve("no-such-user-here", None), Err("no user `no-such-user-here` on this system".into()));
        assert_eq!(resolve("root", Some("no-such-group")), Err("no group `no-such-group` on this system".into()));
        assert!(resolve("4242", None).unwrap_err().contains("set \"group\""));
    }
}
