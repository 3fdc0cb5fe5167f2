//! The bearer token: from the environment or from a file followed by the one secret-file type
//! ([`crate::config::secret_file`]: re-read when it changes, the last good token kept when a
//! changed file cannot be used, each rejected version counted once). It builds the
//! `Authorization` value only; it sends nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use reqwest::header::HeaderValue;

use crate::config::secret_file::{SecretFile, SecretFileError, Trim, Validity};
use crate::config::{Secret, TokenSource};

/// The token file could not be used when the client was built.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the Honcho token file {}: {error}", path.display())]
pub struct TokenFileError {
    /// The file.
    pub path: PathBuf,
    /// Why (in the message, not a `source()`: a full chain would repeat it).
    pub error: SecretFileError,
}

/// A token must fit an HTTP header value.
const HEADER_SAFE: Validity = Validity {
    used_as: "an HTTP header",
    check: |token| HeaderValue::from_str(&format!("Bearer {token}")).is_ok(),
};

/// The bearer token, re-read from its file when the file changes (rotation without restart).
pub(super) enum TokenProvider {
    /// `HONCHO_EXPORTER_HONCHO_TOKEN`.
    Env(HeaderValue),
    /// `honcho.token_file`, with the header built from its last good version.
    File(Mutex<(SecretFile, HeaderValue)>),
}

impl TokenProvider {
    pub(super) fn new(source: TokenSource) -> Result<Self, TokenFileError> {
        match source {
            TokenSource::Env(secret) => Ok(TokenProvider::Env(bearer(&secret))),
            TokenSource::File(path) => {
                let file = SecretFile::open_checked(&path, Trim::Whitespace, Some(HEADER_SAFE))
                    .map_err(|error| TokenFileError { path, error })?;
                let header = bearer(file.secret());
                Ok(TokenProvider::File(Mutex::new((file, header))))
            }
        }
    }

    /// The `Authorization` header value; re-reads the token file when it changed. A changed
    /// file that is unreadable, empty or not a valid header value keeps the last good token: it
    /// is logged and counted once per version of the file.
    pub(super) fn header_value(&self) -> HeaderValue {
        match self {
            TokenProvider::Env(header) => header.clone(),
            TokenProvider::File(cached) => {
                let mut cached = cached
                    .lock()
                    .expect("token lock is never poisoned: no panics while held");
                let (file, header) = &mut *cached;
                match file.refresh() {
                    Ok(false) => {}
                    Ok(true) => {
                        tracing::info!(path = %file.path().display(), "Honcho token file changed; using the new token");
                        *header = bearer(file.secret());
                    }
                    Err(rejection) => tracing::warn!(
                        path = %rejection.path.display(),
                        reason = rejection.error.reason(),
                        error = %rejection.error,
                        "the Honcho token file changed but cannot be used; keeping the previous token"
                    ),
                }
                header.clone()
            }
        }
    }

    /// Changes of the token file not used, by reason; `None` when the token is not from a file.
    pub(super) fn reload_errors(&self) -> Option<BTreeMap<&'static str, u64>> {
        match self {
            TokenProvider::File(cached) => Some(
                cached
                    .lock()
                    .expect("token lock is never poisoned: no panics while held")
                    .0
                    .rejected()
                    .clone(),
            ),
            TokenProvider::Env(_) => None,
        }
    }
}

fn bearer(secret: &Secret) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-token-characters"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::honcho::test_support::fake_honcho;
    use crate::honcho::{ApiVersion, Client, Endpoint, StatusFilter};

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
        let mut settings = crate::config::Settings::with_url(url.parse().expect("test URL"));
        settings.honcho.token = Some(TokenSource::File(path.clone()));
        settings.poll.timeout = Duration::from_secs(5);
        let client = Client::from_settings(&settings).expect("client builds");
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
}
