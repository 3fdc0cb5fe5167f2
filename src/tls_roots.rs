//! CA files → rustls root certificate stores: the one loader behind every TLS client the
//! exporter builds (`honcho.ca_file` for the API source, `postgres.ca_file` for the database
//! source). It reads the one file it is given and the system's roots; it builds no client and
//! opens no connection.
//!
//! The rule differs per setting, as README's configuration table documents it:
//! - `honcho.ca_file` **adds to** the system roots ("Extra CA certificates (PEM) to trust"):
//!   [`CaRule::AddToSystemRoots`].
//! - `postgres.ca_file` **replaces** the system roots ("CA certificates (PEM) that sign the
//!   database server's certificate"; the system roots only without it):
//!   [`CaRule::ReplaceSystemRoots`].
//!
//! For both, a file that cannot be read, is not PEM or holds no certificate is an error naming
//! the setting and the file (config validation already refuses such a file; this catches one
//! emptied or removed since).

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// What a CA file does to the system's root certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaRule {
    /// The file's certificates are trusted besides the system roots (`honcho.ca_file`).
    AddToSystemRoots,
    /// Only the file's certificates are trusted (`postgres.ca_file`).
    ReplaceSystemRoots,
}

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {setting} {}: {reason}", path.display())]
pub struct CaFileError {
    /// The setting that named the file (`honcho.ca_file`, `postgres.ca_file`).
    pub setting: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The roots to verify servers against: the system's, and the certificates of `ca_file` (set
/// by `setting`) added to them or replacing them as `rule` says. Without a file, the system's.
/// A broken system certificate is skipped (the others still count); a broken or empty file is
/// an error.
pub fn root_store(
    setting: &'static str,
    ca_file: Option<&Path>,
    rule: CaRule,
) -> Result<RootCertStore, CaFileError> {
    let file_certificates = match ca_file {
        Some(path) => Some((path, read_certificates(setting, path)?)),
        None => None,
    };
    let mut roots = RootCertStore::empty();
    if file_certificates.is_none() || rule == CaRule::AddToSystemRoots {
        for certificate in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(certificate);
        }
    }
    if let Some((path, certificates)) = file_certificates {
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| ca_error(setting, path, error.to_string()))?;
        }
    }
    Ok(roots)
}

/// The PEM certificates of `path`, at least one.
fn read_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let pem = std::fs::read(path)
        .map_err(|error| ca_error(setting, path, format!("cannot read it: {error}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ca_error(setting, path, format!("not PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(ca_error(
            setting,
            path,
            "no PEM certificate in it".to_string(),
        ));
    }
    Ok(certificates)
}

fn ca_error(setting: &'static str, path: &Path, reason: String) -> CaFileError {
    CaFileError {
        setting,
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: [CaRule; 2] = [CaRule::AddToSystemRoots, CaRule::ReplaceSystemRoots];

    fn test_ca() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/web/ca.crt")
    }

    fn system_roots() -> usize {
        root_store("honcho.ca_file", None, CaRule::AddToSystemRoots)
            .expect("the system roots load")
            .len()
    }

    #[test]
    fn without_a_file_both_rules_trust_the_system_roots() {
        for rule in RULES {
            let roots = root_store("postgres.ca_file", None, rule).expect("system roots");
            assert_eq!(roots.len(), system_roots(), "{rule:?}");
        }
    }

    #[test]
    fn add_to_system_roots_keeps_them_and_adds_the_files_certificate() {
        let roots = root_store("honcho.ca_file", Some(&test_ca()), CaRule::AddToSystemRoots)
            .expect("the test CA loads");
        assert_eq!(roots.len(), system_roots() + 1);
    }

    #[test]
    fn replace_system_roots_trusts_only_the_files_certificate() {
        let roots = root_store(
            "postgres.ca_file",
            Some(&test_ca()),
            CaRule::ReplaceSystemRoots,
        )
        .expect("the test CA loads");
        assert_eq!(roots.len(), 1);
    }

    #[test]
    fn an_empty_file_is_an_error_naming_the_setting_and_the_file_under_both_rules() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("empty.crt");
        std::fs::write(&path, "").expect("write empty CA file");
        for (setting, rule) in [
            ("honcho.ca_file", CaRule::AddToSystemRoots),
            ("postgres.ca_file", CaRule::ReplaceSystemRoots),
        ] {
            let error = root_store(setting, Some(&path), rule).expect_err("an empty CA file");
            assert_eq!(
                error.to_string(),
                format!(
                    "cannot use {setting} {}: no PEM certificate in it",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("gone.crt");
        for rule in RULES {
            let error =
                root_store("postgres.ca_file", Some(&path), rule).expect_err("a missing CA file");
            let text = error.to_string();
            assert!(
                text.starts_with(&format!(
                    "cannot use postgres.ca_file {}: cannot read it: ",
                    path.display()
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn a_file_of_text_without_certificates_is_an_error() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("notes.crt");
        std::fs::write(&path, "not a certificate\n").expect("write CA file");
        let error = root_store("honcho.ca_file", Some(&path), CaRule::AddToSystemRoots)
            .expect_err("no certificate");
        assert!(
            error.to_string().ends_with("no PEM certificate in it"),
            "{error}"
        );
    }
}
