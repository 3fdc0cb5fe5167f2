//! Value parsers: the text of one setting (as written in a flag, a variable or the file) → a
//! typed value, or a description of the problem without its location (the caller adds where the
//! value came from). The settings table (`table.rs`) names one of these per setting.
//!
//! Pure, apart from the file parsers (`parse_web_config_file`, `parse_token_file`,
//! `parse_ca_file`), which read the file to check it is usable. Never echoes a token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

use super::postgres_url::ConnectOptions;
use super::secret_file::{SecretFileError, Trim, read_secret_file};

use super::duration::parse_duration;
use super::{GenerationOverride, LogFormat, Source};
use crate::web_config::WebConfig;

pub(crate) fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("invalid URL {text:?}: {error}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "URL {text:?} must use http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {text:?} has no host"));
    }
    Ok(url)
}

pub(crate) fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    // Prometheus exporters accept `:9100` for "every interface".
    let candidate = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    candidate.parse().map_err(|_| {
        format!(
            "invalid listen address {text:?}: expected IP:port, e.g. 0.0.0.0:21794, \
             [::]:21794 or :21794"
        )
    })
}

pub(crate) fn parse_telemetry_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.len() < 2 || text.contains(char::is_whitespace) {
        return Err(format!(
            "invalid path {text:?}: must start with / and name a path other than /, e.g. /metrics"
        ));
    }
    Ok(text.to_string())
}

pub(crate) fn parse_web_config_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    WebConfig::load(&path).map_err(|error| error.to_string())?;
    Ok(path)
}

pub(crate) fn parse_token_file(text: &str) -> Result<PathBuf, String> {
    parse_secret_file(text, "token file")
}

pub(crate) fn parse_ca_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    let pem = std::fs::read(&path)
        .map_err(|error| format!("cannot read CA file {}: {error}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("CA file {} is not valid PEM: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "CA file {} contains no PEM certificate",
            path.display()
        ));
    }
    Ok(path)
}

pub(crate) fn parse_generation(text: &str) -> Result<GenerationOverride, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(GenerationOverride::Auto),
        "a" => Ok(GenerationOverride::A),
        "b" => Ok(GenerationOverride::B),
        "c" => Ok(GenerationOverride::C),
        _ => Err(format!(
            "unknown API generation {text:?}; expected auto, a, b or c"
        )),
    }
}

pub(crate) fn parse_log_level(text: &str) -> Result<String, String> {
    let level = text.trim().to_ascii_lowercase();
    match level.as_str() {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(level),
        _ => Err(format!(
            "unknown log level {text:?}; expected error, warn, info, debug or trace"
        )),
    }
}

pub(crate) fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "logfmt" => Ok(LogFormat::Logfmt),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "unknown log format {text:?}; expected logfmt or json"
        )),
    }
}

pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {text:?}")),
    }
}

pub(crate) fn parse_page_size(text: &str) -> Result<u32, String> {
    let size: u32 = at_least(1)(text)?;
    if size > 100 {
        return Err(format!(
            "page size must be between 1 and 100 (Honcho's limit), got {size}"
        ));
    }
    Ok(size)
}

pub(crate) fn parse_positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number, got {text:?}"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("must be a positive number, got {text:?}"));
    }
    Ok(rate)
}

pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("must be longer than zero, got {text:?}"));
    }
    Ok(duration)
}

/// An integer parser with a lower bound, for counts and limits.
pub(crate) fn at_least<T>(minimum: T) -> impl Fn(&str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |text| {
        let value: T = text
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number, got {text:?}"))?;
        if value < minimum {
            return Err(format!("must be at least {minimum}, got {value}"));
        }
        Ok(value)
    }
}

pub(crate) fn parse_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("workspace names must not be empty (check for a stray comma)".to_string());
    }
    Ok(name.to_string())
}

pub(crate) fn parse_anchored_regex(text: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{text})$")).map_err(|error| format!("invalid regex {text:?}: {error}"))
}

pub(crate) fn parse_source(text: &str) -> Result<Source, String> {
    match text.trim() {
        "api" => Ok(Source::Api),
        "postgres" => Ok(Source::Postgres),
        _ => Err(format!("unknown source {text:?}; expected api or postgres")),
    }
}

/// `postgres.url`, parsed once here (see [`super::postgres_url`]).
pub(crate) fn parse_postgres_url(text: &str) -> Result<ConnectOptions, String> {
    ConnectOptions::parse(text.trim()).map_err(|error| error.0)
}

pub(crate) fn parse_password_file(text: &str) -> Result<PathBuf, String> {
    parse_secret_file(text, "password file")
}

/// A secret file that is readable and not blank now (it is followed later by
/// [`super::secret_file::SecretFile`]). The contents are never echoed.
fn parse_secret_file(text: &str, what: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match read_secret_file(&path, Trim::Whitespace) {
        Ok(_) => Ok(path),
        Err(SecretFileError::Unreadable(error)) => {
            Err(format!("cannot read {what} {}: {error}", path.display()))
        }
        Err(_) => Err(format!("{what} {} is empty", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_accepts_bare_port_as_every_interface() {
        assert_eq!(
            parse_listen_address(":9999"),
            Ok("0.0.0.0:9999".parse().expect("valid"))
        );
        assert!(parse_listen_address("localhost").is_err());
    }

    #[test]
    fn regexes_are_anchored() {
        let regex = parse_anchored_regex("prod-.*|staging").expect("valid");
        assert!(regex.is_match("prod-eu"));
        assert!(regex.is_match("staging"));
        assert!(!regex.is_match("my-staging"));
        assert!(!regex.is_match("staging-2"));
    }

    #[test]
    fn urls_need_http_scheme_and_host() {
        assert!(parse_url("https://honcho.example:8000").is_ok());
        assert!(parse_url("ftp://honcho.example").is_err());
        assert!(parse_url("honcho.example:8000").is_err());
        assert!(parse_url("http://").is_err());
    }
}
