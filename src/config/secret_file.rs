//! One secret-file type for the Honcho token (`honcho.token_file`) and the database password
//! (`postgres.password_file`): read at start (a bad file is a configuration error), re-read
//! when the file changes (rotation without restart), and a changed file that cannot be used
//! keeps the last good secret, judged once per version of the file so it is logged and counted
//! once, not at every use. Reads the file only; no logging (the caller logs a [`Rejection`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Secret;

/// How a secret is cut out of its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Leading and trailing whitespace dropped (a token has none).
    Whitespace,
    /// Only the trailing line end dropped (a password may begin or end with a space).
    LineEnd,
}

/// Why a version of a secret file is not used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be read (gone, permissions).
    #[error("cannot read it: {0}")]
    Unreadable(std::io::Error),
    /// The file holds nothing (truncated, or caught mid-write).
    #[error("it is empty")]
    Empty,
    /// The secret holds characters its use cannot carry (e.g. an HTTP header).
    #[error("it holds characters {0} cannot carry")]
    Invalid(&'static str),
}

impl SecretFileError {
    /// Every reason of a file without a [`Validity`] check, so a counter starts at 0 for each.
    pub const REASONS: [&'static str; 2] = ["unreadable", "empty"];

    /// The bounded `reason` label value.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretFileError::Unreadable(_) => "unreadable",
            SecretFileError::Empty => "empty",
            SecretFileError::Invalid(_) => "invalid",
        }
    }
}

/// What tells one version of a file from the next: its mtime and length (a rewrite within one
/// mtime tick still changes the length in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    modified: SystemTime,
    length: u64,
}

impl FileVersion {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(FileVersion {
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            length: meta.len(),
        })
    }
}

/// Reads one version of a secret file.
pub fn read_secret_file(path: &Path, trim: Trim) -> Result<(FileVersion, Secret), SecretFileError> {
    let version = FileVersion::of(path).map_err(SecretFileError::Unreadable)?;
    let text = std::fs::read_to_string(path).map_err(SecretFileError::Unreadable)?;
    let secret = match trim {
        Trim::Whitespace => text.trim(),
        Trim::LineEnd => text.trim_end_matches(['\r', '\n']),
    };
    if secret.is_empty() {
        return Err(SecretFileError::Empty);
    }
    Ok((version, Secret::new(secret.to_string())))
}

/// A rule a secret must pass besides being non-empty: what it is used as, and the check.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// What the secret becomes ("an HTTP header"), for the message.
    pub used_as: &'static str,
    /// Whether the secret can be used so.
    pub check: fn(&str) -> bool,
}

fn read_valid(
    path: &Path,
    trim: Trim,
    validity: Option<Validity>,
) -> Result<(FileVersion, Secret), SecretFileError> {
    let (version, secret) = read_secret_file(path, trim)?;
    match validity {
        Some(rule) if !(rule.check)(secret.expose()) => Err(SecretFileError::Invalid(rule.used_as)),
        _ => Ok((version, secret)),
    }
}

/// A changed file that was not used: what to log (once).
#[derive(Debug)]
pub struct Rejection<'a> {
    /// The file.
    pub path: &'a Path,
    /// Why.
    pub error: SecretFileError,
}

/// A secret file followed across changes, keeping the last good secret.
#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
    trim: Trim,
    validity: Option<Validity>,
    /// The version last judged (used or rejected); `None` while the file cannot be looked at.
    version: Option<FileVersion>,
    secret: Secret,
    /// Versions not used, by [`SecretFileError::reason`].
    rejected: BTreeMap<&'static str, u64>,
}

impl SecretFile {
    /// Reads the file for the first time: it must be usable.
    pub fn open(path: &Path, trim: Trim) -> Result<Self, SecretFileError> {
        Self::open_checked(path, trim, None)
    }

    /// [`SecretFile::open`] with a rule every version must pass (counted as `invalid`).
    pub fn open_checked(
        path: &Path,
        trim: Trim,
        validity: Option<Validity>,
    ) -> Result<Self, SecretFileError> {
        let (version, secret) = read_valid(path, trim, validity)?;
        let mut rejected: BTreeMap<&'static str, u64> = SecretFileError::REASONS
            .into_iter()
            .map(|reason| (reason, 0))
            .collect();
        if validity.is_some() {
            rejected.insert("invalid", 0);
        }
        Ok(SecretFile {
            path: path.to_path_buf(),
            trim,
            validity,
            version: Some(version),
            secret,
            rejected,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks at the file: a new version that is usable replaces the secret (`Ok(true)`); one
    /// that is not keeps the last good secret and is returned once as a [`Rejection`] (and
    /// counted); an unchanged file is `Ok(false)`.
    pub fn refresh(&mut self) -> Result<bool, Rejection<'_>> {
        match FileVersion::of(&self.path) {
            Ok(version) if Some(version) == self.version => Ok(false),
            Ok(_) => match read_valid(&self.path, self.trim, self.validity) {
                Ok((version, secret)) => {
                    self.version = Some(version);
                    self.secret = secret;
                    Ok(true)
                }
                Err(error) => {
                    // Judged once: an empty version stays rejected until it changes again.
                    self.version = FileVersion::of(&self.path).ok();
                    Err(self.reject(error))
                }
            },
            Err(error) => {
                if self.version.take().is_some() {
                    return Err(self.reject(SecretFileError::Unreadable(error)));
                }
                Ok(false)
            }
        }
    }

    fn reject(&mut self, error: SecretFileError) -> Rejection<'_> {
        *self.rejected.entry(error.reason()).or_insert(0) += 1;
        Rejection {
            path: &self.path,
            error,
        }
    }

    /// The last good secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Versions of the file not used, by reason.
    pub fn rejected(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn the_token_is_trimmed_and_the_password_keeps_its_spaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, "  s3cret \n");
        let (_, token) = read_secret_file(&path, Trim::Whitespace).expect("read");
        assert_eq!(token.expose(), "s3cret");
        let (_, password) = read_secret_file(&path, Trim::LineEnd).expect("read");
        assert_eq!(password.expose(), "  s3cret ");
    }

    #[test]
    fn an_emptied_file_keeps_the_last_good_secret_and_is_rejected_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, "first\n");
        let mut file = SecretFile::open(&path, Trim::LineEnd).expect("open");
        assert!(matches!(file.refresh(), Ok(false)));
        write(&path, "");
        let rejection = file.refresh().expect_err("an empty file is rejected");
        assert_eq!(rejection.error.reason(), "empty");
        assert!(matches!(file.refresh(), Ok(false)), "judged once");
        assert_eq!(file.secret().expose(), "first");
        assert_eq!(file.rejected().get("empty"), Some(&1));
        write(&path, "second\n");
        assert!(matches!(file.refresh(), Ok(true)));
        assert_eq!(file.secret().expose(), "second");
    }

    #[test]
    fn a_deleted_file_keeps_the_last_good_secret_and_is_rejected_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, "first");
        let mut file = SecretFile::open(&path, Trim::Whitespace).expect("open");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(
            file.refresh().expect_err("gone").error.reason(),
            "unreadable"
        );
        assert!(matches!(file.refresh(), Ok(false)));
        assert_eq!(file.secret().expose(), "first");
        assert_eq!(file.rejected().get("unreadable"), Some(&1));
    }

    #[test]
    fn a_version_failing_the_validity_rule_is_invalid_and_keeps_the_last_good_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, "good");
        let rule = Validity {
            used_as: "a test",
            check: |secret| !secret.contains('!'),
        };
        let mut file = SecretFile::open_checked(&path, Trim::Whitespace, Some(rule)).expect("open");
        write(&path, "bad!");
        let rejection = file.refresh().expect_err("invalid");
        assert_eq!(
            rejection.error.to_string(),
            "it holds characters a test cannot carry"
        );
        assert_eq!(file.secret().expose(), "good");
        assert_eq!(file.rejected().get("invalid"), Some(&1));
    }

    #[test]
    fn an_empty_file_cannot_be_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, "\n");
        assert!(matches!(
            SecretFile::open(&path, Trim::LineEnd),
            Err(SecretFileError::Empty)
        ));
    }
}
