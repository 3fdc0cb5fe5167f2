//! The error taxonomy of one upstream call. Every error maps to a bounded `reason()` used as a
//! metric label; the Display text (for logs) never contains the token.

use std::time::Duration;

/// Why a call to Honcho failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No complete answer within the request budget (retries included).
    #[error("no complete answer from Honcho within {0:?}")]
    Timeout(Duration),
    /// The exporter's own request rate bound (`honcho.max_requests_per_second`) left no slot
    /// within the request budget, so nothing was sent: the bound is too low for the number of
    /// workspaces and the poll timeout.
    #[error("not sent: the request rate bound left no slot within {0:?}")]
    RateLimited(Duration),
    /// The TCP/TLS connection could not be made (refused, DNS failure, handshake).
    #[error("cannot connect to Honcho: {0}")]
    Connect(String),
    /// Honcho answered with a non-success status.
    #[error("Honcho answered HTTP {status}: {detail}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// Honcho's `detail` text (truncated), or the start of the body.
        detail: String,
        /// `Retry-After`, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The body is not the JSON shape the endpoint promises (malformed, truncated, wrong type).
    #[error("cannot decode Honcho's response: {0}")]
    Decode(String),
    /// The body is larger than `honcho.max_response_bytes`.
    #[error("Honcho's response is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// The connection was made but broke before a complete response arrived (closed before
    /// the headers, or while the body was being read).
    #[error("Honcho's response broke off: {0}")]
    Body(String),
    /// The work-units walk was handed a cursor it had already followed (or an empty page with a
    /// next cursor), so it would never end.
    #[error("the work-units walk went in a loop (a cursor repeated after {pages} pages)")]
    CursorLoop {
        /// Pages walked before the loop was seen.
        pages: u32,
    },
}

impl UpstreamError {
    /// A bounded label value naming the kind of failure (never error text).
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::RateLimited(_) => "rate_limited",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Status { status, .. } => match status {
                401 => "http_401",
                403 => "http_403",
                429 => "http_429",
                400..=499 => "http_4xx",
                _ => "http_5xx",
            },
            UpstreamError::Decode(_) => "decode",
            UpstreamError::TooLarge(_) => "too_large",
            UpstreamError::Body(_) => "body",
            UpstreamError::CursorLoop { .. } => "cursor_loop",
        }
    }

    /// Whether trying again may help (timeouts, connection failures, 429, 5xx, broken bodies).
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Timeout(_) | UpstreamError::Connect(_) | UpstreamError::Body(_) => true,
            UpstreamError::Status { status, .. } => *status == 429 || *status >= 500,
            UpstreamError::Decode(_)
            | UpstreamError::RateLimited(_)
            | UpstreamError::TooLarge(_)
            | UpstreamError::CursorLoop { .. } => false,
        }
    }

    /// Whether this is a 404 (route absent: another API generation).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::Status { status: 404, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> UpstreamError {
        UpstreamError::Status {
            status: code,
            detail: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn reasons_are_bounded_per_status_class() {
        assert_eq!(status(401).reason(), "http_401");
        assert_eq!(status(403).reason(), "http_403");
        assert_eq!(status(404).reason(), "http_4xx");
        assert_eq!(status(422).reason(), "http_4xx");
        assert_eq!(status(429).reason(), "http_429");
        assert_eq!(status(500).reason(), "http_5xx");
        assert_eq!(status(503).reason(), "http_5xx");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!UpstreamError::Decode("x".into()).is_retryable());
    }
}
