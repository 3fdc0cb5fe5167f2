//! The vocabulary every configuration layer and the settings table share: a value as written
//! ([`RawValue`]), whether a setting holds one value or a list ([`Shape`]), the list syntax of
//! env and flags, the environment prefix. Pure; no I/O.

/// Whether a setting holds one value or a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One value.
    Scalar,
    /// A list: YAML sequence in the file, comma-separated in env and flags.
    List,
}

/// Prefix of every environment variable the exporter reads.
pub(crate) const ENV_PREFIX: &str = "HONCHO_EXPORTER_";
/// An unparsed value: one string, or a list of strings for [`Shape::List`] keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// One value as written.
    Scalar(String),
    /// List items as written.
    List(Vec<String>),
}

/// Splits a comma-separated list; an empty or blank string is the empty list. Items are trimmed
/// but empty items are kept so that validation can reject them by name.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    text.split(',')
        .map(|item| item.trim().to_string())
        .collect()
}
