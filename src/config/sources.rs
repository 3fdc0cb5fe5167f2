//! The raw configuration layers — config file, `HONCHO_EXPORTER_*` environment, command-line
//! flags — as untyped strings that remember where they came from, merged by precedence. The
//! keys, their shapes and environment names come from the settings table (`table.rs`).
//!
//! This module only collects and checks *names* (unknown keys are errors here); it parses no
//! values (that is [`super::resolve`]). It reads the config file and nothing else.
//!
//! # Key names
//!
//! Every setting has one canonical key, `<section>.<name>` (e.g. `poll.interval`,
//! `work_units.page_size`): the same nesting in the YAML file, and in the environment
//! `HONCHO_EXPORTER_` followed by the key upper-cased with `.` replaced by `_`
//! (`HONCHO_EXPORTER_POLL_INTERVAL`, `HONCHO_EXPORTER_WORK_UNITS_PAGE_SIZE`). List settings take a
//! YAML list in the file and a comma-separated string in the environment. Exceptions:
//! - the token: only `HONCHO_EXPORTER_HONCHO_TOKEN` (or a file named by `honcho.token_file`);
//! - `scopes`: only in the file (a list of mappings does not fit one variable);
//! - `HONCHO_EXPORTER_CONFIG_FILE` names the config file (like `--config.file`);
//! - `HONCHO_EXPORTER_REVISION` is read at *build* time and ignored at run time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Secret;
use super::error::ConfigError;
use super::raw::{ENV_PREFIX, RawValue, Shape, split_list};
use super::table::{self, ENV_POSTGRES_PASSWORD, ENV_TOKEN, SETTINGS};
use crate::yaml::{self, Node};

/// The config file path, like `--config.file`.
pub(crate) const ENV_CONFIG_FILE: &str = "HONCHO_EXPORTER_CONFIG_FILE";
/// Read by the build (`option_env!` in `lib.rs`), so a run-time value is ignored, not an error.
const ENV_BUILD_REVISION: &str = "HONCHO_EXPORTER_REVISION";

fn shape_of(key: &str) -> Option<(&'static str, Shape)> {
    table::setting(key).map(|setting| (setting.key, setting.shape))
}

/// Where a raw value came from; used to name it in errors and to rank precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This command-line flag (`--poll.interval`).
    Flag(&'static str),
}

impl Origin {
    /// The setting as the user wrote it, for the start of an error message.
    pub(crate) fn location(&self, key: &str) -> String {
        match self {
            Origin::File(path) => format!("config file {}: {key}", path.display()),
            Origin::Env(variable) => variable.clone(),
            Origin::Flag(flag) => (*flag).to_string(),
        }
    }

    /// Precedence: flags (3) > environment (2) > file (1).
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Origin::File(_) => 1,
            Origin::Env(_) => 2,
            Origin::Flag(_) => 3,
        }
    }
}

/// An unparsed value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct RawSetting {
    /// The value.
    pub(crate) value: RawValue,
    /// Its source, for errors.
    pub(crate) origin: Origin,
}

/// One `scopes:` entry from the file, fields unparsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawScope {
    /// `scopes[i]` position, for errors.
    pub(crate) index: usize,
    /// `name`.
    pub(crate) name: Option<String>,
    /// `workspaces`.
    pub(crate) workspaces: Vec<String>,
    /// `observer_id`.
    pub(crate) observer_id: Option<String>,
    /// `sender_id`.
    pub(crate) sender_id: Option<String>,
    /// `session_id`.
    pub(crate) session_id: Option<String>,
}

/// All layers merged by precedence, still unparsed.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    /// Winning value per canonical key.
    pub(crate) settings: BTreeMap<&'static str, RawSetting>,
    /// `HONCHO_EXPORTER_HONCHO_TOKEN`, if set.
    pub(crate) env_token: Option<Secret>,
    /// `HONCHO_EXPORTER_POSTGRES_PASSWORD`, if set.
    pub(crate) env_postgres_password: Option<Secret>,
    /// `scopes:` from the file, and the file's path for errors.
    pub(crate) scopes: Option<(PathBuf, Vec<RawScope>)>,
}

impl RawConfig {
    /// Sets `key` unless a value of higher precedence is already there.
    pub(crate) fn insert(&mut self, key: &'static str, value: RawValue, origin: Origin) {
        let replaces = self
            .settings
            .get(key)
            .is_none_or(|existing| existing.origin.rank() <= origin.rank());
        if replaces {
            self.settings.insert(key, RawSetting { value, origin });
        }
    }
}

fn invalid(origin: &Origin, key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::InvalidSetting {
        location: origin.location(key),
        problem: problem.into(),
    }
}

/// Reads the `HONCHO_EXPORTER_*` variables in `env` into `raw`. Variables without the prefix
/// are ignored; unknown ones with it are errors.
pub(crate) fn read_env(
    env: &BTreeMap<String, String>,
    raw: &mut RawConfig,
) -> Result<(), ConfigError> {
    for (variable, value) in env.range(ENV_PREFIX.to_string()..) {
        if !variable.starts_with(ENV_PREFIX) {
            break;
        }
        if read_env_secret(variable, value, raw)?
            || matches!(variable.as_str(), ENV_CONFIG_FILE | ENV_BUILD_REVISION)
        {
            continue;
        }
        let origin = Origin::Env(variable.clone());
        let known = SETTINGS
            .iter()
            .find(|setting| setting.env_var() == *variable);
        match known {
            Some(setting) if setting.shape == Shape::Scalar => {
                raw.insert(setting.key, RawValue::Scalar(value.clone()), origin);
            }
            Some(setting) => {
                raw.insert(setting.key, RawValue::List(split_list(value)), origin);
            }
            None if variable.starts_with("HONCHO_EXPORTER_SCOPES") => {
                return Err(ConfigError::InvalidSetting {
                    location: variable.clone(),
                    problem: "scopes can only be set in the config file (scopes:)".to_string(),
                });
            }
            None => return Err(unknown_env_variable(variable)),
        }
    }
    Ok(())
}

/// Reads the token or the database password from its variable; false for any other variable.
fn read_env_secret(variable: &str, value: &str, raw: &mut RawConfig) -> Result<bool, ConfigError> {
    let empty = |problem: &str| ConfigError::InvalidSetting {
        location: variable.to_string(),
        problem: problem.to_string(),
    };
    match variable {
        ENV_TOKEN => {
            if value.trim().is_empty() {
                return Err(empty(
                    "is set but empty; unset it when Honcho runs without auth",
                ));
            }
            raw.env_token = Some(Secret::new(value.trim().to_string()));
            Ok(true)
        }
        ENV_POSTGRES_PASSWORD => {
            if value.is_empty() {
                return Err(empty(
                    "is set but empty; unset it when the database needs no password",
                ));
            }
            raw.env_postgres_password = Some(Secret::new(value.to_string()));
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A `HONCHO_EXPORTER_*` variable that names no setting, with the closest known name.
fn unknown_env_variable(variable: &str) -> ConfigError {
    let names: Vec<String> = SETTINGS
        .iter()
        .map(table::Setting::env_var)
        .chain([
            ENV_TOKEN.to_string(),
            ENV_POSTGRES_PASSWORD.to_string(),
            ENV_CONFIG_FILE.to_string(),
        ])
        .collect();
    let hint = yaml::closest_key(variable, names.iter().map(String::as_str))
        .map(|name| format!(" (did you mean {name}?)"))
        .unwrap_or_default();
    ConfigError::InvalidSetting {
        location: variable.to_string(),
        problem: format!("unknown environment variable{hint}"),
    }
}

/// Reads the YAML config file at `path` into `raw` (lowest precedence).
pub(crate) fn read_file(path: &Path, raw: &mut RawConfig) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadConfigFile {
        path: path.to_path_buf(),
        source,
    })?;
    let root = yaml::parse_mapping(&text).map_err(|message| ConfigError::ConfigFileSyntax {
        path: path.to_path_buf(),
        message,
    })?;
    let origin = Origin::File(path.to_path_buf());
    let mut sections: Vec<&str> = SETTINGS
        .iter()
        .filter_map(|setting| setting.key.split_once('.').map(|(section, _)| section))
        .chain(["scopes"])
        .collect();
    sections.dedup();
    for (section, node) in root {
        if section == "scopes" {
            let scopes = read_scopes(&origin, node)?;
            raw.scopes = Some((path.to_path_buf(), scopes));
            continue;
        }
        if !sections.contains(&section.as_str()) {
            return Err(unknown_key(
                &origin,
                &section,
                &section,
                sections.iter().copied(),
            ));
        }
        let entries = match node {
            Node::Map(entries) => entries,
            Node::Null => continue,
            other => {
                return Err(invalid(
                    &origin,
                    &section,
                    format!("expected a mapping of settings, got {}", other.kind_name()),
                ));
            }
        };
        read_section(path, &origin, &section, entries, raw)?;
    }
    Ok(())
}

/// Reads the settings of one section (`poll:`) of the config file at `path` into `raw`.
fn read_section(
    path: &Path,
    origin: &Origin,
    section: &str,
    entries: BTreeMap<String, Node>,
    raw: &mut RawConfig,
) -> Result<(), ConfigError> {
    for (name, node) in entries {
        let key = format!("{section}.{name}");
        reject_secret_in_file(origin, &key)?;
        let Some((key, shape)) = shape_of(&key) else {
            let known = SETTINGS.iter().map(|setting| setting.key);
            return Err(unknown_key(origin, &key, &key, known));
        };
        if let Some(value) = raw_value_from_node(origin, key, shape, node)? {
            let value = relative_to_file(path, key, value);
            raw.insert(key, value, origin.clone());
        }
    }
    Ok(())
}

/// Secrets never come from the file: an error naming where to put `key` instead, if it is one.
fn reject_secret_in_file(origin: &Origin, key: &str) -> Result<(), ConfigError> {
    // (key, what it is, its file key, its variable).
    const SECRETS: [(&str, &str, &str, &str); 2] = [
        (
            "honcho.token",
            "token",
            "honcho.token_file",
            "HONCHO_EXPORTER_HONCHO_TOKEN",
        ),
        (
            "postgres.password",
            "password",
            "postgres.password_file",
            "HONCHO_EXPORTER_POSTGRES_PASSWORD",
        ),
    ];
    match SECRETS.iter().find(|(secret, ..)| *secret == key) {
        Some((_, what, file_key, variable)) => Err(invalid(
            origin,
            key,
            format!(
                "the {what} must not be written in the config file; put it in a file readable \
                 only by the exporter and set {file_key}, or set {variable}"
            ),
        )),
        None => Ok(()),
    }
}

/// A path setting's value ([`table::Setting::is_path`]): in the config file a relative path is
/// relative to the config file's directory (as in Prometheus), on the command line and in the
/// environment to the working directory.
fn relative_to_file(config_file: &Path, key: &str, value: RawValue) -> RawValue {
    let is_path = table::setting(key).is_some_and(|setting| setting.is_path);
    match value {
        RawValue::Scalar(text) if is_path && !text.trim().is_empty() => {
            let path = Path::new(&text);
            match config_file.parent() {
                Some(directory) if path.is_relative() => {
                    RawValue::Scalar(directory.join(path).to_string_lossy().into_owned())
                }
                _ => RawValue::Scalar(text),
            }
        }
        other => other,
    }
}

/// An "unknown key" error for `key`, suggesting the entry of `known` closest to `typed` (the
/// full key, or just the last part when `known` lists bare field names).
fn unknown_key<'a>(
    origin: &Origin,
    key: &str,
    typed: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> ConfigError {
    let hint = yaml::closest_key(typed, known)
        .map(|name| format!(" (did you mean {name}?)"))
        .unwrap_or_default();
    invalid(origin, key, format!("unknown key{hint}"))
}

fn scalar_from_node(origin: &Origin, key: &str, node: Node) -> Result<String, ConfigError> {
    match node {
        Node::Scalar(text) => Ok(text),
        other => Err(invalid(
            origin,
            key,
            format!("expected a single value, got {}", other.kind_name()),
        )),
    }
}

fn list_from_node(origin: &Origin, key: &str, node: Node) -> Result<Vec<String>, ConfigError> {
    match node {
        Node::Null => Ok(Vec::new()),
        Node::Scalar(text) => Ok(split_list(&text)),
        Node::List(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| scalar_from_node(origin, &format!("{key}[{index}]"), item))
            .collect(),
        Node::Map(_) => Err(invalid(origin, key, "expected a list, got a mapping")),
    }
}

fn raw_value_from_node(
    origin: &Origin,
    key: &str,
    shape: Shape,
    node: Node,
) -> Result<Option<RawValue>, ConfigError> {
    match (shape, node) {
        (_, Node::Null) => Ok(None),
        (Shape::Scalar, node) => Ok(Some(RawValue::Scalar(scalar_from_node(origin, key, node)?))),
        (Shape::List, node) => Ok(Some(RawValue::List(list_from_node(origin, key, node)?))),
    }
}

const SCOPE_KEYS: [&str; 5] = [
    "name",
    "workspaces",
    "observer_id",
    "sender_id",
    "session_id",
];

fn read_scopes(origin: &Origin, node: Node) -> Result<Vec<RawScope>, ConfigError> {
    let items = match node {
        Node::Null => return Ok(Vec::new()),
        Node::List(items) => items,
        other => {
            return Err(invalid(
                origin,
                "scopes",
                format!("expected a list of scopes, got {}", other.kind_name()),
            ));
        }
    };
    let mut scopes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("scopes[{index}]");
        let Node::Map(fields) = item else {
            return Err(invalid(
                origin,
                &at,
                format!(
                    "expected a mapping with name, workspaces, observer_id, sender_id, \
                     session_id; got {}",
                    item.kind_name()
                ),
            ));
        };
        let mut scope = RawScope {
            index,
            ..RawScope::default()
        };
        for (field, value) in fields {
            let key = format!("{at}.{field}");
            if !SCOPE_KEYS.contains(&field.as_str()) {
                return Err(unknown_key(origin, &key, &field, SCOPE_KEYS));
            }
            if matches!(value, Node::Null) {
                continue;
            }
            match field.as_str() {
                "name" => scope.name = Some(scalar_from_node(origin, &key, value)?),
                "workspaces" => scope.workspaces = list_from_node(origin, &key, value)?,
                "observer_id" => scope.observer_id = Some(scalar_from_node(origin, &key, value)?),
                "sender_id" => scope.sender_id = Some(scalar_from_node(origin, &key, value)?),
                // `session_id`, the one key of SCOPE_KEYS left.
                _ => scope.session_id = Some(scalar_from_node(origin, &key, value)?),
            }
        }
        scopes.push(scope);
    }
    Ok(scopes)
}
