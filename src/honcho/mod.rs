//! The HTTP client for Honcho's queue API, all three generations (see `shared/honcho-api.md`).
//!
//! Owns: building requests (paths per API version, the bearer token, the verbatim cursor),
//! retries with capped exponential backoff + jitter honouring `Retry-After` (429 and 5xx, held
//! across calls), a bound on the
//! request rate, the response size cap, and counting requests per endpoint and status code.
//! It does not aggregate (that is [`crate::snapshot`]) and keeps no queue data between calls:
//! the work-units walk hands each page to the caller and drops it.

mod error;
pub mod types;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::RngExt;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use url::Url;

pub use error::UpstreamError;
use types::{QueueStatus, WorkUnitsPage, WorkspacePage};

use crate::config::{HonchoSettings, Secret, TokenSource};

/// The URL prefix generation: `/v2` (Honcho 2.x, generation A) or `/v3` (B and C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiVersion {
    /// `/v2/workspaces/{id}/deriver/status`, `POST /v2/workspaces/list`.
    V2,
    /// `/v3/workspaces/{id}/queue/status`, `POST /v3/workspaces/list`, work-units.
    V3,
}

pub use crate::upstream::Endpoint;

/// Filters of a queue/status call (a configured scope). Empty = unfiltered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFilter {
    /// `observer_id` (matches dream rows only on 3.x).
    pub observer_id: Option<String>,
    /// `sender_id` (the observed peer).
    pub sender_id: Option<String>,
    /// `session_id`: a session NAME.
    pub session_id: Option<String>,
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkOutcome {
    /// Pages fetched.
    pub pages: u32,
    /// True when the page cap stopped the walk before `next_page` was null.
    pub truncated: bool,
}

tokio::task_local! {
    /// Time the current job held in-flight slots (Honcho busy time on its behalf).
    static JOB_BUSY: std::cell::Cell<Duration>;
}

/// Adds the time since its start to the current job's busy time when dropped (an attempt cut
/// off by the request budget counts too).
struct BusyGuard(Instant);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let elapsed = self.0.elapsed();
        let _ = JOB_BUSY.try_with(|busy| busy.set(busy.get() + elapsed));
    }
}

/// Runs `job` and returns its output with the time its requests' attempts took: how long Honcho
/// worked for it (waiting for a slot, the rate bound, `Retry-After` or a backoff not counted).
pub async fn measure_busy<F: std::future::Future>(job: F) -> (F::Output, Duration) {
    JOB_BUSY
        .scope(std::cell::Cell::new(Duration::ZERO), async move {
            let output = job.await;
            (output, JOB_BUSY.with(std::cell::Cell::get))
        })
        .await
}

/// Counts of upstream requests by endpoint and status code (`error` when no response came).
pub type RequestCounts = BTreeMap<(Endpoint, String), u64>;

/// A Honcho API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    base: Url,
    token: Option<TokenProvider>,
    max_response_bytes: usize,
    retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    request_budget: Duration,
    rate: RateLimiter,
    /// Requests in flight at once, across every workspace and endpoint (`poll.concurrency`):
    /// FIFO, so a long walk's pages queue behind the small workspaces' requests.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Set by a 429 or 5xx with `Retry-After`: no request leaves before this instant, in any
    /// cycle; with the status that asked for it (reported by the requests not sent).
    not_before: Mutex<Option<(Instant, u16)>>,
    /// Requests by endpoint and status code (`None`: no response), turned into
    /// [`RequestCounts`] once per cycle; counting allocates nothing per request.
    requests: Mutex<BTreeMap<(Endpoint, Option<u16>), u64>>,
}

/// The longest `Retry-After` honoured: a hostile or broken value (an HTTP date years ahead)
/// must not silence the exporter for longer than this.
const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use honcho.ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The token file could not be read.
    #[error("cannot read the Honcho token file {path}: {error}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, not a `source()`: a full chain would repeat it).
        error: std::io::Error,
    },
    /// TLS or HTTP client setup failed.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl Client {
    /// Builds a client for `settings`; `request_budget` bounds one logical request, retries
    /// included (`poll.timeout`). No cap on requests in flight beyond the caller's own.
    pub fn new(
        settings: &HonchoSettings,
        request_budget: Duration,
    ) -> Result<Self, ClientBuildError> {
        Self::with_in_flight_cap(
            settings,
            request_budget,
            tokio::sync::Semaphore::MAX_PERMITS,
        )
    }

    /// Like [`Client::new`], with at most `cap` requests in flight to Honcho at once (a logical
    /// request holds its slot through its retries, so the cap bounds Honcho's load).
    pub fn with_in_flight_cap(
        settings: &HonchoSettings,
        request_budget: Duration,
        cap: usize,
    ) -> Result<Self, ClientBuildError> {
        crate::install_crypto_provider();
        let tls = tls_config(settings.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(request_budget.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("honcho_exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientBuildError::Setup(error.to_string()))?;
        let token = match &settings.token {
            None => None,
            Some(source) => Some(TokenProvider::new(source.clone())?),
        };
        Ok(Client {
            inner: Arc::new(ClientInner {
                http,
                base: settings.url.clone(),
                token,
                max_response_bytes: settings.max_response_bytes,
                retries: settings.retries,
                initial_backoff: settings.retry_initial_backoff,
                max_backoff: settings.retry_max_backoff,
                request_budget,
                rate: RateLimiter::new(settings.max_requests_per_second),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    cap.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
                )),
                not_before: Mutex::new(None),
                requests: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// Requests sent so far, by endpoint and status code.
    pub fn request_counts(&self) -> RequestCounts {
        self.inner
            .requests
            .lock()
            .expect("request counter lock is never poisoned: no panics while held")
            .iter()
            .map(|(&(endpoint, code), &count)| {
                let code = code.map_or_else(|| "error".to_string(), |code| code.to_string());
                ((endpoint, code), count)
            })
            .collect()
    }

    /// Changes of the token file that were not used (the previous token stayed in use), by
    /// reason (`unreadable`, `empty`, `invalid`); `None` when the token is not from a file.
    pub fn token_reload_errors(&self) -> Option<BTreeMap<&'static str, u64>> {
        self.inner
            .token
            .as_ref()
            .and_then(TokenProvider::reload_errors)
    }

    /// All workspace names, following every page of `POST /v{2,3}/workspaces/list`.
    pub async fn list_workspaces(&self, version: ApiVersion) -> Result<Vec<String>, UpstreamError> {
        const PAGE_SIZE: u64 = 100;
        const MAX_PAGES: u64 = 10_000;
        let mut names = Vec::new();
        let mut page = 1;
        loop {
            let url = self.url(
                &[version_segment(version), "workspaces", "list"],
                &[("page", page.to_string()), ("size", PAGE_SIZE.to_string())],
            );
            let body = self
                .send(Endpoint::Discovery, Method::PostEmptyJson, url)
                .await?;
            let parsed: WorkspacePage = decode(&body)?;
            let returned = parsed.items.len();
            names.extend(parsed.items.into_iter().map(|item| item.id));
            if returned == 0 || page >= parsed.pages || page >= MAX_PAGES {
                break;
            }
            page += 1;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// One queue/status call (`deriver/status` on `/v2`).
    pub async fn fetch_status(
        &self,
        version: ApiVersion,
        workspace: &str,
        filter: &StatusFilter,
        endpoint: Endpoint,
    ) -> Result<QueueStatus, UpstreamError> {
        let path: [&str; 5] = match version {
            ApiVersion::V2 => ["v2", "workspaces", workspace, "deriver", "status"],
            ApiVersion::V3 => ["v3", "workspaces", workspace, "queue", "status"],
        };
        let mut query = Vec::new();
        for (name, value) in [
            ("observer_id", &filter.observer_id),
            ("sender_id", &filter.sender_id),
            ("session_id", &filter.session_id),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        let url = self.url(&path, &query);
        let body = self.send(endpoint, Method::Get, url).await?;
        decode(&body)
    }

    /// Walks `queue/work-units` of `workspace`, handing each page to `on_page` and keeping
    /// nothing. Follows `next_page` verbatim; stops at `max_pages` (truncated) and fails on a
    /// repeated cursor or an empty page that still points further.
    pub async fn walk_work_units<F>(
        &self,
        workspace: &str,
        page_size: u32,
        max_pages: u32,
        mut on_page: F,
    ) -> Result<WalkOutcome, UpstreamError>
    where
        F: FnMut(&WorkUnitsPage<'_>),
    {
        let mut cursor: Option<String> = None;
        let mut seen_cursors: HashSet<String> = HashSet::new();
        let mut pages = 0;
        // The path is built (and percent-encoded) once per walk; each page only sets its query.
        let first_page = self.url(
            &["v3", "workspaces", workspace, "queue", "work-units"],
            &[("size", page_size.to_string())],
        );
        let mut query = String::new();
        loop {
            if pages >= max_pages {
                return Ok(WalkOutcome {
                    pages,
                    truncated: true,
                });
            }
            let mut url = first_page.clone();
            if let Some(cursor) = &cursor {
                // The cursor is already percent-encoded: append it verbatim.
                query.clear();
                let _ = write!(query, "size={page_size}&cursor={cursor}");
                url.set_query(Some(&query));
            }
            let body = self.send(Endpoint::WorkUnits, Method::Get, url).await?;
            pages += 1;
            let page: WorkUnitsPage<'_> = decode(&body)?;
            on_page(&page);
            match page.next_page {
                None => {
                    return Ok(WalkOutcome {
                        pages,
                        truncated: false,
                    });
                }
                Some(next) => {
                    if page.items.is_empty() || !seen_cursors.insert(next.to_string()) {
                        return Err(UpstreamError::CursorLoop { pages });
                    }
                    cursor = Some(next.into_owned());
                }
            }
        }
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("honcho.url is validated to be an http(s) URL, which has a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        if query.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut()
                .clear()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends one logical request holding one in-flight slot; each attempt's time counts as the
    /// calling job's busy time (see [`measure_busy`]).
    async fn send(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Bytes, UpstreamError> {
        let _slot = self
            .inner
            .in_flight
            .acquire()
            .await
            .expect("the in-flight semaphore is never closed");
        self.send_with_retries(endpoint, method, url).await
    }

    /// Sends one logical request with retries inside the request budget; returns the body.
    async fn send_with_retries(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Bytes, UpstreamError> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.request_budget;
        let mut attempt = 0;
        loop {
            if let Some((wait, status)) = self.retry_after_wait() {
                if Instant::now() + wait >= deadline {
                    // Honcho asked not to come back yet: fail without sending anything.
                    return Err(UpstreamError::Status {
                        status,
                        detail: format!("not sent: honouring Retry-After for {wait:?} more"),
                        retry_after: Some(wait),
                    });
                }
                tokio::time::sleep(wait).await;
            }
            if !inner.rate.acquire_before(deadline).await {
                return Err(UpstreamError::RateLimited(inner.request_budget));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(UpstreamError::Timeout(inner.request_budget));
            }
            let result =
                match tokio::time::timeout(remaining, self.attempt(endpoint, method, url.clone()))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        self.count(endpoint, None);
                        Err(UpstreamError::Timeout(inner.request_budget))
                    }
                };
            let error = match result {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            if let UpstreamError::Status {
                status,
                retry_after: Some(retry_after),
                ..
            } = &error
                && (*status == 429 || *status >= 500)
            {
                self.hold_off(*retry_after, *status);
            }
            if !error.is_retryable() || attempt >= inner.retries {
                return Err(error);
            }
            let delay = match &error {
                UpstreamError::Status {
                    retry_after: Some(retry_after),
                    ..
                } => {
                    if *retry_after > inner.max_backoff {
                        // Honour the server: do not come back sooner than it asked.
                        return Err(error);
                    }
                    *retry_after
                }
                _ => backoff_delay(attempt, inner.initial_backoff, inner.max_backoff),
            };
            if Instant::now() + delay >= deadline {
                return Err(error);
            }
            tracing::debug!(endpoint = endpoint.as_str(), attempt, ?delay, %error, "retrying Honcho request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Bytes, UpstreamError> {
        // Honcho works from here until the answer is read (or the attempt is abandoned);
        // waits for the rate bound, Retry-After or a backoff are not its work.
        let _busy = BusyGuard(Instant::now());
        let inner = &self.inner;
        let mut request = match method {
            Method::Get => inner.http.get(url),
            Method::PostEmptyJson => inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body("{}"),
        };
        if let Some(token) = &inner.token {
            request = request.header(AUTHORIZATION, token.header_value());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.count(endpoint, None);
                return Err(classify_transport_error(&error));
            }
        };
        let status = response.status();
        self.count(endpoint, Some(status.as_u16()));
        if let Some(length) = response.content_length()
            && length > inner.max_response_bytes as u64
        {
            return Err(UpstreamError::TooLarge(inner.max_response_bytes));
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let expected = response.content_length().map_or(0, |length| {
            usize::try_from(length)
                .unwrap_or(0)
                .min(inner.max_response_bytes)
        });
        let mut body = BodyBuffer::default();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > inner.max_response_bytes {
                        return Err(UpstreamError::TooLarge(inner.max_response_bytes));
                    }
                    body.push(chunk, expected);
                }
                Ok(None) => break,
                Err(error) => return Err(UpstreamError::Body(error_chain(&error))),
            }
        }
        let body = body.into_bytes();
        if status.is_success() {
            Ok(body)
        } else {
            Err(UpstreamError::Status {
                status: status.as_u16(),
                detail: error_detail(&body),
                retry_after,
            })
        }
    }

    /// How long to wait before the next request may leave, if a `Retry-After` is pending, and
    /// the status that asked for it.
    fn retry_after_wait(&self) -> Option<(Duration, u16)> {
        let not_before = *self
            .inner
            .not_before
            .lock()
            .expect("Retry-After lock is never poisoned: no panics while held");
        not_before
            .map(|(instant, status)| (instant.saturating_duration_since(Instant::now()), status))
            .filter(|(wait, _)| !wait.is_zero())
    }

    /// Remembers the `Retry-After` of a 429 or 5xx (503) (bounded) so that no request leaves
    /// before it, in this poll cycle or the next ones.
    fn hold_off(&self, retry_after: Duration, status: u16) {
        let until = Instant::now() + retry_after.min(MAX_HONOURED_RETRY_AFTER);
        let mut not_before = self
            .inner
            .not_before
            .lock()
            .expect("Retry-After lock is never poisoned: no panics while held");
        *not_before = Some(match *not_before {
            Some((current, current_status)) if current >= until => (current, current_status),
            _ => (until, status),
        });
    }

    /// Counts one request; `code` is the HTTP status, `None` when no response came.
    fn count(&self, endpoint: Endpoint, code: Option<u16>) {
        let mut requests = self
            .inner
            .requests
            .lock()
            .expect("request counter lock is never poisoned: no panics while held");
        *requests.entry((endpoint, code)).or_insert(0) += 1;
    }
}

/// A response body as it arrives. A body that arrives in one chunk (a page read whole from the
/// socket, the usual case on a local network) is kept as that chunk, without a copy; more chunks
/// are joined once into a buffer sized from Content-Length (already checked against the cap), so
/// a page is not copied again while the buffer grows.
#[derive(Default)]
enum BodyBuffer {
    #[default]
    Empty,
    One(Bytes),
    Joined(Vec<u8>),
}

impl BodyBuffer {
    fn len(&self) -> usize {
        match self {
            BodyBuffer::Empty => 0,
            BodyBuffer::One(chunk) => chunk.len(),
            BodyBuffer::Joined(buffer) => buffer.len(),
        }
    }

    /// Appends `chunk`; `expected` is the body's announced length (0 when unknown).
    fn push(&mut self, chunk: Bytes, expected: usize) {
        match self {
            BodyBuffer::Empty => *self = BodyBuffer::One(chunk),
            BodyBuffer::One(first) => {
                let mut buffer = Vec::with_capacity(expected.max(first.len() + chunk.len()));
                buffer.extend_from_slice(first);
                buffer.extend_from_slice(&chunk);
                *self = BodyBuffer::Joined(buffer);
            }
            BodyBuffer::Joined(buffer) => buffer.extend_from_slice(&chunk),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            BodyBuffer::Empty => Bytes::new(),
            BodyBuffer::One(chunk) => chunk,
            BodyBuffer::Joined(buffer) => Bytes::from(buffer),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    /// `POST` with body `{}` (the list endpoints take filters in the body).
    PostEmptyJson,
}

fn version_segment(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V2 => "v2",
        ApiVersion::V3 => "v3",
    }
}

/// Parses a JSON body. The body is checked as UTF-8 once, in one pass, then parsed as `&str`:
/// `serde_json::from_slice` would check every string separately (most of a work-units page is
/// strings, and per-string checks cost ~10 % of a walk's CPU). The check is simdutf8's (SIMD,
/// about a quarter of the instructions of the standard library's); a body it refuses is checked
/// again by the standard library, whose error says where the invalid byte is.
/// Public for the benchmarks, which measure the walk's real decoding path.
pub fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, UpstreamError> {
    let text = match simdutf8::basic::from_utf8(body) {
        Ok(text) => text,
        Err(_) => std::str::from_utf8(body)
            .map_err(|error| UpstreamError::Decode(format!("the body is not UTF-8: {error}")))?,
    };
    serde_json::from_str(text).map_err(|error| UpstreamError::Decode(error.to_string()))
}

/// Exponential backoff with full jitter: a random delay in `[d/2, d]`, `d = initial × 2^attempt`
/// capped at `max`.
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exponential = initial.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = exponential / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// `Retry-After` as delta-seconds or an HTTP date in any of the three formats of RFC 9110
/// (IMF-fixdate, RFC 850, asctime), capped at [`MAX_HONOURED_RETRY_AFTER`]: a number too large
/// for u64 or a date years ahead still means "not now", so it is capped, never ignored.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        value
            .parse::<u64>()
            .map_or(MAX_HONOURED_RETRY_AFTER, Duration::from_secs)
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_HONOURED_RETRY_AFTER))
}

/// Honcho's `{"detail": "..."}` text (strings only; FastAPI's validation lists are summarised),
/// else the start of the body; at most 200 characters.
fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Detail {
        detail: serde_json::Value,
    }
    let text = match serde_json::from_slice::<Detail>(body) {
        Ok(Detail {
            detail: serde_json::Value::String(detail),
        }) => detail,
        Ok(Detail { detail }) => detail.to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.chars().take(200).collect()
}

/// `connect` only when no connection was made (refused, DNS, TLS handshake); a connection that
/// was made and then closed before a complete response (dropped before the headers, or a
/// chunked body cut short) is `body`: Honcho or a proxy in front of it broke mid-answer.
fn classify_transport_error(error: &reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout(Duration::ZERO)
    } else if error.is_connect() {
        UpstreamError::Connect(error_chain(error))
    } else if error.is_body() || error.is_decode() || error.is_request() {
        UpstreamError::Body(error_chain(error))
    } else {
        UpstreamError::Connect(error_chain(error))
    }
}

/// The error and its sources, joined (reqwest hides the useful part in the sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientBuildError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for certificate in native.certs {
        // A broken system certificate must not stop the exporter; the others still count.
        let _ = roots.add(certificate);
    }
    if let Some(path) = ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| ClientBuildError::CaFile {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })?
            .collect::<Result<_, _>>()
            .map_err(|error| ClientBuildError::CaFile {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })?;
        if certificates.is_empty() {
            return Err(ClientBuildError::CaFile {
                path: path.to_path_buf(),
                reason: "no PEM certificate in it".to_string(),
            });
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| ClientBuildError::CaFile {
                    path: path.to_path_buf(),
                    reason: error.to_string(),
                })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientBuildError::Setup(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The bearer token, re-read from its file when the file changes (rotation without restart).
struct TokenProvider {
    source: TokenSource,
    cached: Mutex<CachedToken>,
}

struct CachedToken {
    /// The token file's version last looked at (used or rejected), or `None` while it cannot
    /// be looked at: a version is judged once, so a bad file is logged and counted once, not
    /// at every request.
    version: Option<FileVersion>,
    header: HeaderValue,
    /// Versions of the token file not used, by [`TokenReloadError::reason`].
    rejected: BTreeMap<&'static str, u64>,
}

/// What tells one version of the token file from the next: its mtime and length (a rewrite
/// within one mtime tick still changes the length in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    modified: SystemTime,
    length: u64,
}

/// Why a changed token file was not used (the previous token stays in use).
#[derive(Debug, thiserror::Error)]
enum TokenReloadError {
    /// The file cannot be read (gone, permissions).
    #[error("cannot read it: {0}")]
    Unreadable(std::io::Error),
    /// The file holds nothing but whitespace (truncated, or caught mid-write).
    #[error("it is empty")]
    Empty,
    /// The token holds bytes an HTTP header cannot carry.
    #[error("the token holds characters an HTTP header cannot carry")]
    Invalid,
}

impl TokenReloadError {
    /// Every reason, so the counter starts at 0 for each.
    const REASONS: [&'static str; 3] = ["unreadable", "empty", "invalid"];

    /// The bounded `reason` label value.
    fn reason(&self) -> &'static str {
        match self {
            TokenReloadError::Unreadable(_) => "unreadable",
            TokenReloadError::Empty => "empty",
            TokenReloadError::Invalid => "invalid",
        }
    }
}

impl TokenProvider {
    fn new(source: TokenSource) -> Result<Self, ClientBuildError> {
        let (version, header) = match &source {
            TokenSource::Env(secret) => (None, bearer(secret)),
            TokenSource::File(path) => {
                let (version, secret) =
                    read_token_file(path).map_err(|error| ClientBuildError::TokenFile {
                        path: path.clone(),
                        error,
                    })?;
                (Some(version), bearer(&secret))
            }
        };
        Ok(TokenProvider {
            source,
            cached: Mutex::new(CachedToken {
                version,
                header,
                rejected: TokenReloadError::REASONS
                    .into_iter()
                    .map(|reason| (reason, 0))
                    .collect(),
            }),
        })
    }

    /// The `Authorization` header value; re-reads the token file when it changed. A changed
    /// file that is unreadable, empty or not a valid header value keeps the last good token: it
    /// is logged and counted once per version of the file.
    fn header_value(&self) -> HeaderValue {
        let mut cached = self
            .cached
            .lock()
            .expect("token lock is never poisoned: no panics while held");
        if let TokenSource::File(path) = &self.source {
            match std::fs::metadata(path).map(|meta| file_version(&meta)) {
                Ok(version) if Some(version) == cached.version => {}
                Ok(_) => match load_token(path) {
                    Ok((version, header)) => {
                        tracing::info!(path = %path.display(), "Honcho token file changed; using the new token");
                        cached.version = Some(version);
                        cached.header = header;
                    }
                    Err((version, error)) => {
                        cached.version = version;
                        cached.reject(path, &error);
                    }
                },
                Err(error) => {
                    if cached.version.is_some() {
                        cached.version = None;
                        cached.reject(path, &TokenReloadError::Unreadable(error));
                    }
                }
            }
        }
        cached.header.clone()
    }

    /// Changes of the token file not used, by reason; `None` when the token is not from a file.
    fn reload_errors(&self) -> Option<BTreeMap<&'static str, u64>> {
        match self.source {
            TokenSource::File(_) => Some(
                self.cached
                    .lock()
                    .expect("token lock is never poisoned: no panics while held")
                    .rejected
                    .clone(),
            ),
            TokenSource::Env(_) => None,
        }
    }
}

impl CachedToken {
    fn reject(&mut self, path: &Path, error: &TokenReloadError) {
        *self.rejected.entry(error.reason()).or_insert(0) += 1;
        tracing::warn!(
            path = %path.display(),
            reason = error.reason(),
            %error,
            "the Honcho token file changed but cannot be used; keeping the previous token"
        );
    }
}

fn file_version(meta: &std::fs::Metadata) -> FileVersion {
    FileVersion {
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        length: meta.len(),
    }
}

/// Reads a changed token file into a header value; on error, the version judged (if known).
fn load_token(
    path: &Path,
) -> Result<(FileVersion, HeaderValue), (Option<FileVersion>, TokenReloadError)> {
    let (version, secret) =
        read_token_file(path).map_err(|error| (None, TokenReloadError::Unreadable(error)))?;
    if secret.expose().is_empty() {
        return Err((Some(version), TokenReloadError::Empty));
    }
    let mut header = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
        .map_err(|_| (Some(version), TokenReloadError::Invalid))?;
    header.set_sensitive(true);
    Ok((version, header))
}

fn read_token_file(path: &Path) -> std::io::Result<(FileVersion, Secret)> {
    let version = file_version(&std::fs::metadata(path)?);
    let text = std::fs::read_to_string(path)?;
    Ok((version, Secret::new(text.trim().to_string())))
}

fn bearer(secret: &Secret) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-token-characters"));
    value.set_sensitive(true);
    value
}

/// Spaces request starts at least `1 / max_per_second` apart, across all tasks.
struct RateLimiter {
    interval: Duration,
    next_slot: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    fn new(max_per_second: f64) -> Self {
        let interval = if max_per_second > 0.0 && max_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / max_per_second)
        } else {
            Duration::ZERO
        };
        RateLimiter {
            interval,
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next free slot if it comes before `deadline` and returns true; returns
    /// false at once, without taking a slot, if it does not. A request that could never be
    /// sent in time must not hold a slot: with many workspaces, slots taken by requests that
    /// then time out would leave almost none for the requests that can still be sent.
    async fn acquire_before(&self, deadline: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let wait_until = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            if slot >= deadline {
                return false;
            }
            *next = slot + self.interval;
            slot
        };
        // A free slot is taken without sleeping: `sleep_until` on an instant already passed
        // still waits for the next timer tick (~1 ms), before every request.
        if wait_until > Instant::now() {
            tokio::time::sleep_until(wait_until.into()).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 0..10 {
            let delay = backoff_delay(attempt, initial, max);
            let ceiling = (initial * 2u32.pow(attempt)).min(max);
            assert!(
                delay <= ceiling,
                "attempt {attempt}: {delay:?} > {ceiling:?}"
            );
            assert!(
                delay >= ceiling / 2,
                "attempt {attempt}: {delay:?} < half of {ceiling:?}"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
        assert_eq!(parse_retry_after(""), None);
    }

    #[test]
    fn retry_after_accepts_the_three_http_date_formats_of_rfc_9110() {
        let in_a_minute = chrono::Utc::now() + chrono::TimeDelta::seconds(60);
        for (format, pattern) in [
            ("IMF-fixdate", "%a, %d %b %Y %H:%M:%S GMT"),
            ("RFC 850", "%A, %d-%b-%y %H:%M:%S GMT"),
            ("asctime", "%a %b %e %H:%M:%S %Y"),
        ] {
            let text = in_a_minute.format(pattern).to_string();
            let wait = parse_retry_after(&text)
                .unwrap_or_else(|| panic!("{format} date {text:?} not accepted"));
            assert!(
                wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
                "{format} date {text:?}: {wait:?}"
            );
        }
        // The examples of RFC 9110 section 5.6.7, long past: no wait.
        for past in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(past), Some(Duration::ZERO), "{past}");
        }
    }

    #[test]
    fn retry_after_beyond_the_cap_is_capped_not_ignored() {
        for huge in [
            "99999999999999999999999",
            "18446744073709551615",
            "99999999999",
            "301",
        ] {
            assert_eq!(
                parse_retry_after(huge),
                Some(MAX_HONOURED_RETRY_AFTER),
                "{huge}"
            );
        }
        let next_year = (chrono::Utc::now() + chrono::TimeDelta::days(365))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        assert_eq!(
            parse_retry_after(&next_year),
            Some(MAX_HONOURED_RETRY_AFTER)
        );
    }

    #[tokio::test]
    async fn retry_after_on_503_is_held_across_calls_like_on_429() {
        for status in ["503 Service Unavailable", "429 Too Many Requests"] {
            let (url, mut requests) = fake_honcho(status, "retry-after: 20\r\n").await;
            let settings = crate::config::Settings::with_url(url.parse().expect("test URL"));
            // Default retries; a 2 s request budget, as a 2 s poll interval would have.
            let client = Client::new(&settings.honcho, Duration::from_secs(2)).expect("client");
            let mut sent = 0;
            for cycle in 0..4 {
                let error = status_error(&client).await;
                assert!(
                    error.to_string().contains(&status[..3]),
                    "{status} cycle {cycle}: {error}"
                );
                while requests.try_recv().is_ok() {
                    sent += 1;
                }
            }
            assert_eq!(
                sent, 1,
                "{status}: requests sent in 4 cycles within Retry-After: 20"
            );
        }
    }

    fn client_for(url: &str) -> Client {
        let settings = crate::config::Settings::with_url(url.parse().expect("test URL"));
        let mut honcho = settings.honcho;
        honcho.retries = 0;
        Client::new(&honcho, Duration::from_secs(5)).expect("client builds")
    }

    async fn status_error(client: &Client) -> UpstreamError {
        client
            .fetch_status(
                ApiVersion::V3,
                "w",
                &StatusFilter::default(),
                Endpoint::Status,
            )
            .await
            .expect_err("the fake server never answers")
    }

    #[tokio::test]
    async fn a_refused_connection_is_connect_but_one_closed_mid_answer_is_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let closer = tokio::spawn(async move {
            // Accept, read the request, close without answering.
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buffer = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
        });
        let closed = status_error(&client_for(&format!("http://{address}"))).await;
        assert_eq!(closed.reason(), "body", "{closed}");
        closer.await.expect("closer task");
        // The listener is gone now: nothing listens on the port.
        let refused = status_error(&client_for(&format!("http://{address}"))).await;
        assert_eq!(refused.reason(), "connect", "{refused}");
    }

    #[tokio::test]
    async fn the_rate_limiter_refuses_a_slot_past_the_deadline_without_taking_it() {
        let limiter = RateLimiter::new(10.0);
        let far = Instant::now() + Duration::from_secs(10);
        assert!(limiter.acquire_before(far).await, "the first slot is now");
        // The next slot is 100 ms away: not before a deadline 10 ms away.
        let near = Instant::now() + Duration::from_millis(10);
        assert!(!limiter.acquire_before(near).await);
        assert!(!limiter.acquire_before(near).await);
        // The refusals took nothing: the next slot is still ~100 ms after the first.
        let next = *limiter.next_slot.lock().await;
        assert!(next <= Instant::now() + Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_free_rate_slot_is_taken_without_sleeping() {
        use futures_util::FutureExt;
        let limiter = RateLimiter::new(1.0);
        let far = Instant::now() + Duration::from_secs(10);
        // Ready on the first poll: no timer was waited for.
        assert_eq!(limiter.acquire_before(far).now_or_never(), Some(true));
        // The next slot is a second away: that one does wait.
        assert_eq!(limiter.acquire_before(far).now_or_never(), None);
    }

    /// A fake Honcho on loopback answering every request with `status`, `headers` and an
    /// empty queue/status body; hands back the `Authorization` header of each request and when
    /// it arrived.
    async fn fake_honcho(
        status: &'static str,
        headers: &'static str,
    ) -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<(Instant, Option<String>)>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let authorization = text
                    .lines()
                    .find_map(|line| line.strip_prefix("authorization: "))
                    .map(str::to_string);
                let _ = seen.send((Instant::now(), authorization));
                let body = r#"{"total_work_units":0,"completed_work_units":0,"in_progress_work_units":0,"pending_work_units":0}"#;
                let response = format!(
                    "HTTP/1.1 {status}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        (format!("http://{address}"), requests)
    }

    /// Writes `text` to the token file and moves its mtime on (a rotation the client sees even
    /// within one timestamp tick of the previous write).
    fn write_token(path: &Path, text: &str, step: u64) {
        std::fs::write(path, text).expect("write token file");
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open token file");
        file.set_modified(SystemTime::now() + Duration::from_secs(step))
            .expect("set mtime");
    }

    #[tokio::test]
    async fn an_emptied_token_file_keeps_the_last_good_token() {
        let (url, mut requests) = fake_honcho("200 OK", "").await;
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("token");
        write_token(&path, "token-a\n", 0);
        let settings = crate::config::Settings::with_url(url.parse().expect("test URL"));
        let mut honcho = settings.honcho;
        honcho.token = Some(TokenSource::File(path.clone()));
        let client = Client::new(&honcho, Duration::from_secs(5)).expect("client builds");
        let mut sent_token = async || {
            client
                .fetch_status(
                    ApiVersion::V3,
                    "w",
                    &StatusFilter::default(),
                    Endpoint::Status,
                )
                .await
                .expect("the fake server answers 200");
            requests.recv().await.expect("a request arrived").1
        };
        assert_eq!(sent_token().await.as_deref(), Some("Bearer token-a"));
        for (step, unusable) in [(1, ""), (2, "  \n\t\n")] {
            write_token(&path, unusable, step);
            assert_eq!(
                sent_token().await.as_deref(),
                Some("Bearer token-a"),
                "after the file became {unusable:?}"
            );
            assert_eq!(sent_token().await.as_deref(), Some("Bearer token-a"));
        }
        write_token(&path, "token-b\n", 3);
        assert_eq!(sent_token().await.as_deref(), Some("Bearer token-b"));
        // Each unusable version counted once, however many requests saw it.
        let errors = client
            .token_reload_errors()
            .expect("the token is from a file");
        assert_eq!(
            errors,
            BTreeMap::from([("empty", 2), ("invalid", 0), ("unreadable", 0)])
        );
        std::fs::remove_file(&path).expect("remove token file");
        assert_eq!(sent_token().await.as_deref(), Some("Bearer token-b"));
        assert_eq!(sent_token().await.as_deref(), Some("Bearer token-b"));
        let errors = client
            .token_reload_errors()
            .expect("the token is from a file");
        assert_eq!(errors.get("unreadable"), Some(&1), "{errors:?}");
    }

    #[test]
    fn a_body_in_one_chunk_is_kept_without_a_copy_and_more_chunks_are_joined() {
        let chunk = Bytes::from_static(br#"{"items":[]}"#);
        let mut body = BodyBuffer::default();
        body.push(chunk.clone(), chunk.len());
        assert_eq!(
            body.into_bytes().as_ptr(),
            chunk.as_ptr(),
            "the one chunk is handed on, not copied"
        );
        let mut body = BodyBuffer::default();
        for part in [&br#"{"it"#[..], br#"ems":"#, b"[]}"] {
            body.push(Bytes::copy_from_slice(part), 12);
        }
        assert_eq!(body.len(), 12);
        assert_eq!(&body.into_bytes()[..], br#"{"items":[]}"#);
        assert!(BodyBuffer::default().into_bytes().is_empty());
    }

    #[test]
    fn decode_errors_are_the_standard_librarys_and_serde_jsons() {
        let invalid = b"{\"items\":[],\"total\":1,\"next_page\":\"\xff\"}";
        let error = decode::<WorkUnitsPage<'_>>(invalid).expect_err("not UTF-8");
        assert_eq!(
            error.to_string(),
            "cannot decode Honcho's response: the body is not UTF-8: \
             invalid utf-8 sequence of 1 bytes from index 35"
        );
        // The page's own row reader fails like serde's derived `Vec` would.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Derived<'a> {
            #[serde(borrow)]
            items: Vec<types::WorkUnitRow<'a>>,
            total: u64,
        }
        for body in [
            r#"{"items":{},"total":1}"#,
            r#"{"items":"x","total":1}"#,
            r#"{"items":[1],"total":1}"#,
            r#"{"items":[{"task_type":"dream"}],"total":1}"#,
            r#"{"items":[],"total":1"#,
        ] {
            let ours = decode::<WorkUnitsPage<'_>>(body.as_bytes()).expect_err(body);
            let derived = serde_json::from_str::<Derived<'_>>(body).expect_err(body);
            assert_eq!(
                ours.to_string(),
                format!("cannot decode Honcho's response: {derived}"),
                "{body}"
            );
        }
    }

    #[test]
    fn error_detail_prefers_honchos_detail_string() {
        assert_eq!(error_detail(br#"{"detail":"Invalid JWT"}"#), "Invalid JWT");
        assert!(
            error_detail(br#"{"detail":[{"type":"less_than_equal"}]}"#).contains("less_than_equal")
        );
        assert_eq!(
            error_detail(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
