//! `--web.config.file`: the web configuration file format of Prometheus' exporter-toolkit
//! (`tls_server_config`, `http_server_config`, `basic_auth_users`), so operators can reuse the
//! files they already write for node_exporter and friends.
//!
//! Owns: loading and validating that file, building the rustls server configuration (ring
//! provider), basic-auth checks against bcrypt hashes with a bounded cache of verified
//! credentials, and the extra response headers. It does not listen, route or build responses:
//! the server calls [`WebConfig::tls_acceptor`], [`WebConfig::authorize`] and
//! [`WebConfig::extra_headers`]. Passwords and hashes are never logged or put into errors.
//!
//! Differences from exporter-toolkit, all reported at load rather than silently changed:
//! - The file is read once at start-up (exporter-toolkit re-reads it per request); restart to
//!   apply changes.
//! - `cipher_suites`, `curve_preferences`, `client_allowed_sans` and `rate_limit` are rejected
//!   with an error: rustls offers only its own safe suites and curves, and silently ignoring a
//!   restriction the operator asked for would be worse than refusing to start. An empty list
//!   is accepted.
//! - `prefer_server_cipher_suites` is accepted and ignored with a warning (rustls always
//!   prefers the server's order).
//! - `client_auth_type` supports `NoClientCert`, `VerifyClientCertIfGiven` and
//!   `RequireAndVerifyClientCert`; the insecure `RequestClientCert` and `RequireAnyClientCert`
//!   (certificate not verified) are rejected. `min_version`/`max_version` support `TLS12` and
//!   `TLS13` (rustls has no TLS 1.0/1.1).
//!
//! Layout: this file parses the top level and holds [`WebConfig`]; `loader.rs` the typed
//! reading of one file's nodes, `http.rs` `http_server_config`, `tls.rs` `tls_server_config`
//! (rustls), `auth.rs` `basic_auth_users` and the credential checks.

mod auth;
mod http;
mod loader;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hyper::header::{HeaderName, HeaderValue};
use tokio_rustls::TlsAcceptor;

use crate::yaml::{self, Node};

use auth::{decoy_hash_for, load_users};
use http::load_http_server_config;
use loader::Loader;
use tls::load_tls_server_config;

/// The `WWW-Authenticate` value sent with a 401, so browsers and curl know to ask for basic
/// credentials.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"honcho_exporter\"";

/// Why a web config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The web config file itself, or a file it names, cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for (`web config file`, `tls_server_config.cert_file`, …).
        what: String,
        /// The path as written.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The web config file is not a YAML mapping.
    #[error("web config file {path} is not valid YAML: {message}")]
    Syntax {
        /// The web config file.
        path: PathBuf,
        /// The YAML parser's message.
        message: String,
    },
    /// A key is unknown, unsupported or has a bad value.
    #[error("web config file {path}: {key}: {problem}")]
    Invalid {
        /// The web config file.
        path: PathBuf,
        /// The key, with its section (`tls_server_config.min_version`).
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// Outcome of a basic-auth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Serve the request.
    Allowed,
    /// Answer 401 with `WWW-Authenticate: ` [`WWW_AUTHENTICATE`].
    Unauthorized,
}

/// A loaded, validated web config. Share it behind an `Arc`; every method takes `&self`.
pub struct WebConfig {
    /// Built once at load, so a bad certificate fails start-up, not the first handshake.
    tls_acceptor: Option<TlsAcceptor>,
    /// `http_server_config.http2` (default true); also decides the ALPN offer.
    http2: bool,
    /// `http_server_config.headers`, added to every response.
    extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// `basic_auth_users`: user → bcrypt hash. Empty = no authentication.
    users: BTreeMap<String, String>,
    /// Hash compared against when the user is unknown, at the highest configured cost, so an
    /// unknown user takes as long to reject as a wrong password.
    decoy_hash: Option<String>,
    /// SHA-256 digests of (user, password, hash) triples that verified, so a scraper pays the
    /// bcrypt cost once rather than on every scrape.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls_acceptor.is_some())
            .field("http2", &self.http2)
            .field("extra_headers", &self.extra_headers)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Loads and validates the file at `path`: certificates and keys are read and checked now,
    /// and every bcrypt hash is checked for syntax.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            what: "web config file".to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        let mut root = yaml::parse_mapping(&text).map_err(|message| WebConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        })?;
        let loader = Loader { path };
        const TOP_KEYS: [&str; 4] = [
            "tls_server_config",
            "http_server_config",
            "basic_auth_users",
            "rate_limit",
        ];
        if let Some(key) = root.keys().find(|key| !TOP_KEYS.contains(&key.as_str())) {
            return Err(loader.unknown(key, &TOP_KEYS));
        }
        if let Some(node) = root.remove("rate_limit")
            && node != Node::Null
        {
            return Err(loader.invalid(
                "rate_limit",
                "is not supported by honcho_exporter; scrapes are already bounded by \
                 web.max_concurrent_requests",
            ));
        }

        let (http2, extra_headers) = match root.remove("http_server_config") {
            Some(node) => load_http_server_config(&loader, node)?,
            None => (true, Vec::new()),
        };
        let tls_acceptor = match root.remove("tls_server_config") {
            Some(node) => Some(load_tls_server_config(&loader, node, http2)?),
            None => None,
        };
        let users = match root.remove("basic_auth_users") {
            Some(node) => load_users(&loader, node)?,
            None => BTreeMap::new(),
        };
        let decoy_hash = decoy_hash_for(&users);
        Ok(WebConfig {
            tls_acceptor,
            http2,
            extra_headers,
            users,
            decoy_hash,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// The TLS acceptor when `tls_server_config` is set; `None` means serve plain HTTP.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls_acceptor.clone()
    }

    /// `http_server_config.http2` (default true). Offered through ALPN over TLS; the server
    /// may also speak HTTP/2 over plain HTTP only when this is true.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Whether basic auth is required (`basic_auth_users` is not empty).
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Headers to add to every response (`http_server_config.headers`).
    pub fn extra_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.extra_headers
    }
}
