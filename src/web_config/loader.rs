//! Reading one web config file's YAML nodes with errors that name the file and the key. No
//! validation of what the values mean: `http.rs`, `tls.rs` and `auth.rs` do that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::yaml::{self, Node};

use super::WebConfigError;

/// Context for errors while walking one file.
pub(super) struct Loader<'a> {
    pub(super) path: &'a Path,
}

impl Loader<'_> {
    pub(super) fn invalid(&self, key: &str, problem: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    pub(super) fn unknown(&self, key: &str, known: &[&str]) -> WebConfigError {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let hint = yaml::closest_key(leaf, known.iter().copied())
            .map(|name| format!(" (did you mean {name}?)"))
            .unwrap_or_default();
        self.invalid(key, format!("unknown key{hint}"))
    }

    pub(super) fn mapping(
        &self,
        key: &str,
        node: Node,
    ) -> Result<BTreeMap<String, Node>, WebConfigError> {
        match node {
            Node::Map(entries) => Ok(entries),
            Node::Null => Ok(BTreeMap::new()),
            other => Err(self.invalid(
                key,
                format!("expected a mapping, got {}", other.kind_name()),
            )),
        }
    }

    pub(super) fn scalar(&self, key: &str, node: Node) -> Result<Option<String>, WebConfigError> {
        match node {
            Node::Scalar(text) => Ok(Some(text)),
            Node::Null => Ok(None),
            other => Err(self.invalid(
                key,
                format!("expected a single value, got {}", other.kind_name()),
            )),
        }
    }

    pub(super) fn boolean(&self, key: &str, node: Node) -> Result<Option<bool>, WebConfigError> {
        match self.scalar(key, node)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(self.invalid(key, format!("expected true or false, got {other:?}"))),
        }
    }

    /// Resolves a path relative to the web config file's directory, as exporter-toolkit does.
    pub(super) fn file_path(&self, text: &str) -> PathBuf {
        let path = PathBuf::from(text);
        match self.path.parent() {
            Some(directory) if path.is_relative() => directory.join(path),
            _ => path,
        }
    }

    pub(super) fn read(&self, key: &str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(path).map_err(|source| WebConfigError::Read {
            what: key.to_string(),
            path: path.to_path_buf(),
            source,
        })
    }

    /// PEM text from either the inline key (`cert`) or the file key (`cert_file`).
    pub(super) fn pem_source(
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
