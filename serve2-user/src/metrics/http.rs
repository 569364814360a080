//! The scrape endpoint: `GET /metrics` answers the exposition, anything
//! else 404. It runs on its own task, apart from the connection workers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{KernelCounterSource, Metrics};
use crate::accept::{Backoff, is_per_connection};
use crate::config::Config;
use crate::daemon::RunError;

/// How long a scraper may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The running endpoint and the metrics it serves; dropping it stops it.
#[derive(Debug)]
pub struct Endpoint {
    metrics: Arc<Metrics>,
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// The metrics, to instrument protocol sets with.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the endpoint when the configuration has `metrics`, with the kernel
/// steering counters from `kernel` and the UDP series of `udp` if given. Must run inside a Tokio
/// runtime; the endpoint is served on it.
pub fn start(
    config: &Config,
    kernel: Option<KernelCounterSource>,
    udp: Option<crate::udp::UdpServer>,
) -> Result<Option<Endpoint>, RunError> {
    let Some(address) = config.metrics else { return Ok(None) };
    let bind_error = |source| RunError::Bind { address: format!("{address} (metrics)"), source };
    let listener = crate::listener::bind(&address).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let mut metrics = Metrics::new();
    if let Some(kernel) = kernel {
        metrics = metrics.with_kernel_counters(kernel);
    }
    if let Some(udp) = udp {
        metrics = metrics.with_udp(udp);
    }
    let metrics = Arc::new(metrics);
    tracing::info!(%local, "serving metrics at /metrics");
    let task = tokio::spawn(serve(listener, metrics.clone()));
    Ok(Some(Endpoint { metrics, address: local, task }))
}

/// Answers scrapes on `listener` until the task is aborted (which also
/// ends the connections it serves).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let mut backoff = Backoff::new("metrics");
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                let metrics = metrics.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| respond(metrics.clone(), request));
                    let served = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "metrics: scrape connection failed");
                    }
                });
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => backoff.wait(&e).await,
        }
    }
}

async fn respond(metrics: Arc<Metrics>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        return Ok(plain(StatusCode::NOT_FOUND, "not found: GET /metrics\n".into()));
    }
    Ok(match metrics.encode() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(super::CONTENT_TYPE));
            response
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the metrics failed: {e}\n")),
    })
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
