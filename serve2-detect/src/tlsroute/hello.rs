//! Reading a whole ClientHello in place: a cursor over the handshake bytes
//! that skips record headers, so names are compared across record boundaries
//! without reassembling the message, and the SSLv2-format compatibility hello.

use crate::Span;
use crate::tls::{HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER, RECORD_HEADER};

/// The longest name compared: DNS host names and ALPN protocol names both fit
/// in 255 bytes, so one stack buffer holds either wherever records split it.
pub(super) const MAX_NAME: usize = 255;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// Why a walk stopped before the end of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The buffered prefix ends first: more bytes may complete the walk.
    Short,
    /// The message breaks its own length fields or the ClientHello grammar:
    /// no longer prefix can mend that.
    Malformed,
}

/// The SNI host name of a ClientHello.
#[derive(Debug, Clone, Copy)]
pub(super) struct HostName {
    /// Its length as sent (it may exceed [`MAX_NAME`]).
    pub len: usize,
    /// Its first [`MAX_NAME`] bytes.
    pub buf: [u8; MAX_NAME],
    /// Where it lies in the prefix, when one record holds all of it.
    pub span: Option<Span>,
}

impl HostName {
    /// The name, or `None` when it is too long to be a DNS name.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.buf.get(..self.len)
    }
}

/// What a complete, well-formed ClientHello says about routing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hello {
    /// The first `host_name` of the server_name extension.
    pub server_name: Option<HostName>,
    /// Whether the ALPN extension offered a protocol the caller accepts.
    pub alpn_accepted: bool,
}

/// Reads a handshake message's bytes in order across TLS records. The record
/// headers it skips were already checked by [`crate::tls::scan_client_hello_up_to`].
struct Cursor<'a> {
    input: &'a [u8],
    /// Offset in `input` of the next byte to read.
    pos: usize,
    /// Bytes of the current record's fragment not read yet.
    record_left: usize,
    /// Handshake bytes read so far.
    read: usize,
    /// How far the structure being read may go, in handshake bytes: reading
    /// past it is [`Stop::Malformed`], whatever the prefix holds.
    limit: usize,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a [u8]) -> Self {
        Cursor { input, pos: 0, record_left: 0, read: 0, limit: HANDSHAKE_HEADER }
    }

    /// Checks `n` more bytes fit the current structure. Checked before
    /// reading, so a bad length is refused however little of it is buffered.
    fn reserve(&self, n: usize) -> Result<(), Stop> {
        if self.read.saturating_add(n) > self.limit { Err(Stop::Malformed) } else { Ok(()) }
    }

    /// Up to `max` (> 0) bytes of the current record, at least one.
    fn chunk(&mut self, max: usize) -> Result<&'a [u8], Stop> {
        while self.record_left == 0 {
            let header = self.input.get(self.pos..self.pos + RECORD_HEADER).ok_or(Stop::Short)?;
            self.record_left = usize::from(u16::from_be_bytes([header[3], header[4]]));
            self.pos += RECORD_HEADER;
        }
        let n = max.min(self.record_left).min(self.input.len().saturating_sub(self.pos));
        let bytes = self.input.get(self.pos..self.pos + n).filter(|b| !b.is_empty()).ok_or(Stop::Short)?;
        self.pos += n;
        self.record_left -= n;
        self.read += n;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        self.reserve(1)?;
        self.chunk(1)?.first().copied().ok_or(Stop::Short)
    }

    fn u16(&mut self) -> Result<u16, Stop> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }

    fn len16(&mut self) -> Result<usize, Stop> {
        self.u16().map(usize::from)
    }

    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        self.reserve(n)?;
        let mut left = n;
        while left > 0 {
            left -= self.chunk(left)?.len();
        }
        Ok(())
    }

    /// Reads `n` bytes, copying the first [`MAX_NAME`] into `buf`; returns
    /// where they lie in the input when one record holds them all.
    fn name(&mut self, n: usize, buf: &mut [u8; MAX_NAME]) -> Result<Option<Span>, Stop> {
        self.reserve(n)?;
        let mut done = 0;
        let mut span = None;
        while done < n {
            let bytes = self.chunk(n - done)?;
            if done == 0 && bytes.len() == n {
                span = Span::new(self.pos - n, self.pos);
            }
            for (slot, &b) in buf.iter_mut().skip(done).zip(bytes) {
                *slot = b;
            }
            done += bytes.len();
        }
        Ok(span)
    }

    /// Narrows the structure to the next `n` bytes; returns the outer limit
    /// for [`Cursor::close`].
    fn open(&mut self, n: usize) -> Result<usize, Stop> {
        self.reserve(n)?;
        Ok(std::mem::replace(&mut self.limit, self.read + n))
    }

    /// Ends a structure opened with [`Cursor::open`]: all of it must be read.
    fn close(&mut self, outer: usize) -> Result<(), Stop> {
        if self.read != self.limit {
            return Err(Stop::Malformed);
        }
        self.limit = outer;
        Ok(())
    }
}

/// Walks the ClientHello at the start of `input` (TLS records already
/// checked) as far as the input goes. `accept_alpn` says whether an offered
/// protocol name is one the caller routes.
///
/// Deterministic over the bytes read, so a `Malformed` prefix stays malformed
/// when longer and a `Short` one can only become `Ok` or `Malformed`.
pub(super) fn walk(input: &[u8], accept_alpn: impl Fn(&[u8]) -> bool) -> Result<Hello, Stop> {
    let mut cur = Cursor::new(input);
    if cur.u8()? != HANDSHAKE_CLIENT_HELLO {
        return Err(Stop::Malformed);
    }
    let body_len = usize::from(cur.u8()?) << 16 | cur.len16()?;
    cur.limit = HANDSHAKE_HEADER + body_len;
    // legacy_version: 03 xx. Any minor is valid: servers answer a version
    // above their own with the highest they support (RFC 5246 Appendix E.1).
    if cur.u8()? != 3 {
        return Err(Stop::Malformed);
    }
    cur.skip(1)?; // minor version
    cur.skip(32)?; // random
    let session_id = usize::from(cur.u8()?);
    if session_id > 32 {
        return Err(Stop::Malformed);
    }
    cur.skip(session_id)?;
    let cipher_suites = cur.len16()?;
    if cipher_suites < 2 || cipher_suites % 2 != 0 {
        return Err(Stop::Malformed);
    }
    cur.skip(cipher_suites)?;
    let compression_methods = usize::from(cur.u8()?);
    if compression_methods == 0 {
        return Err(Stop::Malformed);
    }
    cur.skip(compression_methods)?;
    let mut hello = Hello { server_name: None, alpn_accepted: false };
    if cur.read == cur.limit {
        return Ok(hello); // no extensions at all (SSL 3.0, TLS 1.0 style)
    }
    let extensions_len = cur.len16()?;
    if cur.read + extensions_len != cur.limit {
        return Err(Stop::Malformed);
    }
    let (mut seen_sni, mut seen_alpn) = (false, false);
    while cur.read < cur.limit {
        let kind = cur.u16()?;
        let data_len = cur.len16()?;
        let outer = cur.open(data_len)?;
        // A repeated extension is refused (as TLS libraries do): with two
        // names the route would depend on which one was read.
        match kind {
            EXT_SERVER_NAME if std::mem::replace(&mut seen_sni, true) => return Err(Stop::Malformed),
            EXT_ALPN if std::mem::replace(&mut seen_alpn, true) => return Err(Stop::Malformed),
            EXT_SERVER_NAME => hello.server_name = server_name(&mut cur)?,
            EXT_ALPN => hello.alpn_accepted = alpn(&mut cur, &accept_alpn)?,
            _ => cur.skip(data_len)?,
        }
        cur.close(outer)?;
    }
    Ok(hello)
}

/// The first `host_name` of a ServerNameList (RFC 6066 §3).
fn server_name(cur: &mut Cursor<'_>) -> Result<Option<HostName>, Stop> {
    let list_len = cur.len16()?;
    let outer = cur.open(list_len)?;
    let mut found = None;
    while cur.read < cur.limit {
        let name_type = cur.u8()?;
        let len = cur.len16()?;
        if name_type == NAME_TYPE_HOST_NAME && found.is_none() {
            let mut name = HostName { len, buf: [0; MAX_NAME], span: None };
            name.span = cur.name(len, &mut name.buf)?;
            found = Some(name);
        } else {
            cur.skip(len)?;
        }
    }
    cur.close(outer)?;
    Ok(found)
}

/// Whether a ProtocolNameList (RFC 7301 §3.1) offers a protocol `accept` takes.
fn alpn(cur: &mut Cursor<'_>, accept: &impl Fn(&[u8]) -> bool) -> Result<bool, Stop> {
    let list_len = cur.len16()?;
    let outer = cur.open(list_len)?;
    let mut accepted = false;
    let mut buf = [0; MAX_NAME];
    while cur.read < cur.limit {
        let len = usize::from(cur.u8()?);
        cur.name(len, &mut buf)?;
        accepted |= buf.get(..len).is_some_and(accept);
    }
    cur.close(outer)?;
    Ok(accepted)
}

/// Header of an SSLv2-format hello: two length bytes, then msg_type, version
/// and the three 16-bit lengths (RFC 5246 Appendix E.2).
pub(super) const V2_HEADER: usize = 2 + 9;
/// The smallest body: one cipher spec and a 16-byte challenge.
const V2_MIN_BODY: usize = 9 + 3 + 16;

/// Result of checking an SSLv2-format compatibility ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V2Scan {
    /// Whole and consistent.
    Complete,
    /// Plausible so far: decisive at `min` bytes, all of it at `max`.
    Incomplete {
        /// The next byte that may be checked.
        min: usize,
        /// The whole message (or the fixed header while the length is unknown).
        max: usize,
    },
    /// Not an SSLv2-format compatibility hello.
    Invalid,
}

/// Checks the SSLv2-format ClientHello a TLS 1.0–1.2 client may send for
/// compatibility with SSL 2.0 servers: a 2-byte header with the high bit set,
/// msg_type 1, version 03 00–03 03, cipher specs in 3-byte units, a 0- or
/// 16-byte session id and a 16–32-byte challenge. Each field is refused as
/// soon as it arrives; `max_message` bounds the 15-bit length.
pub(super) fn scan_v2(input: &[u8], max_message: usize) -> V2Scan {
    let at = |i: usize| input.get(i).copied();
    let u16_at = |i: usize| Some(usize::from(u16::from_be_bytes([at(i)?, at(i + 1)?])));
    let Some(first) = at(0).filter(|b| b & 0x80 != 0) else {
        return if input.is_empty() { V2Scan::Incomplete { min: 1, max: V2_HEADER } } else { V2Scan::Invalid };
    };
    let Some(second) = at(1) else {
        return V2Scan::Incomplete { min: 2, max: V2_HEADER };
    };
    let body_len = usize::from(first & 0x7f) << 8 | usize::from(second);
    let (cipher_specs, session_id, challenge) = (u16_at(5), u16_at(7), u16_at(9));
    let invalid = body_len < V2_MIN_BODY
        || body_len > max_message
        || at(2).is_some_and(|msg_type| msg_type != HANDSHAKE_CLIENT_HELLO)
        || at(3).is_some_and(|major| major != 3)
        || at(4).is_some_and(|minor| minor > 3)
        || cipher_specs.is_some_and(|n| n == 0 || n % 3 != 0)
        || session_id.is_some_and(|n| n != 0 && n != 16)
        || challenge.is_some_and(|n| !(16..=32).contains(&n));
    if invalid {
        return V2Scan::Invalid;
    }
    let total = 2 + body_len;
    match (cipher_specs, session_id, challenge) {
        (Some(c), Some(s), Some(ch)) if 9 + c + s + ch != body_len => V2Scan::Invalid,
        (Some(_), Some(_), Some(_)) if input.len() >= total => V2Scan::Complete,
        (Some(_), Some(_), Some(_)) => V2Scan::Incomplete { min: total, max: total },
        _ => V2Scan::Incomplete { min: input.len() + 1, max: total },
    }
}
