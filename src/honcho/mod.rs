//! The HTTP client for Honcho's queue API, all three generations (see `shared/honcho-api.md`).
//!
//! Owns: building requests (paths per API version, the bearer token, the verbatim cursor),
//! retries with capped exponential backoff + jitter honouring `Retry-After`, a bound on the
//! request rate, the response size cap, and counting requests per endpoint and status code.
//! It does not aggregate (that is [`crate::snapshot`]) and keeps no queue data between calls:
//! the work-units walk hands each page to the caller and drops it.

mod error;
pub mod types;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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

/// Which kind of upstream call, for the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `workspaces/list`.
    Discovery,
    /// queue/status (or v2 deriver/status) without filters.
    Status,
    /// The queue/work-units walk.
    WorkUnits,
    /// A filtered status poll of a configured scope.
    Scope,
}

impl Endpoint {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Discovery => "discovery",
            Endpoint::Status => "status",
            Endpoint::WorkUnits => "work_units",
            Endpoint::Scope => "scope",
        }
    }
}

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
    /// Set by a 429 with `Retry-After`: no request leaves before this instant, in any cycle.
    not_before: Mutex<Option<Instant>>,
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
    #[error("cannot read the Honcho token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS or HTTP client setup failed.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl Client {
    /// Builds a client for `settings`; `request_budget` bounds one logical request, retries
    /// included (`poll.timeout`).
    pub fn new(
        settings: &HonchoSettings,
        request_budget: Duration,
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
        loop {
            if pages >= max_pages {
                return Ok(WalkOutcome {
                    pages,
                    truncated: true,
                });
            }
            let mut url = self.url(
                &["v3", "workspaces", workspace, "queue", "work-units"],
                &[("size", page_size.to_string())],
            );
            if let Some(cursor) = &cursor {
                // The cursor is already percent-encoded: append it verbatim.
                let query = format!("size={page_size}&cursor={cursor}");
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

    /// Sends one logical request with retries inside the request budget; returns the body.
    async fn send(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Vec<u8>, UpstreamError> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.request_budget;
        let mut attempt = 0;
        loop {
            if let Some(wait) = self.retry_after_wait() {
                if Instant::now() + wait >= deadline {
                    // Honcho asked not to come back yet: fail without sending anything.
                    return Err(UpstreamError::Status {
                        status: 429,
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
                status: 429,
                retry_after: Some(retry_after),
                ..
            } = &error
            {
                self.hold_off(*retry_after);
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
    ) -> Result<Vec<u8>, UpstreamError> {
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
        // Sized once from Content-Length (already checked against the cap), so a page is not
        // copied again while the buffer grows.
        let mut body = Vec::with_capacity(response.content_length().map_or(0, |length| {
            usize::try_from(length)
                .unwrap_or(0)
                .min(inner.max_response_bytes)
        }));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > inner.max_response_bytes {
                        return Err(UpstreamError::TooLarge(inner.max_response_bytes));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return Err(UpstreamError::Body(error_chain(&error))),
            }
        }
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

    /// How long to wait before the next request may leave, if a `Retry-After` is pending.
    fn retry_after_wait(&self) -> Option<Duration> {
        let not_before = *self
            .inner
            .not_before
            .lock()
            .expect("Retry-After lock is never poisoned: no panics while held");
        not_before
            .map(|instant| instant.saturating_duration_since(Instant::now()))
            .filter(|wait| !wait.is_zero())
    }

    /// Remembers a 429's `Retry-After` (bounded) so that no request leaves before it, in this
    /// poll cycle or the next ones.
    fn hold_off(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after.min(MAX_HONOURED_RETRY_AFTER);
        let mut not_before = self
            .inner
            .not_before
            .lock()
            .expect("Retry-After lock is never poisoned: no panics while held");
        *not_before = Some(not_before.map_or(until, |current| current.max(until)));
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
/// strings, and per-string checks cost ~10 % of a walk's CPU).
fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, UpstreamError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| UpstreamError::Decode(format!("the body is not UTF-8: {error}")))?;
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

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let target =
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(date.timestamp()).ok()?);
    Some(
        target
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
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
    modified: Option<SystemTime>,
    header: HeaderValue,
}

impl TokenProvider {
    fn new(source: TokenSource) -> Result<Self, ClientBuildError> {
        let (modified, header) = match &source {
            TokenSource::Env(secret) => (None, bearer(secret)),
            TokenSource::File(path) => {
                let (modified, secret) =
                    read_token_file(path).map_err(|source| ClientBuildError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                (modified, bearer(&secret))
            }
        };
        Ok(TokenProvider {
            source,
            cached: Mutex::new(CachedToken { modified, header }),
        })
    }

    /// The `Authorization` header value; re-reads the token file if its mtime changed. A file
    /// that became unreadable keeps the last good token (and logs).
    fn header_value(&self) -> HeaderValue {
        let mut cached = self
            .cached
            .lock()
            .expect("token lock is never poisoned: no panics while held");
        if let TokenSource::File(path) = &self.source {
            let modified = std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok();
            if modified.is_some() && modified != cached.modified {
                match read_token_file(path) {
                    Ok((modified, secret)) => {
                        tracing::info!(path = %path.display(), "Honcho token file changed; using the new token");
                        *cached = CachedToken {
                            modified,
                            header: bearer(&secret),
                        };
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "cannot re-read the Honcho token file; keeping the previous token");
                    }
                }
            }
        }
        cached.header.clone()
    }
}

fn read_token_file(path: &Path) -> std::io::Result<(Option<SystemTime>, Secret)> {
    let modified = std::fs::metadata(path)?.modified().ok();
    let text = std::fs::read_to_string(path)?;
    Ok((modified, Secret::new(text.trim().to_string())))
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
        tokio::time::sleep_until(wait_until.into()).await;
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
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
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
