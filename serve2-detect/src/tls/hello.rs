//! Reading a whole ClientHello in place: a cursor over the handshake bytes
//! that skips record headers, so names are compared across record boundaries
//! without reassembling the message. The same walk reads a bare handshake
//! message (QUIC's CRYPTO stream carries no record layer) and a DTLS one
//! (a 12-byte handshake header, DTLS versions and a cookie field), so every
//! transport routes by SNI and ALPN with one grammar.

use crate::Span;
use crate::tls::{HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER, RECORD_HEADER};

/// The longest name compared: DNS host names and ALPN protocol names both fit
/// in 255 bytes, so one stack buffer holds either wherever records split it.
pub(crate) const MAX_NAME: usize = 255;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// Why a walk stopped before the end of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The buffered prefix ends first: more bytes may complete the walk.
    Short,
    /// The message breaks its own length fields or the ClientHello grammar:
    /// no longer prefix can mend that.
    Malformed,
}

/// The SNI host name of a ClientHello.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostName {
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
pub(crate) struct Hello {
    /// The first `host_name` of the server_name extension.
    pub server_name: Option<HostName>,
    /// Whether the ALPN extension offered a protocol the caller accepts.
    pub alpn_accepted: bool,
}

/// How a ClientHello's bytes are laid out in the walked input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// TLS records from the first byte, their headers already checked by
    /// [`crate::tls::scan_client_hello_up_to`].
    TlsRecords,
    /// A bare TLS handshake message: the 4-byte handshake header, then the
    /// body (QUIC's CRYPTO stream, RFC 9001 §4).
    TlsMessage,
    /// A bare, whole DTLS handshake message: the 12-byte header (its
    /// message_seq and fragment fields checked by the caller), then a body
    /// with a DTLS version and a cookie after the session id (RFC 6347
    /// §4.2.2, RFC 9147 §5.3).
    DtlsMessage,
}

impl Layout {
    /// Bytes of handshake header before the body.
    fn header_len(self) -> usize {
        match self {
            Layout::TlsRecords | Layout::TlsMessage => HANDSHAKE_HEADER,
            Layout::DtlsMessage => DTLS_HANDSHAKE_HEADER,
        }
    }
}

/// DTLS's handshake header: type, length, message_seq, fragment_offset,
/// fragment_length.
pub(crate) const DTLS_HANDSHAKE_HEADER: usize = 12;

/// Reads a handshake message's bytes in order, across TLS records for
/// [`Layout::TlsRecords`] (whose record headers were already checked by
/// [`crate::tls::scan_client_hello_up_to`]), straight through otherwise.
struct Cursor<'a> {
    input: &'a [u8],
    /// Offset in `input` of the next byte to read.
    pos: usize,
    /// Bytes of the current record's fragment not read yet (unbounded for a
    /// bare message: there are no records).
    record_left: usize,
    /// Handshake bytes read so far.
    read: usize,
    /// How far the structure being read may go, in handshake bytes: reading
    /// past it is [`Stop::Malformed`], whatever the prefix holds.
    limit: usize,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a [u8], layout: Layout) -> Self {
        let record_left = if layout == Layout::TlsRecords { 0 } else { usize::MAX };
        Cursor { input, pos: 0, record_left, read: 0, limit: HANDSHAKE_HEADER }
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

/// Walks the ClientHello at the start of `input`, laid out as `layout` says,
/// as far as the input goes. `accept_alpn` says whether an offered protocol
/// name is one the caller routes.
///
/// Deterministic over the bytes read, so a `Malformed` prefix stays malformed
/// when longer and a `Short` one can only become `Ok` or `Malformed`.
pub(crate) fn walk(input: &[u8], layout: Layout, accept_alpn: impl Fn(&[u8]) -> bool) -> Result<Hello, Stop> {
    let mut cur = Cursor::new(input, layout);
    if cur.u8()? != HANDSHAKE_CLIENT_HELLO {
        return Err(Stop::Malformed);
    }
    let body_len = usize::from(cur.u8()?) << 16 | cur.len16()?;
    cur.limit = layout.header_len() + body_len;
    cur.skip(layout.header_len() - HANDSHAKE_HEADER)?;
    // legacy_version: 03 xx (fe xx for DTLS). Any minor is valid: servers
    // answer a version above their own with the highest they support
    // (RFC 5246 Appendix E.1).
    let major = if layout == Layout::DtlsMessage { 0xfe } else { 3 };
    if cur.u8()? != major {
        return Err(Stop::Malformed);
    }
    cur.skip(1)?; // minor version
    cur.skip(32)?; // random
    let session_id = usize::from(cur.u8()?);
    if session_id > 32 {
        return Err(Stop::Malformed);
    }
    cur.skip(session_id)?;
    if layout == Layout::DtlsMessage {
        let cookie = usize::from(cur.u8()?);
        cur.skip(cookie)?;
    }
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
