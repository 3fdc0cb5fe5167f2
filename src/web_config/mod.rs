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

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::yaml::{self, Node};

/// The `WWW-Authenticate` value sent with a 401, so browsers and curl know to ask for basic
/// credentials.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"honcho_exporter\"";

/// Verified credential digests kept at most; past this the cache starts over. A handful of
/// scrapers use one or two users, so this only bounds memory against a stream of distinct
/// (valid) passwords.
const AUTH_CACHE_CAPACITY: usize = 256;

/// Headers exporter-toolkit lets the file set (compared case-insensitively).
const CONFIGURABLE_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

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

/// Context for errors while walking one file.
struct Loader<'a> {
    path: &'a Path,
}

impl Loader<'_> {
    fn invalid(&self, key: &str, problem: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    fn unknown(&self, key: &str, known: &[&str]) -> WebConfigError {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let hint = yaml::closest_key(leaf, known.iter().copied())
            .map(|name| format!(" (did you mean {name}?)"))
            .unwrap_or_default();
        self.invalid(key, format!("unknown key{hint}"))
    }

    fn mapping(&self, key: &str, node: Node) -> Result<BTreeMap<String, Node>, WebConfigError> {
        match node {
            Node::Map(entries) => Ok(entries),
            Node::Null => Ok(BTreeMap::new()),
            other => Err(self.invalid(
                key,
                format!("expected a mapping, got {}", other.kind_name()),
            )),
        }
    }

    fn scalar(&self, key: &str, node: Node) -> Result<Option<String>, WebConfigError> {
        match node {
            Node::Scalar(text) => Ok(Some(text)),
            Node::Null => Ok(None),
            other => Err(self.invalid(
                key,
                format!("expected a single value, got {}", other.kind_name()),
            )),
        }
    }

    fn boolean(&self, key: &str, node: Node) -> Result<Option<bool>, WebConfigError> {
        match self.scalar(key, node)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(self.invalid(key, format!("expected true or false, got {other:?}"))),
        }
    }

    /// Resolves a path relative to the web config file's directory, as exporter-toolkit does.
    fn file_path(&self, text: &str) -> PathBuf {
        let path = PathBuf::from(text);
        match self.path.parent() {
            Some(directory) if path.is_relative() => directory.join(path),
            _ => path,
        }
    }

    fn read(&self, key: &str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(path).map_err(|source| WebConfigError::Read {
            what: key.to_string(),
            path: path.to_path_buf(),
            source,
        })
    }

    /// PEM text from either the inline key (`cert`) or the file key (`cert_file`).
    fn pem_source(
        &self,
        section: &mut BTreeMap<String, Node>,
        inline_key: &str,
        file_key: &str,
    ) -> Result<Option<(String, Vec<u8>)>, WebConfigError> {
        let inline_name = format!("tls_server_config.{inline_key}");
        let file_name = format!("tls_server_config.{file_key}");
        let inline = match section.remove(inline_key) {
            Some(node) => self.scalar(&inline_name, node)?,
            None => None,
        };
        let file = match section.remove(file_key) {
            Some(node) => self.scalar(&file_name, node)?,
            None => None,
        };
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.invalid(
                &file_name,
                format!("set either {inline_key} or {file_key}, not both"),
            )),
            (Some(text), None) => Ok(Some((inline_name, text.into_bytes()))),
            (None, Some(path)) => {
                let path = self.file_path(&path);
                let contents = self.read(&file_name, &path)?;
                Ok(Some((file_name, contents)))
            }
            (None, None) => Ok(None),
        }
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

    /// Checks an `Authorization` header against `basic_auth_users`. Always [`AuthDecision::Allowed`]
    /// when no users are configured.
    ///
    /// A first-time check costs one bcrypt verification (~100 ms at cost 10) — also for an
    /// unknown user, so the response time does not reveal which users exist. Verified
    /// credentials are cached (bounded), so repeat scrapes are cheap. On an async runtime call
    /// [`WebConfig::authorize_async`] instead, which keeps bcrypt off the reactor threads.
    pub fn authorize(&self, authorization: Option<&HeaderValue>) -> AuthDecision {
        match self.check_cached(authorization) {
            Ok(decision) => decision,
            Err(credentials) => self.verify(&credentials),
        }
    }

    /// [`WebConfig::authorize`] for async servers: the cache hit is answered inline, a bcrypt
    /// verification runs on tokio's blocking pool.
    pub async fn authorize_async(
        self: &Arc<Self>,
        authorization: Option<&HeaderValue>,
    ) -> AuthDecision {
        match self.check_cached(authorization) {
            Ok(decision) => decision,
            Err(credentials) => {
                let config = Arc::clone(self);
                tokio::task::spawn_blocking(move || config.verify(&credentials))
                    .await
                    .unwrap_or(AuthDecision::Unauthorized)
            }
        }
    }

    /// Decides without bcrypt when possible (no users, no or malformed header, cached
    /// credentials); otherwise hands back the credentials that need verifying.
    fn check_cached(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<AuthDecision, Credentials> {
        if self.users.is_empty() {
            return Ok(AuthDecision::Allowed);
        }
        let Some(credentials) = authorization.and_then(Credentials::from_header) else {
            return Ok(AuthDecision::Unauthorized);
        };
        if let Some(hash) = self.users.get(&credentials.user) {
            let digest = credentials.digest(hash);
            if self.verified_cache().contains(&digest) {
                return Ok(AuthDecision::Allowed);
            }
        }
        Err(credentials)
    }

    /// The slow path: one bcrypt verification against the user's hash, or against the decoy
    /// hash for an unknown user.
    fn verify(&self, credentials: &Credentials) -> AuthDecision {
        let known_hash = self.users.get(&credentials.user);
        let Some(hash) = known_hash.or(self.decoy_hash.as_ref()) else {
            return AuthDecision::Unauthorized;
        };
        let matches = bcrypt::verify(credentials.password.as_bytes(), hash).unwrap_or(false);
        match known_hash {
            Some(hash) if matches => {
                let mut cache = self.verified_cache();
                if cache.len() >= AUTH_CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(credentials.digest(hash));
                AuthDecision::Allowed
            }
            _ => AuthDecision::Unauthorized,
        }
    }

    fn verified_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // The set holds no invariant a panicking holder could break: use it as is.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Basic-auth credentials from one request. Not `Debug`: it holds a password.
struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// Parses `Basic base64(user:password)`; `None` for anything else.
    fn from_header(header: &HeaderValue) -> Option<Credentials> {
        let text = header.to_str().ok()?.trim();
        let (scheme, encoded) = text.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// SHA-256 over user, password and the stored hash (length-prefixed so fields cannot run
    /// into each other): the cache key, so the cache never holds a password.
    fn digest(&self, hash: &str) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for field in [self.user.as_str(), self.password.as_str(), hash] {
            context.update(&(field.len() as u64).to_be_bytes());
            context.update(field.as_bytes());
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        digest
    }
}

/// A hash of a random password at the highest cost among `users`, so that rejecting an unknown
/// user costs what rejecting a wrong password does.
fn decoy_hash_for(users: &BTreeMap<String, String>) -> Option<String> {
    let cost = users
        .values()
        .filter_map(|hash| hash.parse::<bcrypt::HashParts>().ok())
        .map(|parts| parts.get_cost())
        .max()?;
    let mut random_password = [0u8; 16];
    rand::fill(&mut random_password);
    bcrypt::hash(random_password, cost).ok()
}

fn load_users(loader: &Loader<'_>, node: Node) -> Result<BTreeMap<String, String>, WebConfigError> {
    let mut users = BTreeMap::new();
    for (user, hash) in loader.mapping("basic_auth_users", node)? {
        let key = format!("basic_auth_users.{user}");
        if user.contains(':') {
            return Err(loader.invalid(&key, "user names cannot contain ':' in basic auth"));
        }
        let Some(hash) = loader.scalar(&key, hash)? else {
            return Err(loader.invalid(&key, "missing bcrypt hash"));
        };
        // The hash is not echoed: it is as good as a password to an offline attacker.
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(loader.invalid(
                &key,
                "is not a bcrypt hash (generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            ));
        }
        users.insert(user, hash);
    }
    Ok(users)
}

type HeaderList = Vec<(HeaderName, HeaderValue)>;

fn load_http_server_config(
    loader: &Loader<'_>,
    node: Node,
) -> Result<(bool, HeaderList), WebConfigError> {
    let mut http2 = true;
    let mut headers = Vec::new();
    for (name, value) in loader.mapping("http_server_config", node)? {
        let key = format!("http_server_config.{name}");
        match name.as_str() {
            "http2" => http2 = loader.boolean(&key, value)?.unwrap_or(true),
            "headers" => headers = load_headers(loader, value)?,
            _ => return Err(loader.unknown(&key, &["http2", "headers"])),
        }
    }
    Ok((http2, headers))
}

fn load_headers(loader: &Loader<'_>, node: Node) -> Result<HeaderList, WebConfigError> {
    let mut headers = Vec::new();
    for (name, value) in loader.mapping("http_server_config.headers", node)? {
        let key = format!("http_server_config.headers.{name}");
        if !CONFIGURABLE_HEADERS
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&name))
        {
            return Err(loader.invalid(
                &key,
                format!(
                    "this header cannot be configured; allowed: {}",
                    CONFIGURABLE_HEADERS.join(", ")
                ),
            ));
        }
        let Some(value) = loader
            .scalar(&key, value)?
            .filter(|value| !value.is_empty())
        else {
            continue; // blank = unset, as in exporter-toolkit
        };
        let lower_name = name.to_ascii_lowercase();
        let allowed_values: &[&str] = match lower_name.as_str() {
            "x-frame-options" => &["deny", "sameorigin"],
            "x-content-type-options" => &["nosniff"],
            _ => &[],
        };
        if !allowed_values.is_empty()
            && !allowed_values
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(&value))
        {
            return Err(loader.invalid(
                &key,
                format!(
                    "invalid value {value:?}; expected one of {}",
                    allowed_values.join(", ")
                ),
            ));
        }
        let header_name = HeaderName::from_bytes(lower_name.as_bytes())
            .expect("the allowed header names are valid");
        let header_value = HeaderValue::from_str(&value).map_err(|_| {
            loader.invalid(
                &key,
                "the value contains characters not allowed in a header",
            )
        })?;
        headers.push((header_name, header_value));
    }
    Ok(headers)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    Require,
}

const TLS_KEYS: [&str; 13] = [
    "cert",
    "key",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
];

fn load_tls_server_config(
    loader: &Loader<'_>,
    node: Node,
    http2: bool,
) -> Result<TlsAcceptor, WebConfigError> {
    let mut section = loader.mapping("tls_server_config", node)?;
    if let Some(key) = section.keys().find(|key| !TLS_KEYS.contains(&key.as_str())) {
        return Err(loader.unknown(&format!("tls_server_config.{key}"), &TLS_KEYS));
    }
    for unsupported in ["cipher_suites", "curve_preferences", "client_allowed_sans"] {
        let key = format!("tls_server_config.{unsupported}");
        match section.remove(unsupported) {
            None | Some(Node::Null) => {}
            Some(Node::List(items)) if items.is_empty() => {}
            Some(_) => {
                return Err(loader.invalid(
                    &key,
                    "is not supported by honcho_exporter (rustls offers only its own safe \
                     cipher suites and curves, and does not match client SANs); remove it",
                ));
            }
        }
    }
    if let Some(node) = section.remove("prefer_server_cipher_suites") {
        loader.boolean("tls_server_config.prefer_server_cipher_suites", node)?;
        tracing::warn!(
            file = %loader.path.display(),
            "tls_server_config.prefer_server_cipher_suites is ignored: rustls always prefers the server's order"
        );
    }

    let (cert_key, cert_pem) = loader
        .pem_source(&mut section, "cert", "cert_file")?
        .ok_or_else(|| {
            loader.invalid(
                "tls_server_config.cert_file",
                "missing: TLS needs a certificate",
            )
        })?;
    let (key_key, key_pem) = loader
        .pem_source(&mut section, "key", "key_file")?
        .ok_or_else(|| {
            loader.invalid(
                "tls_server_config.key_file",
                "missing: TLS needs a private key",
            )
        })?;
    let certificates = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| loader.invalid(&cert_key, format!("invalid PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(loader.invalid(&cert_key, "contains no PEM certificate"));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        loader.invalid(
            &key_key,
            "contains no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;

    let client_auth = match section.remove("client_auth_type") {
        Some(node) => match loader
            .scalar("tls_server_config.client_auth_type", node)?
            .as_deref()
        {
            None | Some("NoClientCert") => ClientAuth::None,
            Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
            Some("RequireAndVerifyClientCert") => ClientAuth::Require,
            Some(insecure @ ("RequestClientCert" | "RequireAnyClientCert")) => {
                return Err(loader.invalid(
                    "tls_server_config.client_auth_type",
                    format!(
                        "{insecure} accepts unverified certificates and is not supported; use \
                         RequireAndVerifyClientCert"
                    ),
                ));
            }
            Some(other) => {
                return Err(loader.invalid(
                    "tls_server_config.client_auth_type",
                    format!(
                        "unknown value {other:?}; expected NoClientCert, \
                         VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                    ),
                ));
            }
        },
        None => ClientAuth::None,
    };
    let client_ca = loader.pem_source(&mut section, "client_ca", "client_ca_file")?;

    let min_version = tls_version(loader, &mut section, "min_version")?.unwrap_or(12);
    let max_version = tls_version(loader, &mut section, "max_version")?.unwrap_or(13);
    if min_version > max_version {
        return Err(loader.invalid(
            "tls_server_config.min_version",
            "must not be higher than max_version",
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(number, _)| (min_version..=max_version).contains(number))
            .map(|(_, version)| version)
            .collect();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| loader.invalid("tls_server_config.min_version", error.to_string()))?;
    let builder = match (client_auth, client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(loader.invalid(
                "tls_server_config.client_ca_file",
                "missing: verifying client certificates needs the CA that signs them",
            ));
        }
        (mode, Some((ca_key, ca_pem))) => {
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&ca_pem) {
                let certificate = certificate
                    .map_err(|error| loader.invalid(&ca_key, format!("invalid PEM: {error}")))?;
                roots.add(certificate).map_err(|error| {
                    loader.invalid(&ca_key, format!("unusable CA certificate: {error}"))
                })?;
            }
            if roots.is_empty() {
                return Err(loader.invalid(&ca_key, "contains no PEM certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| loader.invalid(&ca_key, format!("unusable CA: {error}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server_config = builder
        .with_single_cert(certificates, private_key)
        .map_err(|error| {
            loader.invalid(
                &key_key,
                format!("certificate and key unusable together: {error}"),
            )
        })?;
    server_config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(TlsAcceptor::from(Arc::new(server_config)))
}

/// `TLS12` → 12, `TLS13` → 13.
fn tls_version(
    loader: &Loader<'_>,
    section: &mut BTreeMap<String, Node>,
    name: &str,
) -> Result<Option<u8>, WebConfigError> {
    let key = format!("tls_server_config.{name}");
    let Some(node) = section.remove(name) else {
        return Ok(None);
    };
    match loader.scalar(&key, node)?.as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(12)),
        Some("TLS13") => Ok(Some(13)),
        Some(old @ ("TLS10" | "TLS11")) => Err(loader.invalid(
            &key,
            format!(
                "{old} is not supported (rustls speaks TLS 1.2 and 1.3 only); use TLS12 or TLS13"
            ),
        )),
        Some(other) => Err(loader.invalid(
            &key,
            format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("valid header")
    }

    #[test]
    fn basic_credentials_parse_with_any_scheme_case() {
        // "alice:pa:ss" — the password may contain colons.
        let credentials =
            Credentials::from_header(&header("basic YWxpY2U6cGE6c3M=")).expect("parses");
        assert_eq!(credentials.user, "alice");
        assert_eq!(credentials.password, "pa:ss");
    }

    #[test]
    fn malformed_authorization_headers_are_rejected() {
        for value in ["Bearer abc", "Basic", "Basic !!!", "Basic YWxpY2U="] {
            assert!(
                Credentials::from_header(&header(value)).is_none(),
                "{value}"
            );
        }
    }

    #[test]
    fn digest_separates_fields() {
        let first = Credentials {
            user: "ab".into(),
            password: "c".into(),
        };
        let second = Credentials {
            user: "a".into(),
            password: "bc".into(),
        };
        assert_ne!(first.digest("h"), second.digest("h"));
    }
}
