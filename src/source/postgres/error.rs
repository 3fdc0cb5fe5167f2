//! The error taxonomy of the database source. Every error maps to a bounded `reason()` used as a
//! metric label (`connect`, `auth`, `permission`, `timeout`, `schema`, `query`); the
//! Display text (for logs) comes from the server or the driver and never contains the password:
//! the password is never part of the URL or of any statement, only of the authentication
//! exchange, whose errors carry the server's message alone.

/// Why a poll of Honcho's database failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The TCP/TLS connection could not be made or broke.
    #[error("cannot connect to Honcho's database: {0}")]
    Connect(String),
    /// The server refused the login (wrong password, unknown role, pg_hba).
    #[error("Honcho's database refused the login: {0}")]
    Auth(String),
    /// The role may not read a table or column it needs.
    #[error("the exporter's database role lacks a privilege: {0} (run deploy/postgres/grant.sql)")]
    Permission(String),
    /// The statement timeout (`postgres.statement_timeout`) cancelled the query.
    #[error("the query ran past postgres.statement_timeout: {0}")]
    Timeout(String),
    /// A table or column the source needs is missing: not a Honcho schema it can read.
    #[error("Honcho's schema does not match what the exporter reads: {0}")]
    Schema(String),
    /// Any other failure of a statement.
    #[error("query against Honcho's database failed: {0}")]
    Query(String),
    /// The password file could not be read.
    #[error("cannot read the database password: {0}")]
    Password(String),
}

impl PostgresError {
    /// A bounded label value naming the kind of failure (never error text).
    pub fn reason(&self) -> &'static str {
        match self {
            PostgresError::Connect(_) => "connect",
            PostgresError::Auth(_) | PostgresError::Password(_) => "auth",
            PostgresError::Permission(_) => "permission",
            PostgresError::Timeout(_) => "timeout",
            PostgresError::Schema(_) => "schema",
            PostgresError::Query(_) => "query",
        }
    }

    /// Whether the connection must be dropped and made anew (it broke, or never existed).
    /// The same error raised while logging in: anything the server said then is a
    /// connection or login problem (`connect`/`auth`), never a query's.
    pub fn at_login(self) -> Self {
        match self {
            PostgresError::Query(message)
            | PostgresError::Schema(message)
            | PostgresError::Timeout(message) => PostgresError::Connect(message),
            PostgresError::Permission(message) => PostgresError::Auth(message),
            other => other,
        }
    }

    pub fn needs_reconnect(&self) -> bool {
        matches!(
            self,
            PostgresError::Connect(_) | PostgresError::Auth(_) | PostgresError::Password(_)
        )
    }
}

/// SQLSTATE classes and codes that decide the reason (PostgreSQL, Appendix A).
const INVALID_AUTHORIZATION: &str = "28";
const INSUFFICIENT_PRIVILEGE: &str = "42501";
const QUERY_CANCELED: &str = "57014";
const UNDEFINED_TABLE: &str = "42P01";
const INVALID_CATALOG_NAME: &str = "3D000";
const UNDEFINED_COLUMN: &str = "42703";
const LOCK_NOT_AVAILABLE: &str = "55P03";
const CONNECTION_EXCEPTION: &str = "08";
const ADMIN_SHUTDOWN: &str = "57P";

/// Classifies a SQLSTATE and the server's message.
pub(crate) fn classify_sqlstate(code: &str, message: String) -> PostgresError {
    match code {
        INSUFFICIENT_PRIVILEGE => PostgresError::Permission(message),
        QUERY_CANCELED | LOCK_NOT_AVAILABLE => PostgresError::Timeout(message),
        UNDEFINED_TABLE | UNDEFINED_COLUMN => PostgresError::Schema(message),
        // The database named in the URL does not exist: a login problem, not a query's.
        INVALID_CATALOG_NAME => PostgresError::Connect(message),
        _ if code.starts_with(INVALID_AUTHORIZATION) => PostgresError::Auth(message),
        _ if code.starts_with(CONNECTION_EXCEPTION) || code.starts_with(ADMIN_SHUTDOWN) => {
            PostgresError::Connect(message)
        }
        _ => PostgresError::Query(message),
    }
}

impl From<tokio_postgres::Error> for PostgresError {
    fn from(error: tokio_postgres::Error) -> Self {
        if let Some(db) = error.as_db_error() {
            return classify_sqlstate(db.code().code(), db.message().to_string());
        }
        // No server error: the connection is gone or never was (I/O, TLS, closed), or the
        // driver could not authenticate (no password given for a password challenge).
        let text = error.to_string();
        if text.contains("password missing") || text.contains("authentication") {
            PostgresError::Auth(text)
        } else if error.is_closed() || std::error::Error::source(&error).is_some() {
            PostgresError::Connect(text)
        } else {
            PostgresError::Query(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_bounded_reasons() {
        let reason = |code: &str| classify_sqlstate(code, String::new()).reason();
        assert_eq!(reason("28P01"), "auth");
        assert_eq!(reason("28000"), "auth");
        assert_eq!(reason("42501"), "permission");
        assert_eq!(reason("57014"), "timeout");
        assert_eq!(reason("42703"), "schema");
        assert_eq!(reason("42P01"), "schema");
        assert_eq!(reason("08006"), "connect");
        assert_eq!(reason("57P01"), "connect");
        assert_eq!(reason("22012"), "query");
        assert_eq!(reason("3D000"), "connect");
    }

    #[test]
    fn a_dropped_column_reads_as_a_sentence() {
        let error = classify_sqlstate("42703", "column m.token_count does not exist".into());
        assert_eq!(
            error.to_string(),
            "Honcho's schema does not match what the exporter reads: column m.token_count does not exist"
        );
    }

    #[test]
    fn a_server_error_while_logging_in_is_a_login_problem() {
        let at_login = |code: &str| classify_sqlstate(code, String::new()).at_login().reason();
        assert_eq!(at_login("3D000"), "connect");
        assert_eq!(at_login("22012"), "connect");
        assert_eq!(at_login("28P01"), "auth");
        assert_eq!(at_login("42501"), "auth");
    }

    #[test]
    fn only_connection_level_failures_reconnect() {
        assert!(PostgresError::Connect(String::new()).needs_reconnect());
        assert!(PostgresError::Auth(String::new()).needs_reconnect());
        assert!(!PostgresError::Timeout(String::new()).needs_reconnect());
        assert!(!PostgresError::Permission(String::new()).needs_reconnect());
    }
}
