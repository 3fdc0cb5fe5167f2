//! The exporter's HTTP server (hyper 1.x): `/metrics` (the telemetry path), `/` (the verdicts
//! first, then the polling table), `/status` (the verdicts as JSON, [`crate::verdict::status`]),
//! `/-/healthy`, `/-/ready`.
//!
//! It serves bytes the poller rendered; a scrape never calls Honcho, so its cost does not grow
//! with Honcho's queue beyond copying those bytes and rendering the small scrape-time tail
//! (ages, process metrics). Limits keep a flood of scrapes from starving the poll loop:
//! concurrent connections and requests are capped (503 past the cap), headers must arrive in
//! time and fit in 16 KiB, and each response has a time budget. The caller binds the listener
//! and owns shutdown (tests bind `127.0.0.1:0`). The context is read per connection (TLS) and
//! per request (everything else) from a [`SharedContext`], so that a reload (SIGHUP) replaces
//! it without closing the listener: no scrape fails across a reload.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::exposition;
use crate::publication::{self, SharedPublished};
use crate::web_config::{AuthDecision, WebConfig};

/// Connections held open at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 512;

type Body = BoxBody<Bytes, Infallible>;

/// What the server needs, shared by every connection.
pub struct ServerContext {
    /// The poller's publication.
    pub published: SharedPublished,
    /// The metrics path (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// TLS and basic auth, if configured.
    pub web_config: Option<Arc<WebConfig>>,
    /// Requests handled at once (`web.max_concurrent_requests`).
    pub requests: Arc<Semaphore>,
    /// Budget of one response.
    pub request_timeout: Duration,
    /// What the exporter reads (kind, address), shown on the landing page (no credentials in
    /// it): Honcho's API URL or its database URL.
    pub upstream: (&'static str, String),
}

/// The [`ServerContext`] every server of the exporter reads, replaceable while they serve.
#[derive(Clone)]
pub struct SharedContext(Arc<RwLock<Arc<ServerContext>>>);

impl SharedContext {
    /// A handle holding `context`.
    pub fn new(context: ServerContext) -> Self {
        SharedContext(Arc::new(RwLock::new(Arc::new(context))))
    }

    /// The context in force now.
    pub fn current(&self) -> Arc<ServerContext> {
        self.0
            .read()
            .expect("the server context lock is never poisoned: nothing panics while holding it")
            .clone()
    }

    /// Puts `context` in force for new connections and requests.
    pub fn replace(&self, context: ServerContext) {
        *self
            .0
            .write()
            .expect("the server context lock is never poisoned: nothing panics while holding it") =
            Arc::new(context);
    }
}

/// Serves `listener` until `shutdown` resolves, then lets in-flight requests finish (bounded).
pub async fn serve(
    listener: TcpListener,
    shared: SharedContext,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Responses go out as two frames (cached head, scrape-time tail): without TCP_NODELAY,
        // Nagle's algorithm meets the client's delayed ACK and small scrapes wait ~40 ms.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        serve_connection(stream, peer, permit, &shared, &graceful);
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::debug!("connections still open after 5 s; closing them");
        }
    }
    Ok(())
}

/// Serves one accepted connection on its own task (TLS first, if configured), holding `permit`
/// until it ends.
fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    shared: &SharedContext,
    graceful: &GracefulShutdown,
) {
    let context = shared.current();
    let tls = context
        .web_config
        .as_ref()
        .and_then(|config| config.tls_acceptor());
    // `web.request_timeout` covers the headers too: a client trickling its request
    // (slowloris) or stalling a TLS handshake is cut off after it.
    let header_timeout = context.request_timeout;
    let per_request = shared.clone();
    let service = hyper::service::service_fn(move |request| {
        let context = per_request.current();
        async move { Ok::<_, Infallible>(handle(&context, request).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(16 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(32);
    match tls {
        None => {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let watched = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = watched.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                drop(permit);
            });
        }
        Some(acceptor) => {
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls_stream =
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => tls_stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let connection = builder
                    .serve_connection(TokioIo::new(tls_stream), service)
                    .into_owned();
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

async fn handle(context: &ServerContext, request: Request<Incoming>) -> Response<Body> {
    let Ok(_permit) = context.requests.try_acquire() else {
        let mut response = text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many concurrent requests\n",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let mut response =
        match tokio::time::timeout(context.request_timeout, route(context, &request)).await {
            Ok(response) => response,
            Err(_) => text_response(StatusCode::SERVICE_UNAVAILABLE, "response took too long\n"),
        };
    if let Some(config) = &context.web_config {
        for (name, value) in config.extra_headers() {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if request.method() == Method::HEAD {
        *response.body_mut() = empty();
    }
    response
}

async fn route(context: &ServerContext, request: &Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    let is_probe = path == "/-/healthy" || path == "/-/ready";
    if !is_probe
        && let Some(config) = &context.web_config
        && config
            .authorize_async(request.headers().get(header::AUTHORIZATION))
            .await
            == AuthDecision::Unauthorized
    {
        let mut response = text_response(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(crate::web_config::WWW_AUTHENTICATE),
        );
        return response;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == context.telemetry_path {
        return metrics(context, request);
    }
    match path {
        "/" => landing(context),
        "/status" => status(context),
        "/-/healthy" => text_response(StatusCode::OK, "Healthy\n"),
        "/-/ready" => {
            if publication::current(&context.published).ready {
                text_response(StatusCode::OK, "Ready\n")
            } else {
                text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not ready: the first poll of Honcho has not completed\n",
                )
            }
        }
        _ => text_response(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

fn metrics(context: &ServerContext, request: &Request<Incoming>) -> Response<Body> {
    let header_text = |name| {
        request
            .headers()
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    let format = exposition::negotiate(header_text(header::ACCEPT));
    let gzip = exposition::accepts_gzip(header_text(header::ACCEPT_ENCODING));
    let published = publication::current(&context.published);
    let chunks = published.body(format, gzip, publication::unix_now());
    let length = chunks.length;
    let body = StreamBody::new(stream::iter(
        chunks
            .into_iter()
            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))),
    ));
    let mut response = Response::new(BodyExt::boxed(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// `GET /status`: the verdicts as JSON (schema `honcho_exporter.status/v1`).
fn status(context: &ServerContext) -> Response<Body> {
    let report = publication::current(&context.published).verdicts(publication::unix_now());
    let mut response = Response::new(full(crate::verdict::status::to_json(&report)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// How often the landing page reloads itself: the poll interval, within 1–60 s.
fn refresh_seconds(interval: Duration) -> u64 {
    interval.as_secs_f64().ceil().clamp(1.0, 60.0) as u64
}

/// `GET /`: the verdicts (worst first), then the polling table; reloads itself every poll
/// interval, no JavaScript.
fn landing(context: &ServerContext) -> Response<Body> {
    let published = publication::current(&context.published);
    let now = publication::unix_now();
    let snapshot = &published.snapshot(now);
    let report = published.verdicts(now);
    let mut html = String::with_capacity(8192);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{}\">\
         <title>Honcho Exporter: {}</title>\n<style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;\
         padding:.3em .6em;text-align:left}}.down{{color:#b00}}{}</style></head><body>\n\
         <h1>Honcho Exporter</h1>\n",
        refresh_seconds(snapshot.exporter.poll_interval),
        report.worst().as_str(),
        crate::verdict::page::STYLE,
    );
    let _ = write!(
        html,
        "<p>Version {} ({}). Polling {} <code>{}</code> every {:?}; ",
        escape_html(crate::VERSION),
        escape_html(crate::REVISION),
        escape_html(context.upstream.0),
        escape_html(&context.upstream.1),
        snapshot.exporter.poll_interval
    );
    match (&snapshot.exporter.postgres, snapshot.exporter.generation) {
        (Some(postgres), _) => match &postgres.schema_revision {
            Some(revision) => {
                let _ = write!(
                    html,
                    "schema revision <b>{}</b> (Honcho {}).",
                    escape_html(revision),
                    postgres.honcho_version.unwrap_or("unknown")
                );
            }
            None => html.push_str("schema not checked yet."),
        },
        (None, Some(generation)) => {
            let _ = write!(html, "API generation <b>{}</b>.", generation.as_str());
        }
        (None, None) => html.push_str("API generation not known yet."),
    }
    let _ = write!(
        html,
        "</p>\n<p>The numbers: <a href=\"{0}\">{0}</a> · <a href=\"/status\">/status</a> (JSON) · \
         <a href=\"/-/healthy\">/-/healthy</a> · <a href=\"/-/ready\">/-/ready</a></p>\n",
        escape_html(&context.telemetry_path)
    );
    crate::verdict::page::write_section(&report, &mut html);
    html.push_str("<h2>Polling</h2>\n");
    polling_table(snapshot, now, &mut html);
    html.push_str("</body></html>\n");
    let mut response = Response::new(full(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The per-workspace polling health and counts.
fn polling_table(snapshot: &crate::snapshot::Snapshot, now: f64, html: &mut String) {
    if let Some(discovery) = &snapshot.exporter.discovery
        && !discovery.up
    {
        html.push_str("<p class=\"down\">Workspace discovery is failing (see the log and <code>honcho_exporter_poll_errors_total</code>).</p>\n");
    }
    html.push_str("<table id=\"polling\"><tr><th>workspace</th><th>status</th><th>work units</th><th>pending items</th><th>in progress</th><th>last success</th></tr>\n");
    // The database source reads every workspace in one pass: its health is the workspace's.
    let database = snapshot
        .exporter
        .postgres
        .as_ref()
        .map(|stats| stats.health);
    for (name, workspace) in &snapshot.workspaces {
        let recorded = |endpoint| match database {
            Some(health) => Some(health),
            None => workspace.health.get(&endpoint).copied(),
        };
        let health = |endpoint| match recorded(endpoint) {
            Some(health) if health.up => "up".to_string(),
            Some(_) => "<span class=\"down\">down</span>".to_string(),
            None => "–".to_string(),
        };
        let last_success = match database {
            // The time this workspace's numbers were read.
            Some(_) => workspace.last_complete_walk.map(|(at, _)| at),
            None => workspace
                .health
                .values()
                .filter_map(|health| health.last_success)
                .fold(None, |latest: Option<f64>, at| {
                    Some(latest.map_or(at, |l| l.max(at)))
                }),
        };
        let (pending, in_progress) = workspace
            .status
            .as_ref()
            .map(|status| {
                (
                    status.counts.pending.to_string(),
                    status.counts.in_progress.to_string(),
                )
            })
            .unwrap_or(("–".into(), "–".into()));
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(name),
            health(crate::honcho::Endpoint::Status),
            health(crate::honcho::Endpoint::WorkUnits),
            pending,
            in_progress,
            last_success.map_or("never".to_string(), |at| format!(
                "{:.0} s ago",
                (now - at).max(0.0)
            )),
        );
    }
    html.push_str("</table>\n");
}

use crate::verdict::page::escape_html;

fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(body.into()))
}

fn empty() -> Body {
    full(Bytes::new())
}

fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_page_escapes_workspace_names() {
        assert_eq!(
            escape_html("<b>\"x\"&'"),
            "&lt;b&gt;&quot;x&quot;&amp;&#39;"
        );
    }
}
