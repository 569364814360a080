//! Which protocol set a connection runs through, by the port it dialled.

use std::sync::Arc;

use crate::protocol::ProtocolSet;

const PORTS: usize = 1 << 16;

/// Maps a connection's local (dialled) port to its protocol set in constant
/// time, whatever the number of ports with a policy of their own.
#[derive(Debug, Clone)]
pub struct Router {
    /// `sets[0]` is the default; `sets[i]` for i > 0 are per-port policies.
    sets: Vec<Arc<ProtocolSet>>,
    /// Index into `sets` per port; allocated (128 KiB) only when a policy
    /// exists.
    by_port: Option<Box<[u16]>>,
    limits: crate::admission::ConnectionLimits,
}

/// Why a policy could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// Another policy already owns the port.
    #[error("port {0} already has a policy")]
    PortTaken(u16),
    /// More policies than the table can index.
    #[error("too many policies")]
    TooManyPolicies,
}

impl Router {
    /// A router sending every connection through `default`.
    pub fn new(default: ProtocolSet) -> Self {
        Self { sets: vec![Arc::new(default)], by_port: None, limits: Default::default() }
    }

    /// With top-level connection limits.
    pub fn with_limits(mut self, limits: crate::admission::ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The top-level connection limits.
    pub fn limits(&self) -> crate::admission::ConnectionLimits {
        self.limits
    }

    /// Sends connections dialled to any of `ports` through `set`.
    pub fn add_policy(&mut self, ports: impl IntoIterator<Item = u16>, set: ProtocolSet) -> Result<(), RouterError> {
        let index = u16::try_from(self.sets.len()).map_err(|_| RouterError::TooManyPolicies)?;
        let table = self.by_port.get_or_insert_with(|| vec![0u16; PORTS].into_boxed_slice());
        let ports: Vec<u16> = ports.into_iter().collect();
        if let Some(&taken) = ports.iter().find(|&&p| table[usize::from(p)] != 0) {
            return Err(RouterError::PortTaken(taken));
        }
        for port in ports {
            table[usize::from(port)] = index;
        }
        self.sets.push(Arc::new(set));
        Ok(())
    }

    /// The protocol set for a connection dialled to `port`.
    pub fn for_port(&self, port: u16) -> &Arc<ProtocolSet> {
        let index = self.by_port.as_ref().map_or(0, |table| usize::from(table[usize::from(port)]));
        &self.sets[index]
    }

    /// The default protocol set.
    pub fn default_set(&self) -> &Arc<ProtocolSet> {
        &self.sets[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DetectLimits;

    fn set(max_read: usize) -> ProtocolSet {
        ProtocolSet::new(Vec::new(), None, DetectLimits { max_read, ..Default::default() }).unwrap()
    }

    #[test]
    fn ports_without_policy_get_the_default() {
        let mut router = Router::new(set(1));
        assert_eq!(router.for_port(80).limits().max_read, 1);
        router.add_policy([80, 8080], set(2)).unwrap();
        router.add_policy([22], set(3)).unwrap();
        assert_eq!(router.for_port(80).limits().max_read, 2);
        assert_eq!(router.for_port(8080).limits().max_read, 2);
        assert_eq!(router.for_port(22).limits().max_read, 3);
        assert_eq!(router.for_port(443).limits().max_read, 1);
        assert_eq!(router.add_policy([443, 22], set(4)), Err(RouterError::PortTaken(22)));
        assert_eq!(router.for_port(443).limits().max_read, 1);
    }
}
