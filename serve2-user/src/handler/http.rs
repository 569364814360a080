//! `http`: a static file server confined to one folder (no listings).
//!
//! Path safety: the request path is percent-decoded, cleaned like a rooted
//! URL path (`..` never climbs above the root), joined to the root, then
//! canonicalised; a result outside the canonical root (a symlink leading
//! out) or not a regular file is "not found". File delivery (ranges,
//! conditional requests, content types, HEAD) is tower-http's `ServeFile`.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::conn::Conn;
use crate::detect::H2_PREFACE;
use crate::protocol::{End, Handled, Handler, HandlerError, HandlerFuture, Report};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What the file server answers when a file is missing.
#[derive(Debug, Clone)]
pub enum NotFound {
    /// A fixed message (serve2d's `notFoundMsg`).
    Message(String),
    /// The contents of a file, read at each miss (serve2d's `notFoundFile`).
    File(PathBuf),
}

/// Serves files from one folder over HTTP/1.1 or HTTP/2.
#[derive(Debug, Clone)]
pub struct FileServer {
    inner: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    root: PathBuf,
    default_file: String,
    not_found: NotFound,
}

impl FileServer {
    /// Serves `root` (which must exist; it is canonicalised now), answering
    /// a folder with its `default_file` and misses with `not_found`.
    pub fn new(root: &Path, default_file: impl Into<String>, not_found: NotFound) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let inner = Arc::new(Settings { root, default_file: default_file.into(), not_found });
        Ok(Self { inner })
    }
}

impl Handler for FileServer {
    fn handle(&self, mut conn: Conn) -> HandlerFuture<'_> {
        Box::pin(async move {
            let settings = self.inner.clone();
            // The name the TLS session was opened for, if serve2 terminated it.
            let sni: Option<Arc<str>> = conn.info().tls.as_ref().and_then(|t| t.server_name.as_deref()).map(Arc::from);
            let service = hyper::service::service_fn(move |request| {
                let (settings, sni) = (settings.clone(), sni.clone());
                async move {
                    if misdirected(&request, sni.as_deref()) {
                        return Ok::<_, Infallible>(text_response(
                            StatusCode::MISDIRECTED_REQUEST,
                            "this connection's TLS session is for another host\n".into(),
                        ));
                    }
                    Ok::<_, Infallible>(settings.respond(request).await)
                }
            });
            let h2 = conn.buffered().starts_with(H2_PREFACE);
            let io = TokioIo::new(&mut conn);
            let served = if h2 {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service).await
            } else {
                hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
            };
            Ok(Handled::Done(Report::from_conn(&conn, http_end(served))))
        })
    }
}

/// Whether `request` asks for another host than the TLS session's `sni`
/// (RFC 9110 §15.5.20: answered 421, as a client may reuse a connection
/// for names it has no business sending there).
fn misdirected(request: &Request<Incoming>, sni: Option<&str>) -> bool {
    let Some(sni) = sni else { return false };
    let host = request.uri().host().or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok())).map(
        |host| {
            host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h)
        },
    );
    host.is_some_and(|host| !host.trim_end_matches('.').eq_ignore_ascii_case(sni.trim_end_matches('.')))
}

/// How an HTTP connection ended: clients dropping or resetting a connection
/// between requests is how HTTP connections normally end.
fn http_end(served: Result<(), hyper::Error>) -> End {
    let Err(error) = served else {
        return End::Closed;
    };
    let io_kind = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    match io_kind {
        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => End::ClientReset,
        Some(std::io::ErrorKind::UnexpectedEof) => End::Closed,
        _ if error.is_incomplete_message() => End::Closed,
        _ => End::Failed(HandlerError::Other(format!("http: {error}"))),
    }
}

impl Settings {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into());
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match resolve(&self.root, request.uri().path(), &self.default_file).await {
            Some(file) => match ServeFile::new(file).oneshot(request).await {
                Ok(response) => response.map(|body| body.map_err(std::io::Error::other).boxed_unsync()),
                Err(never) => match never {},
            },
            None => self.not_found().await,
        }
    }

    async fn not_found(&self) -> Response<Body> {
        match &self.not_found {
            NotFound::Message(message) => text_response(StatusCode::NOT_FOUND, message.clone()),
            NotFound::File(path) => match tokio::fs::read(path).await {
                Ok(contents) => {
                    let mime = mime_guess::from_path(path).first_or_octet_stream();
                    let mut response = full_response(StatusCode::NOT_FOUND, contents.into());
                    if let Ok(value) = header::HeaderValue::from_str(mime.as_ref()) {
                        response.headers_mut().insert(header::CONTENT_TYPE, value);
                    }
                    response
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read notFoundFile");
                    text_response(StatusCode::NOT_FOUND, "404 page not found\n".into())
                }
            },
        }
    }
}

fn full_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response
}

fn text_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = full_response(status, body.into());
    let text = header::HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, text);
    response
}

/// Cleans a percent-encoded URL path into relative path segments, the way
/// a rooted path is cleaned: `.` and empty segments vanish, `..` removes the
/// previous segment and never climbs above the root. `None` for paths that
/// hold a NUL byte or a `/` encoded inside a segment.
pub(crate) fn clean_segments(url_path: &str) -> Option<Vec<Vec<u8>>> {
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for raw in url_path.split('/') {
        let segment: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        if segment.contains(&0) || segment.contains(&b'/') {
            return None;
        }
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    Some(segments)
}

/// Maps a request path to a regular file under `root` (canonical), or
/// `None`. Folders resolve to their `default_file`.
pub(crate) async fn resolve(root: &Path, url_path: &str, default_file: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for segment in clean_segments(url_path)? {
        path.push(OsStr::from_bytes(&segment));
    }
    let mut canonical = tokio::fs::canonicalize(&path).await.ok()?;
    if tokio::fs::metadata(&canonical).await.ok()?.is_dir() {
        if default_file.is_empty() {
            return None;
        }
        canonical = tokio::fs::canonicalize(canonical.join(default_file)).await.ok()?;
    }
    let inside = canonical.starts_with(root);
    let regular = tokio::fs::metadata(&canonical).await.ok()?.is_file();
    (inside && regular).then_some(canonical)
}

#[cfg(test)]
mod tests;
