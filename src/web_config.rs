//! Placeholder until the web-config helper's module lands (same public API).
use std::path::Path;

/// exporter-toolkit style web configuration.
#[derive(Debug, Default)]
pub struct WebConfig {}

/// Loading failed.
#[derive(Debug, thiserror::Error)]
#[error("web config error")]
pub struct WebConfigError;

/// The result of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Serve it.
    Allowed,
    /// Answer 401.
    Unauthorized,
}

impl WebConfig {
    /// Loads a file.
    pub fn load(_path: &Path) -> Result<WebConfig, WebConfigError> {
        Err(WebConfigError)
    }
    /// TLS, if configured.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        None
    }
    /// Basic auth.
    pub fn authorize(&self, _authorization: Option<&hyper::header::HeaderValue>) -> AuthDecision {
        AuthDecision::Allowed
    }
    /// Extra headers.
    pub fn extra_headers(&self) -> &[(hyper::header::HeaderName, hyper::header::HeaderValue)] {
        &[]
    }
}
