//! Parsing and validation: merged raw layers ([`RawConfig`]) → [`Settings`].
//!
//! Every value error names the setting as the user wrote it (via its [`Origin`]); settings that
//! contradict each other are reported with their canonical keys and values. Reads the token
//! file, the CA file and the web config file to check they are usable; no network I/O. Never
//! puts the token into a message.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

use super::duration::{format_duration, parse_duration};
use super::error::ConfigError;
use super::sources::{
    ENV_TOKEN, Origin, RawConfig, RawScope, RawSetting, RawValue, env_var_name, split_list,
};
use super::{GenerationOverride, LogFormat, Scope, Settings, TokenSource};
use crate::web_config::WebConfig;

/// Honcho's own default address (`uvicorn` on port 8000), used when no URL is configured.
pub const DEFAULT_HONCHO_URL: &str = "http://127.0.0.1:8000";

/// How long Honcho lets a stalled representation batch wait before claiming it anyway
/// (`DERIVER_REPRESENTATION_BATCH_MAX_AGE_SECONDS`); the default `overdue_after` adds one poll
/// interval to it.
const HONCHO_BATCH_MAX_AGE: Duration = Duration::from_secs(1800);

/// The default `poll.timeout` for an interval: min(10 s, 0.8 × interval). Like Prometheus'
/// `scrape_timeout` (10 s unless the interval is shorter), but strictly shorter than the
/// interval, which `poll.timeout` must be, with a fifth of the interval left for the rest of
/// the cycle.
pub fn default_poll_timeout(interval: Duration) -> Duration {
    Duration::from_secs(10).min(interval.mul_f64(0.8))
}

/// Looks values up in the merged layers and parses them, attaching the location to errors.
struct Lookup<'a> {
    raw: &'a RawConfig,
}

impl Lookup<'_> {
    fn setting(&self, key: &str) -> Option<&RawSetting> {
        self.raw.settings.get(key)
    }

    /// The parsed value of a scalar key, or `None` when no layer sets it.
    fn scalar<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(setting) = self.setting(key) else {
            return Ok(None);
        };
        let text = match &setting.value {
            RawValue::Scalar(text) => text.clone(),
            RawValue::List(items) => items.join(","),
        };
        parse(&text)
            .map(Some)
            .map_err(|problem| located(&setting.origin, key, problem))
    }

    /// The parsed items of a list key, or `None` when no layer sets it.
    fn list<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        let Some(setting) = self.setting(key) else {
            return Ok(None);
        };
        let items = match &setting.value {
            RawValue::Scalar(text) => split_list(text),
            RawValue::List(items) => items.clone(),
        };
        items
            .iter()
            .map(|item| parse(item).map_err(|problem| located(&setting.origin, key, problem)))
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    /// An optional scalar where an empty value means "unset" (so an environment variable can
    /// clear a value from the file).
    fn optional<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Option<T>>, ConfigError> {
        self.scalar(key, |text| {
            if text.trim().is_empty() {
                Ok(None)
            } else {
                parse(text).map(Some)
            }
        })
    }
}

fn located(origin: &Origin, key: &str, problem: String) -> ConfigError {
    ConfigError::InvalidSetting {
        location: origin.location(key),
        problem,
    }
}

/// Parses and validates the merged layers into settings.
pub(crate) fn resolve(raw: &RawConfig) -> Result<Settings, ConfigError> {
    let lookup = Lookup { raw };
    let default_url = Url::parse(DEFAULT_HONCHO_URL).expect("the default Honcho URL is valid");
    let url = lookup
        .scalar("honcho.url", parse_url)?
        .unwrap_or(default_url);
    let mut settings = Settings::with_url(url);

    // web
    if let Some(addresses) = lookup.list("web.listen_addresses", parse_listen_address)? {
        if addresses.is_empty() {
            let setting = lookup
                .setting("web.listen_addresses")
                .expect("a parsed list came from a setting");
            return Err(located(
                &setting.origin,
                "web.listen_addresses",
                "at least one listen address is needed".to_string(),
            ));
        }
        settings.web.listen_addresses = addresses;
    }
    if let Some(path) = lookup.scalar("web.telemetry_path", parse_telemetry_path)? {
        settings.web.telemetry_path = path;
    }
    if let Some(path) = lookup.optional("web.config_file", parse_web_config_file)? {
        settings.web.config_file = path;
    }
    if let Some(limit) = lookup.scalar("web.max_concurrent_requests", at_least(1))? {
        settings.web.max_concurrent_requests = limit;
    }
    if let Some(timeout) = lookup.scalar("web.request_timeout", positive_duration)? {
        settings.web.request_timeout = timeout;
    }

    // honcho
    settings.honcho.token = resolve_token(&lookup)?;
    if let Some(generation) = lookup.scalar("honcho.api_generation", parse_generation)? {
        settings.honcho.api_generation = generation;
    }
    if let Some(path) = lookup.optional("honcho.ca_file", parse_ca_file)? {
        settings.honcho.ca_file = path;
    }
    if let Some(bytes) = lookup.scalar("honcho.max_response_bytes", at_least(1))? {
        settings.honcho.max_response_bytes = bytes;
    }
    if let Some(rate) = lookup.scalar("honcho.max_requests_per_second", parse_positive_rate)? {
        settings.honcho.max_requests_per_second = rate;
    }
    if let Some(retries) = lookup.scalar("honcho.retries", at_least(0))? {
        settings.honcho.retries = retries;
    }
    if let Some(backoff) = lookup.scalar("honcho.retry_initial_backoff", positive_duration)? {
        settings.honcho.retry_initial_backoff = backoff;
    }
    if let Some(backoff) = lookup.scalar("honcho.retry_max_backoff", positive_duration)? {
        settings.honcho.retry_max_backoff = backoff;
    }

    // poll: defaults that derive from the interval follow an overridden interval.
    if let Some(interval) = lookup.scalar("poll.interval", positive_duration)? {
        settings.poll.interval = interval;
    }
    let interval = settings.poll.interval;
    settings.poll.max_staleness = lookup
        .scalar("poll.max_staleness", positive_duration)?
        .unwrap_or(interval * 3);
    settings.classify.overdue_after = lookup
        .scalar("classify.overdue_after", positive_duration)?
        .unwrap_or(HONCHO_BATCH_MAX_AGE + interval);
    settings.poll.timeout = lookup
        .scalar("poll.timeout", positive_duration)?
        .unwrap_or_else(|| default_poll_timeout(interval));
    if let Some(concurrency) = lookup.scalar("poll.concurrency", at_least(1))? {
        settings.poll.concurrency = concurrency;
    }

    // workspaces
    if let Some(names) = lookup.list("workspaces.static", parse_name)? {
        settings.workspaces.static_list = names;
    }
    if let Some(allow) = lookup.optional("workspaces.allow", parse_anchored_regex)? {
        settings.workspaces.allow = allow;
    }
    if let Some(deny) = lookup.optional("workspaces.deny", parse_anchored_regex)? {
        settings.workspaces.deny = deny;
    }

    // sessions, work units
    if let Some(limit) = lookup.scalar("sessions.max_per_workspace", at_least(0))? {
        settings.sessions.max_per_workspace = limit;
    }
    if let Some(enabled) = lookup.scalar("work_units.enabled", parse_bool)? {
        settings.work_units.enabled = enabled;
    }
    if let Some(size) = lookup.scalar("work_units.page_size", parse_page_size)? {
        settings.work_units.page_size = size;
    }
    if let Some(pages) = lookup.scalar("work_units.max_pages", at_least(1))? {
        settings.work_units.max_pages = pages;
    }
    if let Some(limit) = lookup.scalar("work_units.detail_limit", at_least(0))? {
        settings.work_units.detail_limit = limit;
    }

    // scopes, log, shard
    if let Some((path, scopes)) = &raw.scopes {
        settings.scopes = resolve_scopes(&Origin::File(path.clone()), scopes)?;
    }
    if let Some(level) = lookup.scalar("log.level", parse_log_level)? {
        settings.log.level = level;
    }
    if let Some(format) = lookup.scalar("log.format", parse_log_format)? {
        settings.log.format = format;
    }
    if let Some(count) = lookup.scalar("shard.count", at_least(1))? {
        settings.shard.count = count;
    }
    if let Some(index) = lookup.scalar("shard.index", at_least(0))? {
        settings.shard.index = index;
    }
    if let Some(factor) = lookup.scalar("poll.duty_factor", parse_duty_factor)? {
        settings.poll.duty_factor = factor;
    }

    check_consistency(&settings)?;
    Ok(settings)
}

/// The token source of highest precedence: `honcho.token_file` from any layer, or
/// `HONCHO_EXPORTER_HONCHO_TOKEN` (environment rank). Two sources at the same rank (both in the
/// environment) are ambiguous.
fn resolve_token(lookup: &Lookup<'_>) -> Result<Option<TokenSource>, ConfigError> {
    let from_file = || -> Result<Option<TokenSource>, ConfigError> {
        Ok(lookup
            .optional("honcho.token_file", parse_token_file)?
            .flatten()
            .map(TokenSource::File))
    };
    let env_token = lookup.raw.env_token.as_ref();
    match (env_token, lookup.setting("honcho.token_file")) {
        (None, _) => from_file(),
        (Some(secret), None) => Ok(Some(TokenSource::Env(secret.clone()))),
        (Some(secret), Some(token_file)) => match token_file.origin {
            // A flag outranks the environment.
            Origin::Flag(_) => from_file(),
            Origin::Env(_) => Err(ConfigError::Inconsistent(format!(
                "{ENV_TOKEN} and {} are both set; set only one",
                env_var_name("honcho.token_file")
            ))),
            // The environment outranks the file.
            Origin::File(_) => Ok(Some(TokenSource::Env(secret.clone()))),
        },
    }
}

fn check_consistency(settings: &Settings) -> Result<(), ConfigError> {
    let poll = &settings.poll;
    if poll.timeout >= poll.interval {
        return Err(ConfigError::Inconsistent(format!(
            "poll.timeout ({}) must be shorter than poll.interval ({})",
            format_duration(poll.timeout),
            format_duration(poll.interval)
        )));
    }
    if poll.max_staleness < poll.interval {
        return Err(ConfigError::Inconsistent(format!(
            "poll.max_staleness ({}) must not be shorter than poll.interval ({}), or every \
             value would be dropped before the next poll replaces it",
            format_duration(poll.max_staleness),
            format_duration(poll.interval)
        )));
    }
    let honcho = &settings.honcho;
    if honcho.retry_initial_backoff > honcho.retry_max_backoff {
        return Err(ConfigError::Inconsistent(format!(
            "honcho.retry_initial_backoff ({}) must not be longer than honcho.retry_max_backoff ({})",
            format_duration(honcho.retry_initial_backoff),
            format_duration(honcho.retry_max_backoff)
        )));
    }
    let shard = settings.shard;
    if shard.index >= shard.count {
        return Err(ConfigError::Inconsistent(format!(
            "shard.index ({}) must be less than shard.count ({}); shards are numbered from 0",
            shard.index, shard.count
        )));
    }
    Ok(())
}

fn resolve_scopes(origin: &Origin, raw_scopes: &[RawScope]) -> Result<Vec<Scope>, ConfigError> {
    let mut seen_names = BTreeSet::new();
    let mut scopes = Vec::with_capacity(raw_scopes.len());
    for raw in raw_scopes {
        let at = format!("scopes[{}]", raw.index);
        let name = match raw.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                return Err(located(
                    origin,
                    &format!("{at}.name"),
                    "every scope needs a non-empty name (its `scope` label value)".to_string(),
                ));
            }
        };
        if !seen_names.insert(name.clone()) {
            return Err(located(
                origin,
                &format!("{at}.name"),
                format!("duplicate scope name {name:?}; scope names must be unique"),
            ));
        }
        let workspaces = raw
            .workspaces
            .iter()
            .map(|workspace| parse_name(workspace))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| located(origin, &format!("{at}.workspaces"), problem))?;
        let filter = |value: &Option<String>, field: &str| -> Result<Option<String>, ConfigError> {
            match value.as_deref() {
                None => Ok(None),
                Some(text) if text.trim().is_empty() => Err(located(
                    origin,
                    &format!("{at}.{field}"),
                    "must not be empty (leave the key out instead)".to_string(),
                )),
                Some(text) => Ok(Some(text.to_string())),
            }
        };
        let observer_id = filter(&raw.observer_id, "observer_id")?;
        let sender_id = filter(&raw.sender_id, "sender_id")?;
        let session_id = filter(&raw.session_id, "session_id")?;
        if observer_id.is_none() && sender_id.is_none() && session_id.is_none() {
            return Err(located(
                origin,
                &at,
                format!(
                    "scope {name:?} has no filter; set at least one of observer_id, sender_id, \
                     session_id"
                ),
            ));
        }
        scopes.push(Scope {
            name,
            workspaces,
            observer_id,
            sender_id,
            session_id,
        });
    }
    Ok(scopes)
}

// ---- value parsers: text → value, or a problem description (no location) ----

fn parse_url(text: &str) -> Result<Url, String> {
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

fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
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

fn parse_telemetry_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.len() < 2 || text.contains(char::is_whitespace) {
        return Err(format!(
            "invalid path {text:?}: must start with / and name a path other than /, e.g. /metrics"
        ));
    }
    Ok(text.to_string())
}

fn parse_web_config_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    WebConfig::load(&path).map_err(|error| error.to_string())?;
    Ok(path)
}

fn parse_token_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    let contents = std::fs::read(&path)
        .map_err(|error| format!("cannot read token file {}: {error}", path.display()))?;
    // The contents are never echoed: only whether anything is there.
    if String::from_utf8_lossy(&contents).trim().is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(path)
}

fn parse_ca_file(text: &str) -> Result<PathBuf, String> {
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

fn parse_generation(text: &str) -> Result<GenerationOverride, String> {
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

fn parse_log_level(text: &str) -> Result<String, String> {
    let level = text.trim().to_ascii_lowercase();
    match level.as_str() {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(level),
        _ => Err(format!(
            "unknown log level {text:?}; expected error, warn, info, debug or trace"
        )),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "logfmt" => Ok(LogFormat::Logfmt),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "unknown log format {text:?}; expected logfmt or json"
        )),
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {text:?}")),
    }
}

fn parse_page_size(text: &str) -> Result<u32, String> {
    let size: u32 = at_least(1)(text)?;
    if size > 100 {
        return Err(format!(
            "page size must be between 1 and 100 (Honcho's limit), got {size}"
        ));
    }
    Ok(size)
}

fn parse_duty_factor(text: &str) -> Result<f64, String> {
    let factor: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number, got {text:?}"))?;
    if !factor.is_finite() || factor < 1.0 {
        return Err(format!("must be a number of at least 1, got {text:?}"));
    }
    Ok(factor)
}

fn parse_positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number, got {text:?}"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("must be a positive number, got {text:?}"));
    }
    Ok(rate)
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("must be longer than zero, got {text:?}"));
    }
    Ok(duration)
}

/// An integer parser with a lower bound, for counts and limits.
fn at_least<T>(minimum: T) -> impl Fn(&str) -> Result<T, String>
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

fn parse_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("workspace names must not be empty (check for a stray comma)".to_string());
    }
    Ok(name.to_string())
}

fn parse_anchored_regex(text: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{text})$")).map_err(|error| format!("invalid regex {text:?}: {error}"))
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
