//! Flow admission shared by every UDP socket's dispatcher: `maxFlows` and
//! `maxFlowsPerSource` bound the whole daemon, not each socket. Touched
//! only when a flow is created or removed, never per datagram.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::set::FlowLimits;
use super::stats::DropReason;

/// The network a source address counts against: a /24 for IPv4, a /64 for
/// IPv6, so one host cannot fill the table by changing address within its
/// own network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SourcePrefix {
    /// The /24 of an IPv4 address.
    V4(u32),
    /// The /64 of an IPv6 address.
    V6(u64),
}

impl SourcePrefix {
    /// The prefix `ip` counts against (IPv4-mapped addresses as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourcePrefix::V4(u32::from(v4) & 0xffff_ff00),
            IpAddr::V6(v6) => SourcePrefix::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// How many flows are admitted, in all and per source prefix.
#[derive(Debug, Default)]
pub(super) struct Admission {
    total: AtomicUsize,
    per_source: Mutex<HashMap<SourcePrefix, usize>>,
}

impl Admission {
    /// Takes a slot for a new flow from `client`, or says which limit it
    /// passes. A taken slot is given back with [`Admission::release`].
    pub fn admit(&self, client: IpAddr, limits: FlowLimits) -> Result<(), DropReason> {
        // Reserve in the total first: two dispatchers racing for the last
        // slot cannot both get it.
        let reserved = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| (total < limits.max_flows).then_some(total + 1));
        if reserved.is_err() {
            return Err(DropReason::TableFull);
        }
        let prefix = SourcePrefix::of(client);
        let admitted = match self.per_source.lock() {
            Ok(mut per_source) => {
                let count = per_source.entry(prefix).or_default();
                if *count < limits.max_flows_per_source {
                    *count += 1;
                    true
                } else {
                    if *count == 0 {
                        per_source.remove(&prefix);
                    }
                    false
                }
            }
            // A dispatcher panicked holding the lock: refuse rather than
            // lose count.
            Err(_) => false,
        };
        if admitted {
            Ok(())
        } else {
            self.total.fetch_sub(1, Ordering::AcqRel);
            Err(DropReason::SourceFull)
        }
    }

    /// Gives back the slot a flow from `client` took.
    pub fn release(&self, client: IpAddr) {
        let prefix = SourcePrefix::of(client);
        if let Ok(mut per_source) = self.per_source.lock()
            && let Some(count) = per_source.get_mut(&prefix)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_source.remove(&prefix);
            }
        }
        // Never below zero, whatever a caller does.
        let _ = self.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| total.checked_sub(1));
    }

    /// Flows admitted and not yet released.
    #[cfg(test)]
    pub fn admitted(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_flows: usize, max_flows_per_source: usize) -> FlowLimits {
        FlowLimits { max_flows, max_flows_per_source }
    }

    #[test]
    fn sources_count_by_their_slash_24_or_slash_64() {
        let of = |s: &str| SourcePrefix::of(s.parse().unwrap());
        assert_eq!(of("192.0.2.7"), of("192.0.2.200"));
        assert_ne!(of("192.0.2.7"), of("192.0.3.7"));
        assert_eq!(of("::ffff:192.0.2.9"), of("192.0.2.7"));
        assert_eq!(of("2001:db8:0:1::1"), of("2001:db8:0:1:ffff::2"));
        assert_ne!(of("2001:db8:0:1::1"), of("2001:db8:0:2::1"));
    }

    #[test]
    fn the_total_and_each_source_are_bounded_and_slots_come_back() {
        let admission = Admission::default();
        let (a, same_24, other) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap(), "198.51.100.1".parse().unwrap());
        let limits = limits(3, 2);
        assert_eq!(admission.admit(a, limits), Ok(()));
        assert_eq!(admission.admit(same_24, limits), Ok(()));
        assert_eq!(admission.admit(a, limits), Err(DropReason::SourceFull));
        assert_eq!(admission.admitted(), 2, "a refused source takes no slot in the total");
        assert_eq!(admission.admit(other, limits), Ok(()));
        assert_eq!(admission.admit(other, limits), Err(DropReason::TableFull));
        admission.release(a);
        assert_eq!(admission.admit(same_24, limits), Ok(()));
        assert_eq!(admission.admitted(), 3);
    }

    #[test]
    fn threads_racing_for_slots_get_exactly_the_limit() {
        let admission = std::sync::Arc::new(Admission::default());
        let limits = limits(10, 1_000);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let admission = admission.clone();
                std::thread::spawn(move || {
                    (0..100u8).filter(|i| admission.admit(IpAddr::from([10, t, 0, *i]), limits).is_ok()).count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!((admitted, admission.admitted()), (10, 10));
    }
}
