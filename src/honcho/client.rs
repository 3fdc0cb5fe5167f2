//! The Honcho API client and its one builder: [`Client::from_settings`] applies the in-flight
//! cap (`poll.concurrency`), the rate bound, the token, the CA file and the request budget
//! (`poll.timeout`). Also URL building and the request counts by endpoint and status code. It
//! sends nothing itself: the calls (`calls`, `walk`) go through `retry` and `attempt`, which
//! build on this room, never the other way round; it keeps no queue data between calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use super::rate_limit::RateLimiter;
use super::retry_after::RetryAfterHold;
use super::token::{TokenFileError, TokenProvider};
use super::{Endpoint, RequestCounts};
use crate::config::{HonchoSettings, Settings};
use crate::tls_roots::{CaFileError, CaRule};

/// A Honcho API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<ClientInner>,
}

/// What every clone of one client shares.
pub(super) struct ClientInner {
    pub(super) http: reqwest::Client,
    pub(super) base: Url,
    pub(super) token: Option<TokenProvider>,
    pub(super) max_response_bytes: usize,
    pub(super) retries: u32,
    pub(super) initial_backoff: Duration,
    pub(super) max_backoff: Duration,
    /// Bounds one logical request, retries included (`poll.timeout`).
    pub(super) request_budget: Duration,
    pub(super) rate: RateLimiter,
    /// Requests in flight at once, across every workspace and endpoint (`poll.concurrency`):
    /// FIFO, so a long walk's pages queue behind the small workspaces' requests.
    pub(super) in_flight: tokio::sync::Semaphore,
    /// Set by a 429 or 5xx with `Retry-After`: no request leaves before it, in any cycle.
    pub(super) retry_after: RetryAfterHold,
    /// Requests by endpoint and status code (`None`: no response), turned into
    /// [`RequestCounts`] once per cycle; counting allocates nothing per request.
    pub(super) requests: Mutex<BTreeMap<(Endpoint, Option<u16>), u64>>,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The CA file could not be read or holds no certificate.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// The token file could not be read.
    #[error(transparent)]
    TokenFile(#[from] TokenFileError),
    /// TLS or HTTP client setup failed.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl Client {
    /// The one way to build a client: for `settings.honcho`, with a request budget of
    /// `poll.timeout` (one logical request, retries included) and at most `poll.concurrency`
    /// requests in flight to Honcho at once (a logical request holds its slot through its
    /// retries, so the cap bounds Honcho's load). Start and reload both build through here, so
    /// a reload keeps the cap.
    pub fn from_settings(settings: &Settings) -> Result<Self, ClientBuildError> {
        Self::build(
            &settings.honcho,
            settings.poll.timeout,
            settings.poll.concurrency,
        )
    }

    fn build(
        settings: &HonchoSettings,
        request_budget: Duration,
        in_flight_cap: usize,
    ) -> Result<Self, ClientBuildError> {
        let http = http_client(settings, request_budget)?;
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
                in_flight: tokio::sync::Semaphore::new(
                    in_flight_cap.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
                ),
                retry_after: RetryAfterHold::default(),
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

    pub(super) fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
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

    /// Counts one request; `code` is the HTTP status, `None` when no response came.
    pub(super) fn count(&self, endpoint: Endpoint, code: Option<u16>) {
        let mut requests = self
            .inner
            .requests
            .lock()
            .expect("request counter lock is never poisoned: no panics while held");
        *requests.entry((endpoint, code)).or_insert(0) += 1;
    }
}

/// The HTTP client: rustls with `ring`, the system roots plus `honcho.ca_file`, h2 or
/// HTTP/1.1, a connect timeout within the request budget.
fn http_client(
    settings: &HonchoSettings,
    request_budget: Duration,
) -> Result<reqwest::Client, ClientBuildError> {
    crate::install_crypto_provider();
    let roots = crate::tls_roots::root_store(
        "honcho.ca_file",
        settings.ca_file.as_deref(),
        CaRule::AddToSystemRoots,
    )?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientBuildError::Setup(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(request_budget.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("honcho_exporter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ClientBuildError::Setup(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_takes_its_in_flight_cap_from_poll_concurrency() {
        let mut settings = Settings::with_url("http://127.0.0.1:9".parse().expect("test URL"));
        settings.poll.concurrency = 3;
        let client = Client::from_settings(&settings).expect("client builds");
        assert_eq!(client.inner.in_flight.available_permits(), 3);
    }

    #[test]
    fn an_emptied_ca_file_is_an_error_naming_honcho_ca_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("ca.crt");
        std::fs::write(&path, "").expect("write CA file");
        let mut settings = Settings::with_url("https://127.0.0.1:9".parse().expect("test URL"));
        settings.honcho.ca_file = Some(path.clone());
        let error = Client::from_settings(&settings)
            .err()
            .expect("an empty CA file");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot use honcho.ca_file {}: no PEM certificate in it",
                path.display()
            )
        );
    }
}
