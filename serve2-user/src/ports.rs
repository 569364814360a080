//! Sets of TCP ports: a fixed 8 KiB bitmap, whatever the number of ports.

use std::fmt;

const WORDS: usize = (1 << 16) / 64;

/// A set of ports 0–65535.
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet {
    bits: Box<[u64; WORDS]>,
}

impl Default for PortSet {
    fn default() -> Self {
        Self { bits: Box::new([0; WORDS]) }
    }
}

impl PortSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ports 1–65535.
    pub fn all() -> Self {
        let mut set = Self::new();
        set.insert_range(1, u16::MAX);
        set
    }

    /// Adds one port.
    pub fn insert(&mut self, port: u16) {
        self.bits[usize::from(port) / 64] |= 1 << (port % 64);
    }

    /// Adds `first..=last`.
    pub fn insert_range(&mut self, first: u16, last: u16) {
        for port in first..=last {
            self.insert(port);
        }
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Number of ports in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// The ports, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(|&port| self.contains(port))
    }

    /// Ports in both sets.
    pub fn intersection(&self, other: &PortSet) -> PortSet {
        self.combine(other, |a, b| a & b)
    }

    /// Ports in either set.
    pub fn union(&self, other: &PortSet) -> PortSet {
        self.combine(other, |a, b| a | b)
    }

    /// Ports in `self` but not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        self.combine(other, |a, b| a & !b)
    }

    fn combine(&self, other: &PortSet, op: impl Fn(u64, u64) -> u64) -> PortSet {
        let mut out = PortSet::new();
        for (i, word) in out.bits.iter_mut().enumerate() {
            *word = op(self.bits[i], other.bits[i]);
        }
        out
    }

    /// Consecutive runs, as `(first, last)` pairs.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for port in self.iter() {
            match ranges.last_mut() {
                Some((_, last)) if u32::from(*last) + 1 == u32::from(port) => *last = port,
                _ => ranges.push((port, port)),
            }
        }
        ranges
    }
}

impl FromIterator<u16> for PortSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = PortSet::new();
        for port in iter {
            set.insert(port);
        }
        set
    }
}

/// `22,80,8000-8100`; `-` when empty.
impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges = self.ranges();
        if ranges.is_empty() {
            return f.write_str("-");
        }
        for (i, (first, last)) in ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_display() {
        let mut set = PortSet::new();
        set.insert(22);
        set.insert_range(8000, 8002);
        set.insert(80);
        assert_eq!(set.to_string(), "22,80,8000-8002");
        assert_eq!(set.len(), 5);
        assert!(set.contains(8001) && !set.contains(8003));
        assert_eq!(PortSet::all().len(), 65535);
        assert_eq!(PortSet::all().to_string(), "1-65535");
        assert_eq!(PortSet::new().to_string(), "-");
    }

    #[test]
    fn set_operations() {
        let a: PortSet = [1, 2, 3].into_iter().collect();
        let b: PortSet = [3, 4].into_iter().collect();
        assert_eq!(a.union(&b).to_string(), "1-4");
        assert_eq!(a.intersection(&b).to_string(), "3");
        assert_eq!(a.difference(&b).to_string(), "1-2");
    }
}
