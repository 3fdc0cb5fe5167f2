//! The bearer token: from the environment or from a file that is re-read when it changes
//! (rotation without restart). A changed file that cannot be used keeps the last good token and
//! is counted once per version. It builds the `Authorization` value only; it sends nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::header::HeaderValue;

use crate::config::{Secret, TokenSource};

/// The token file could not be read when the client was built.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the Honcho token file {}: {error}", path.display())]
pub struct TokenFileError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error (in the message, not a `source()`: a full chain would repeat it).
    pub error: std::io::Error,
}

/// The bearer token, re-read from its file when the file changes (rotation without restart).
pub(super) struct TokenProvider {
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
    pub(super) fn new(source: TokenSource) -> Result<Self, TokenFileError> {
        let (version, header) = match &source {
            TokenSource::Env(secret) => (None, bearer(secret)),
            TokenSource::File(path) => {
                let (version, secret) = read_token_file(path).map_err(|error| TokenFileError {
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
    pub(super) fn header_value(&self) -> HeaderValue {
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
    pub(super) fn reload_errors(&self) -> Option<BTreeMap<&'static str, u64>> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
