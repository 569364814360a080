//! Reassembling a byte stream sent in pieces at explicit offsets, in any
//! order and with repeats: QUIC CRYPTO frames (RFC 9000 §19.6) and DTLS
//! handshake fragments (RFC 6347 §4.2.3) both carry a ClientHello that way.

/// Why a piece was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It reaches past the stream's limit.
    TooLong,
    /// It overlaps bytes already received with different ones: the stream
    /// would depend on which piece came first.
    Conflict,
}

/// The stream's bytes received so far, bounded.
#[derive(Debug, Clone)]
pub(crate) struct Reassembly {
    bytes: Vec<u8>,
    /// The received ranges, sorted, disjoint and not adjacent.
    ranges: Vec<(usize, usize)>,
    limit: usize,
}

impl Reassembly {
    /// An empty stream that refuses bytes at or past `limit`.
    pub(crate) fn new(limit: usize) -> Self {
        Reassembly { bytes: Vec::new(), ranges: Vec::new(), limit }
    }

    /// Adds `data` at `offset`. Bytes received twice must be equal.
    pub(crate) fn insert(&mut self, offset: usize, data: &[u8]) -> Result<(), Refused> {
        let end = offset.checked_add(data.len()).filter(|&end| end <= self.limit).ok_or(Refused::TooLong)?;
        if data.is_empty() {
            return Ok(());
        }
        for &(start, stop) in &self.ranges {
            let (from, to) = (start.max(offset), stop.min(end));
            if from < to && self.bytes[from..to] != data[from - offset..to - offset] {
                return Err(Refused::Conflict);
            }
        }
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[offset..end].copy_from_slice(data);
        // Merge every range that overlaps or touches the new one.
        let (mut start, mut stop) = (offset, end);
        self.ranges.retain(|&(s, e)| {
            let touches = s <= stop && start <= e;
            if touches {
                (start, stop) = (start.min(s), stop.max(e));
            }
            !touches
        });
        let at = self.ranges.partition_point(|&(s, _)| s < start);
        self.ranges.insert(at, (start, stop));
        Ok(())
    }

    /// The bytes received without a gap from offset 0.
    pub(crate) fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => &self.bytes[..end],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_in_any_order_and_repeated_make_one_stream() {
        let message: Vec<u8> = (0..100u8).collect();
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut stream = Reassembly::new(1000);
            let pieces = [(0, 30), (30, 70), (70, 100)];
            for &i in &order {
                let (s, e) = pieces[i];
                assert!(stream.contiguous().len() < 100);
                stream.insert(s, &message[s..e]).unwrap();
                stream.insert(s, &message[s..e]).unwrap();
            }
            assert_eq!(stream.contiguous(), &message[..]);
        }
    }

    #[test]
    fn a_gap_hides_what_follows_it() {
        let mut stream = Reassembly::new(1000);
        stream.insert(10, b"later").unwrap();
        assert_eq!(stream.contiguous(), b"");
        stream.insert(0, b"0123456789").unwrap();
        assert_eq!(stream.contiguous(), b"0123456789later");
        stream.insert(12, b"te").unwrap();
        stream.insert(9, b"9l").unwrap();
        assert_eq!(stream.contiguous(), b"0123456789later");
    }

    #[test]
    fn conflicting_and_oversized_pieces_are_refused() {
        let mut stream = Reassembly::new(16);
        stream.insert(0, b"abcd").unwrap();
        assert_eq!(stream.insert(2, b"xd"), Err(Refused::Conflict));
        assert_eq!(stream.insert(14, b"abc"), Err(Refused::TooLong));
        assert_eq!(stream.insert(usize::MAX, b"a"), Err(Refused::TooLong));
        assert_eq!(stream.insert(16, b""), Ok(()));
        assert_eq!(stream.contiguous(), b"abcd");
    }
}
