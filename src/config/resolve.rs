//! Parsing and validation: merged raw layers ([`RawConfig`]) → [`Settings`], driven by the
//! settings table (`table.rs`).
//!
//! Every value error names the setting as the user wrote it (via its [`Origin`]); settings that
//! contradict each other are reported with their canonical keys and values. Reads the token
//! file, the CA file and the web config file to check they are usable; no network I/O. Never
//! puts the token into a message.

use std::collections::BTreeSet;

use super::duration::format_duration;
use super::error::ConfigError;
use super::parse::parse_name;
use super::sources::{Origin, RawConfig, RawScope};
use super::table::{Default, ENV_POSTGRES_PASSWORD, ENV_TOKEN, SETTINGS, Value, env_var_name};
use super::{Scope, Settings, Source, TokenSource};

fn located(origin: &Origin, key: &str, problem: String) -> ConfigError {
    ConfigError::InvalidSetting {
        location: origin.location(key),
        problem,
    }
}

/// Parses and validates the merged layers into settings: the defaults of the settings table,
/// then every setting some layer gave, in table order, then the defaults derived from other
/// settings (`poll.max_staleness` follows `poll.interval`), the token, the scopes, and the
/// checks across settings.
pub(crate) fn resolve(raw: &RawConfig) -> Result<Settings, ConfigError> {
    let env_token_wins = env_token_wins(raw)?;
    let env_password_wins = env_postgres_password_wins(raw)?;
    let mut settings = Settings::defaults();
    for setting in SETTINGS {
        let Some(given) = raw.settings.get(setting.key) else {
            continue;
        };
        if (setting.key == TOKEN_FILE && env_token_wins)
            || (setting.key == PASSWORD_FILE && env_password_wins)
        {
            continue;
        }
        (setting.apply)(&mut settings, &Value(&given.value))
            .map_err(|problem| located(&given.origin, setting.key, problem))?;
    }
    for setting in SETTINGS {
        if let Default::Derived { derive, .. } = setting.default
            && !raw.settings.contains_key(setting.key)
        {
            derive(&mut settings);
        }
    }
    if let (true, Some(secret)) = (env_token_wins, &raw.env_token) {
        settings.honcho.token = Some(TokenSource::Env(secret.clone()));
    }
    if let (true, Some(secret)) = (env_password_wins, &raw.env_postgres_password) {
        settings.postgres.password = Some(TokenSource::Env(secret.clone()));
    }
    if let Some((path, scopes)) = &raw.scopes {
        settings.scopes = resolve_scopes(&Origin::File(path.clone()), scopes)?;
    }
    check_consistency(&settings)?;
    Ok(settings)
}

const TOKEN_FILE: &str = "honcho.token_file";

/// Whether `HONCHO_EXPORTER_HONCHO_TOKEN` is the token source: it is set and `honcho.token_file`
/// is not set at a higher rank (a flag outranks the environment, the environment outranks the
/// file). Both in the environment is ambiguous: an error.
fn env_token_wins(raw: &RawConfig) -> Result<bool, ConfigError> {
    if raw.env_token.is_none() {
        return Ok(false);
    }
    match raw.settings.get(TOKEN_FILE).map(|setting| &setting.origin) {
        None | Some(Origin::File(_)) => Ok(true),
        Some(Origin::Flag(_)) => Ok(false),
        Some(Origin::Env(_)) => Err(ConfigError::Inconsistent(format!(
            "{ENV_TOKEN} and {} are both set; set only one",
            env_var_name(TOKEN_FILE)
        ))),
    }
}

const PASSWORD_FILE: &str = "postgres.password_file";

/// Whether `HONCHO_EXPORTER_POSTGRES_PASSWORD` is the password source, by the token's rules.
fn env_postgres_password_wins(raw: &RawConfig) -> Result<bool, ConfigError> {
    if raw.env_postgres_password.is_none() {
        return Ok(false);
    }
    match raw
        .settings
        .get(PASSWORD_FILE)
        .map(|setting| &setting.origin)
    {
        None | Some(Origin::File(_)) => Ok(true),
        Some(Origin::Flag(_)) => Ok(false),
        Some(Origin::Env(_)) => Err(ConfigError::Inconsistent(format!(
            "{ENV_POSTGRES_PASSWORD} and {} are both set; set only one",
            env_var_name(PASSWORD_FILE)
        ))),
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
    if settings.source == Source::Postgres {
        if settings.postgres.url.is_none() {
            return Err(ConfigError::Inconsistent(
                "poll.source: postgres needs postgres.url (e.g. \
                 postgres://honcho_exporter@db:5432/honcho?sslmode=verify-full)"
                    .to_string(),
            ));
        }
        if settings.postgres.statement_timeout >= poll.timeout {
            return Err(ConfigError::Inconsistent(format!(
                "postgres.statement_timeout ({}) must be shorter than poll.timeout ({})",
                format_duration(settings.postgres.statement_timeout),
                format_duration(poll.timeout)
            )));
        }
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
