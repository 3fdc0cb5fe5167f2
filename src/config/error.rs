//! [`ConfigError`]: everything that can go wrong turning flags, environment and the config file
//! into [`super::Settings`], worded for the person who wrote the configuration.
//!
//! Messages name the setting the way the user spelled it (`--poll.interval`,
//! `HONCHO_EXPORTER_POLL_INTERVAL`, or `poll.interval` in the named config file) and never
//! contain the Honcho token.

use std::path::PathBuf;

/// Why the command line, environment or config file could not be turned into a command.
///
/// `Display` is the complete message for the user. [`ConfigError::exit_code`] says how the
/// process should end: `--help` is reported through this type too (exit code 0, printed to
/// stdout), so `main` has a single path for "print this and exit".
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` (or `help`) was asked for: the rendered help text. Not a failure.
    #[error("{0}")]
    Help(String),
    /// The command line did not parse (unknown flag, missing value, …): clap's rendered message
    /// with usage.
    #[error("{0}")]
    Usage(String),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadConfigFile {
        /// The path as given.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The config file is not a YAML mapping.
    #[error("config file {path} is not valid YAML: {message}")]
    ConfigFileSyntax {
        /// The path as given.
        path: PathBuf,
        /// The YAML parser's message (with line and column when it gives them).
        message: String,
    },
    /// One setting is wrong: an unknown key, an unparsable value, a file that cannot be read.
    #[error("{location}: {problem}")]
    InvalidSetting {
        /// Where the setting came from, as the user wrote it: `--poll.interval`,
        /// `HONCHO_EXPORTER_POLL_INTERVAL`, or `config file F: poll.interval`.
        location: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Settings that are each valid but contradict each other, e.g.
    /// `poll.timeout (20s) must be shorter than poll.interval (15s)`.
    #[error("{0}")]
    Inconsistent(String),
}

impl ConfigError {
    /// The process exit code for this outcome: 0 for help (a successful request), 2 for any
    /// configuration or usage error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Help(_) => 0,
            _ => 2,
        }
    }

    /// Whether the message belongs on stdout (help) rather than stderr (errors).
    pub fn is_help(&self) -> bool {
        matches!(self, ConfigError::Help(_))
    }
}
