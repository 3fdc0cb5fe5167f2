//! `postgres.url`, parsed once at the configuration boundary into the options the database
//! source connects with: libpq's `sslmode` values mapped onto rustls' behaviour, every other
//! option checked against what the driver knows, a password refused (it has its own file or
//! variable, so it never shows in `ps`, logs or the config file). Pure: no I/O. Never echoes
//! the URL (it may hold a password).

use std::str::FromStr;

use tokio_postgres::config::SslMode;

/// `application_name` of every session, so DBAs can see (and limit) the exporter.
pub const APPLICATION_NAME: &str = "honcho_exporter";

/// The connection options the driver understands in a URL (besides `sslmode`, handled here,
/// and the certificate files and password, refused).
const DRIVER_OPTIONS: [&str; 16] = [
    "user",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

const NO_PASSWORD: &str =
    "must not contain a password; use postgres.password_file or HONCHO_EXPORTER_POSTGRES_PASSWORD";

/// How TLS is used (libpq's `sslmode`). rustls always verifies the certificate chain and the
/// host name when TLS is in use, so `require` and `verify-ca` check as much as `verify-full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `disable`: plain TCP.
    Disable,
    /// `prefer` (libpq's default): TLS if the server offers it.
    Prefer,
    /// `require`, `verify-ca`, `verify-full`: TLS or no connection.
    Require,
}

/// The parsed `postgres.url`: driver options without TLS settings, plus the TLS mode.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The driver's options (no password; `application_name` and `sslmode` set).
    pub config: tokio_postgres::Config,
    /// The TLS mode from `sslmode`.
    pub tls: TlsMode,
    /// The URL as configured (it holds no password).
    text: String,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio_postgres::Config's Debug redacts the password; it is never set here anyway.
        f.debug_struct("ConnectOptions")
            .field("hosts", &self.config.get_hosts())
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why the URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid postgres.url: {0}")]
pub struct UrlError(pub(crate) String);

impl ConnectOptions {
    /// Parses a `postgres://` URL; `sslmode` takes libpq's values (`disable`, `allow`,
    /// `prefer`, `require`, `verify-ca`, `verify-full`); `sslrootcert` is refused in favour of
    /// `postgres.ca_file`; any other option must be one the driver knows, and is named when not.
    pub fn parse(text: &str) -> Result<ConnectOptions, UrlError> {
        let mut url =
            url::Url::parse(text).map_err(|error| UrlError(format!("not a URL: {error}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(UrlError(format!(
                "expected a postgres:// URL, got scheme {:?}",
                url.scheme()
            )));
        }
        if url.password().is_some() {
            return Err(UrlError(NO_PASSWORD.to_string()));
        }
        let mut tls = TlsMode::Prefer;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => tls = tls_mode(&value)?,
                "sslrootcert" | "sslcert" | "sslkey" => {
                    return Err(UrlError(format!(
                        "{key} is not supported in the URL; use postgres.ca_file"
                    )));
                }
                "password" => return Err(UrlError(NO_PASSWORD.to_string())),
                known if DRIVER_OPTIONS.contains(&known) => {
                    kept.push((key.into_owned(), value.into_owned()));
                }
                unknown => {
                    return Err(UrlError(format!(
                        "unknown option {unknown:?}; expected one of sslmode, {}",
                        DRIVER_OPTIONS.join(", ")
                    )));
                }
            }
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        let mut config = tokio_postgres::Config::from_str(url.as_str())
            .map_err(|error| UrlError(error.to_string()))?;
        config.application_name(APPLICATION_NAME);
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require => SslMode::Require,
        });
        Ok(ConnectOptions {
            config,
            tls,
            text: text.to_string(),
        })
    }
}

impl ConnectOptions {
    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// libpq's `sslmode` values, as rustls can honour them.
fn tls_mode(value: &str) -> Result<TlsMode, UrlError> {
    match value {
        "disable" => Ok(TlsMode::Disable),
        // `allow` tries plain TCP first; TLS when offered is at least as safe.
        "allow" | "prefer" => Ok(TlsMode::Prefer),
        "require" | "verify-ca" | "verify-full" => Ok(TlsMode::Require),
        other => Err(UrlError(format!(
            "unknown sslmode {other:?}; expected disable, allow, prefer, require, verify-ca or verify-full"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_sslmodes_map_to_tls_modes() {
        let mode = |url: &str| ConnectOptions::parse(url).map(|options| options.tls).ok();
        assert_eq!(mode("postgres://u@h/db"), Some(TlsMode::Prefer));
        assert_eq!(
            mode("postgres://u@h/db?sslmode=disable"),
            Some(TlsMode::Disable)
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=require"),
            Some(TlsMode::Require)
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=verify-full"),
            Some(TlsMode::Require)
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=allow"),
            Some(TlsMode::Prefer)
        );
        assert_eq!(mode("postgres://u@h/db?sslmode=bogus"), None);
    }

    #[test]
    fn an_unknown_sslmode_lists_every_accepted_value() {
        let error = ConnectOptions::parse("postgres://u@h/db?sslmode=bogus")
            .expect_err("refused")
            .to_string();
        assert_eq!(
            error,
            "invalid postgres.url: unknown sslmode \"bogus\"; expected disable, allow, prefer, require, verify-ca or verify-full"
        );
    }

    #[test]
    fn an_unknown_option_is_named() {
        let error = ConnectOptions::parse("postgres://u@h/db?sslmod=require")
            .expect_err("refused")
            .to_string();
        assert!(
            error.starts_with(
                "invalid postgres.url: unknown option \"sslmod\"; expected one of sslmode, user,"
            ),
            "{error}"
        );
    }

    #[test]
    fn driver_options_pass_through() {
        let options = ConnectOptions::parse(
            "postgres://u@h/db?connect_timeout=3&target_session_attrs=read-write",
        )
        .expect("valid");
        assert_eq!(
            options.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
    }

    #[test]
    fn another_scheme_is_refused() {
        let error = ConnectOptions::parse("mysql://u@h/db")
            .expect_err("refused")
            .to_string();
        assert_eq!(
            error,
            "invalid postgres.url: expected a postgres:// URL, got scheme \"mysql\""
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        for url in [
            "postgres://u:hunter2@h/db",
            "postgres://u@h/db?password=hunter2",
        ] {
            let error = ConnectOptions::parse(url).expect_err("refused").to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("postgres.password_file"), "{error}");
        }
    }

    #[test]
    fn the_application_name_is_set() {
        let options =
            ConnectOptions::parse("postgres://u@h:5433/db?sslmode=disable").expect("valid");
        assert_eq!(
            options.config.get_application_name(),
            Some(APPLICATION_NAME)
        );
        assert_eq!(options.config.get_ports(), [5433]);
    }
}
