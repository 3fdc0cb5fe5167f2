//! Configuration: raw inputs (flags, `HONCHO_EXPORTER_*` environment, YAML file) → validated
//! [`Settings`]. Precedence: flags > env > file > defaults. Unknown keys are errors.
//!
//! This module reads the config file and checks that the token file is readable; it does no
//! network I/O and never logs or prints the token.
//!
//! Entry point: [`parse_command`] (argv + environment → [`Command`]). Key names and the
//! environment mapping (`poll.interval` ↔ `HONCHO_EXPORTER_POLL_INTERVAL`,
//! `work_units.page_size` ↔ `HONCHO_EXPORTER_WORK_UNITS_PAGE_SIZE`, lists comma-separated,
//! `scopes` file-only, the token only as `HONCHO_EXPORTER_HONCHO_TOKEN` or via
//! `honcho.token_file`) are documented in `sources.rs`; the settings in [`table`]; `tests/data/config/full.yml` sets every
//! key. Paths in the file are relative to the file.
//!
//! Files: `table.rs` (the settings table: every setting declared once — key, flag, default,
//! help, parser — from which everything else follows), `cli.rs` (the clap command built from
//! the table, [`parse_command`]), `sources.rs` (file/env/flag layers), `resolve.rs` (table →
//! [`Settings`], the token's precedence, checks across settings), `parse.rs` (value parsers),
//! `duration.rs` (`15s`, `1m30s`), [`crate::yaml`] (YAML → tree, shared with `web_config`),
//! `error.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use url::Url;

mod cli;
mod duration;
mod error;
mod parse;
pub mod postgres_url;
mod raw;
mod resolve;
pub mod secret_file;
mod sources;
pub mod table;

pub use cli::{
    Command, DEFAULT_DEMO_SEED, DemoOptions, DoctorOptions, DoctorOutput, command, parse_command,
};
pub use error::ConfigError;
pub use table::{DEFAULT_HONCHO_URL, DEFAULT_LISTEN_ADDRESS};

/// Everything the exporter needs to run, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The exporter's own HTTP server.
    pub web: WebSettings,
    /// Where Honcho is and how to talk to it.
    pub honcho: HonchoSettings,
    /// The poll loop's timing and limits.
    pub poll: PollSettings,
    /// Which workspaces to poll.
    pub workspaces: WorkspaceSelection,
    /// Per-session series cap.
    pub sessions: SessionSettings,
    /// The work-units walk and its per-unit detail.
    pub work_units: WorkUnitSettings,
    /// What is exported of what is polled: the workspace ceiling and the detail switches.
    pub export: ExportSettings,
    /// Classification thresholds.
    pub classify: ClassifySettings,
    /// Thresholds of the verdicts (`/`, `/status`, `doctor`, `honcho_queue_verdict`).
    pub verdict: VerdictThresholds,
    /// Extra filtered status polls, exported under `honcho_queue_scope_items`.
    pub scopes: Vec<Scope>,
    /// Logging.
    pub log: LogSettings,
    /// Sharding across replicas.
    pub shard: ShardSettings,
    /// Where the queue numbers come from (`poll.source`: `api`, the default, or `postgres`).
    pub source: Source,
    /// The database source's connection (used with `poll.source: postgres`).
    pub postgres: PostgresSettings,
}

/// Where the queue numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Honcho's HTTP API (the default).
    Api,
    /// Honcho's Postgres database, read directly in one pass per cycle.
    Postgres,
}

impl Source {
    /// The `source` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Postgres => "postgres",
        }
    }
}

/// The thresholds of the verdict rules (settings `verdict.*`). Each matches a parameter of an
/// alert in `deploy/prometheus/honcho-exporter.rules.yml`; README says where each is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictThresholds {
    /// `deriver_idle` on every generation: pending work, nothing in progress and `completed`
    /// unchanged for this long (`HonchoDeriverIdle.window`, 35 m: longer than Honcho's batch max
    /// age, by when a live deriver has claimed even sub-threshold work).
    pub idle_window: Duration,
    /// `deriver_idle` on generation C: ready work unclaimed with nothing in progress anywhere for
    /// this long (`HonchoDeriverNotProcessing.for`, 10 m); in one look, the oldest ready item's
    /// age.
    pub not_processing_after: Duration,
    /// `stuck_in_progress`: the same oldest item in progress for this long
    /// (`HonchoWorkUnitInProgressTooLong.window`, 30 m; dreams take 5–15 m); in one look, the
    /// oldest in-progress item's age.
    pub stuck_after: Duration,
    /// `backlog`: ready work older than this (`HonchoOldestPendingItemTooOld.threshold_seconds`,
    /// 1 h), or ready work that never cleared and did not shrink over this window
    /// (`HonchoBacklogLagging.window`).
    pub backlog_after: Duration,
}

impl VerdictThresholds {
    /// All zero: the value before the settings table's defaults are applied.
    pub(crate) fn unset() -> Self {
        VerdictThresholds {
            idle_window: Duration::ZERO,
            not_processing_after: Duration::ZERO,
            stuck_after: Duration::ZERO,
            backlog_after: Duration::ZERO,
        }
    }

    /// The longest window a rule looks back over: how much history is kept.
    pub fn longest_window(&self) -> Duration {
        self.idle_window
            .max(self.not_processing_after)
            .max(self.stuck_after)
            .max(self.backlog_after)
    }
}

/// The database source's connection. Debug never shows the password (it is a [`TokenSource`]).
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/db?sslmode=…` without a password (`postgres.url`), parsed;
    /// required with `poll.source: postgres`.
    pub url: Option<postgres_url::ConnectOptions>,
    /// The password: a file (`postgres.password_file`, re-read when it changes) or
    /// `HONCHO_EXPORTER_POSTGRES_PASSWORD`; `None` for trust/peer/certificate logins.
    pub password: Option<TokenSource>,
    /// CA certificates (PEM) that sign the server's certificate; the system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// `statement_timeout` of the cycle's transaction (default 5 s, below the poll timeout).
    pub statement_timeout: Duration,
}

/// The exporter's own HTTP server.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Addresses to listen on (`--web.listen-address`, repeatable).
    pub listen_addresses: Vec<SocketAddr>,
    /// Path of the metrics endpoint (`--web.telemetry-path`, default `/metrics`).
    pub telemetry_path: String,
    /// exporter-toolkit style web config (TLS, basic auth), if any.
    pub config_file: Option<PathBuf>,
    /// Scrapes served at once; more wait (bounded), so scrapes cannot starve the poll loop.
    pub max_concurrent_requests: usize,
    /// Time budget for one request, headers included (slow clients are cut off).
    pub request_timeout: Duration,
}

/// Where Honcho is and how to talk to it.
#[derive(Debug, Clone)]
pub struct HonchoSettings {
    /// Base URL, e.g. `http://127.0.0.1:8000` (`--honcho.url`).
    pub url: Url,
    /// Where the bearer token comes from; `None` when Honcho runs with auth off.
    pub token: Option<TokenSource>,
    /// API generation: detected unless overridden.
    pub api_generation: GenerationOverride,
    /// Extra CA certificates (PEM) trusted for an `https` Honcho URL.
    pub ca_file: Option<PathBuf>,
    /// Honcho's `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS` (default 1024): the database source's
    /// stalled/ready threshold (the database does not store it).
    pub deriver_representation_batch_max_tokens: u64,
    /// Honcho's `DERIVER_FLUSH_ENABLED` (default false), for the database source.
    pub deriver_flush_enabled: bool,
    /// Largest response body accepted, in bytes; larger → `too_large`.
    pub max_response_bytes: usize,
    /// Upper bound on requests per second sent to Honcho by this exporter.
    pub max_requests_per_second: f64,
    /// Retries per request after the first attempt (5xx, 429, timeouts, connect errors).
    pub retries: u32,
    /// First backoff delay; doubled per retry, with jitter, capped by `retry_max_backoff`.
    pub retry_initial_backoff: Duration,
    /// Cap of one backoff delay (also caps an honoured `Retry-After`).
    pub retry_max_backoff: Duration,
}

/// Where the Honcho bearer token comes from. Debug output never shows the token.
#[derive(Clone)]
pub enum TokenSource {
    /// Read from this file (trimmed); re-read when the file changes, so rotation needs no restart.
    File(PathBuf),
    /// Given in the environment (`HONCHO_EXPORTER_HONCHO_TOKEN`).
    Env(Secret),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
            TokenSource::Env(_) => f.write_str("Env(<redacted>)"),
        }
    }
}

/// A secret string: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The API generation, forced or detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationOverride {
    /// Detect from the server's answers (the default).
    Auto,
    /// Force generation A (Honcho 2.x, `/v2/…/deriver/status`).
    A,
    /// Force generation B (Honcho 3.x without the split; no work-units).
    B,
    /// Force generation C (Honcho 3.x with the split and work-units).
    C,
}

/// The poll loop's timing and limits.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Time between poll cycle starts (`--poll.interval`, default 15 s).
    pub interval: Duration,
    /// Budget for one upstream request including retries (`--poll.timeout`, default
    /// min(10 s, 0.8 × interval)).
    pub timeout: Duration,
    /// Requests in flight to Honcho at once, across every workspace and endpoint
    /// (`--poll.concurrency`, default 4).
    pub concurrency: usize,
    /// The duty rule's k (`--poll.duty-factor`, default 4): a workspace's status poll, head or
    /// full walk starts no sooner than max(interval, k × its last busy time), so each keeps
    /// Honcho busy at most 1/k of the time.
    pub duty_factor: f64,
    /// Queue values older than this are dropped (`--poll.max-staleness`, default 3 × interval).
    pub max_staleness: Duration,
}

/// Which workspaces to poll.
#[derive(Debug, Clone)]
pub struct WorkspaceSelection {
    /// A static list (`--workspaces a,b`); empty means discover via `workspaces/list`.
    pub static_list: Vec<String>,
    /// Only workspaces whose name matches (anchored).
    pub allow: Option<Regex>,
    /// Workspaces whose name matches are skipped (anchored; applied after `allow`).
    pub deny: Option<Regex>,
}

/// Per-session series cap.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Sessions exported per workspace (top by pending items); the rest sum into `__other__`.
    pub max_per_workspace: usize,
}

/// What is exported of what is polled (README's series budget): the workspace ceiling, and the
/// detail families, each a large share of a workspace's series that an operator may not need.
#[derive(Debug, Clone, Copy)]
pub struct ExportSettings {
    /// `workspaces.max_exported`: workspaces exported in full (top by pending backlog); the
    /// rest are summed into `workspace="__other__"`, so one Prometheus copes with any number of
    /// workspaces. 0: no ceiling.
    pub max_exported_workspaces: usize,
    /// `honcho_queue_session_items`.
    pub session_items: bool,
    /// `honcho_queue_session_info`.
    pub session_info: bool,
    /// `honcho_queue_work_unit_age_seconds`, `…_tokens_until_threshold`, `…_pending_tokens`.
    pub work_unit_detail: bool,
}

/// The work-units walk and its per-unit detail.
#[derive(Debug, Clone)]
pub struct WorkUnitSettings {
    /// Whether to walk at all (generation C only).
    pub enabled: bool,
    /// Page size sent as `size` (1–100; default 100).
    pub page_size: u32,
    /// Pages walked per workspace per cycle at most; past it the walk is `page_cap`-truncated.
    pub max_pages: u32,
    /// Per-unit detail series per workspace (top problem units).
    pub detail_limit: usize,
}

/// Classification thresholds.
#[derive(Debug, Clone)]
pub struct ClassifySettings {
    /// A stalled unit whose oldest item is older than this is `overdue`
    /// (default: 1800 s, Honcho's batch max age, + one poll interval).
    pub overdue_after: Duration,
}

/// One configured scope: an extra status poll filtered by observer, sender and/or session name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The `scope` label value.
    pub name: String,
    /// Workspaces this scope applies to; empty = every polled workspace.
    pub workspaces: Vec<String>,
    /// `observer_id` query parameter.
    pub observer_id: Option<String>,
    /// `sender_id` query parameter.
    pub sender_id: Option<String>,
    /// `session_id` query parameter (a session *name*).
    pub session_id: Option<String>,
}

impl Scope {
    /// Whether the scope applies to `workspace` (an empty list: to every workspace).
    pub fn applies_to(&self, workspace: &str) -> bool {
        self.workspaces.is_empty() || self.workspaces.iter().any(|name| name == workspace)
    }
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `error|warn|info|debug|trace`.
    pub level: String,
    /// `logfmt` (human) or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable key=value lines.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Sharding across replicas: this replica polls the workspaces whose stable hash falls in its
/// shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSettings {
    /// Number of shards (≥ 1).
    pub count: u32,
    /// This replica's shard (0-based, < count).
    pub index: u32,
}

impl Settings {
    /// Defaults for everything (the settings table's), with Honcho at `url`. Used by `demo` and
    /// tests.
    pub fn with_url(url: Url) -> Self {
        let mut settings = Self::defaults();
        settings.honcho.url = url;
        settings
    }

    /// [`Settings::with_url`] with `poll.interval` set as a user would set it: the settings
    /// whose defaults follow the interval (`poll.timeout`, `poll.max_staleness`,
    /// `classify.overdue_after`) are derived from it by the settings table's own rules. Used by
    /// `demo`.
    pub fn with_url_and_poll_interval(url: Url, interval: Duration) -> Self {
        let mut settings = Self::text_defaults();
        settings.honcho.url = url;
        settings.poll.interval = interval;
        settings.derive_defaults();
        settings
    }

    /// Every setting at its default from the settings table ([`table::SETTINGS`]): text
    /// defaults parsed by each setting's own parser, then the derived ones.
    pub(crate) fn defaults() -> Self {
        let mut settings = Self::text_defaults();
        settings.derive_defaults();
        settings
    }

    /// The settings with a text default at it, the derived ones still unset.
    fn text_defaults() -> Self {
        let mut settings = Self::unset();
        for setting in table::SETTINGS {
            if let table::Default::Text(text) = setting.default {
                let value = raw::RawValue::Scalar(text.to_string());
                (setting.apply)(&mut settings, &table::Value(&value))
                    .expect("every default of the settings table parses (tested in table.rs)");
            }
        }
        settings
    }

    /// Sets every setting with a derived default from the settings already in place.
    fn derive_defaults(&mut self) {
        for setting in table::SETTINGS {
            if let table::Default::Derived { derive, .. } = setting.default {
                derive(self);
            }
        }
    }

    /// The values settings have before the table's defaults are applied: off, empty or zero.
    /// Settings without a default in the table ([`table::Default::Unset`]) keep them.
    fn unset() -> Self {
        Settings {
            web: WebSettings {
                listen_addresses: Vec::new(),
                telemetry_path: String::new(),
                config_file: None,
                max_concurrent_requests: 0,
                request_timeout: Duration::ZERO,
            },
            honcho: HonchoSettings {
                url: Url::parse(DEFAULT_HONCHO_URL).expect("the default Honcho URL is valid"),
                token: None,
                api_generation: GenerationOverride::Auto,
                ca_file: None,
                deriver_representation_batch_max_tokens: 0,
                deriver_flush_enabled: false,
                max_response_bytes: 0,
                max_requests_per_second: 0.0,
                retries: 0,
                retry_initial_backoff: Duration::ZERO,
                retry_max_backoff: Duration::ZERO,
            },
            poll: PollSettings {
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                concurrency: 0,
                duty_factor: 0.0,
                max_staleness: Duration::ZERO,
            },
            workspaces: WorkspaceSelection {
                static_list: Vec::new(),
                allow: None,
                deny: None,
            },
            sessions: SessionSettings {
                max_per_workspace: 0,
            },
            work_units: WorkUnitSettings {
                enabled: false,
                page_size: 0,
                max_pages: 0,
                detail_limit: 0,
            },
            export: ExportSettings {
                max_exported_workspaces: 0,
                session_items: false,
                session_info: false,
                work_unit_detail: false,
            },
            classify: ClassifySettings {
                overdue_after: Duration::ZERO,
            },
            verdict: VerdictThresholds::unset(),
            scopes: Vec::new(),
            log: LogSettings {
                level: String::new(),
                format: LogFormat::Logfmt,
            },
            shard: ShardSettings { count: 0, index: 0 },
            source: Source::Api,
            postgres: PostgresSettings {
                url: None,
                password: None,
                ca_file: None,
                statement_timeout: Duration::ZERO,
            },
        }
    }
}
