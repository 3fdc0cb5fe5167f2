//! The settings table: every setting declared once — its key, its flag (if any), its default,
//! its help text and how its value is parsed into [`Settings`] — in [`SETTINGS`]. Everything
//! else follows from it: the clap arguments (`cli.rs`), the environment variable names
//! ([`Setting::env_var`]), the keys accepted in the YAML file (`sources.rs`), the defaults
//! ([`Settings::with_url`]) and the configuration table of `README.md`
//! ([`markdown_reference`], checked by `tests/integration/settings_table.rs`).
//!
//! Adding a setting is one entry here (plus its field in [`Settings`] and a test). The order of
//! the entries is the order of `--help` and of the README table.
//!
//! Owns declarations only: no I/O beyond what a value parser does (`parse.rs`), and the layering
//! of flags > environment > file lives in `sources.rs` and `resolve.rs`.

use std::time::Duration;

use super::parse::{
    at_least, parse_anchored_regex, parse_bool, parse_ca_file, parse_generation,
    parse_listen_address, parse_log_format, parse_log_level, parse_name, parse_page_size,
    parse_password_file, parse_positive_rate, parse_postgres_url, parse_source,
    parse_telemetry_path, parse_token_file, parse_url, parse_web_config_file, positive_duration,
};
use super::raw::{ENV_PREFIX, RawValue, Shape, split_list};
use super::{Settings, TokenSource};

/// Honcho's own default address (`uvicorn` on port 8000), used when no URL is configured.
pub const DEFAULT_HONCHO_URL: &str = "http://127.0.0.1:8000";

/// The default `--web.listen-address`. 9100–9999 (the Prometheus default-port allocation range)
/// is fully allocated; 21794 is outside it and below the Linux ephemeral range.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:21794";

/// How long Honcho lets a stalled representation batch wait before claiming it anyway
/// (`DERIVER_REPRESENTATION_BATCH_MAX_AGE_SECONDS`); the default `overdue_after` adds one poll
/// interval to it.
const HONCHO_BATCH_MAX_AGE: Duration = Duration::from_secs(1800);

/// The environment variable that gives the token itself (there is no key, flag or file entry
/// for the token: only this variable or the file named by `honcho.token_file`).
pub const ENV_TOKEN: &str = "HONCHO_EXPORTER_HONCHO_TOKEN";

/// The environment variable that gives the database password itself (the database source's
/// counterpart of [`ENV_TOKEN`]: no key, flag or file entry; or `postgres.password_file`).
pub const ENV_POSTGRES_PASSWORD: &str = "HONCHO_EXPORTER_POSTGRES_PASSWORD";

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// The canonical key, `<section>.<name>`: the YAML nesting, and (upper-cased, `.` → `_`,
    /// prefixed with `HONCHO_EXPORTER_`) the environment variable.
    pub key: &'static str,
    /// The command-line flag, if the setting has one.
    pub flag: Flag,
    /// The placeholder of the flag's value in `--help` (`DURATION`, `N`, `FILE`…).
    pub value_name: &'static str,
    /// One value, or a list (YAML sequence; comma-separated in the environment).
    pub shape: Shape,
    /// A file path: in the config file, relative to the config file's directory.
    pub is_path: bool,
    /// The default, as text parsed by [`Setting::apply`] like any other value.
    pub default: Default,
    /// One line for `--help` and the README (no final period).
    pub help: &'static str,
    /// More for the README only (may be empty).
    pub details: &'static str,
    /// Parses `value` and stores it in `settings`; `Err` is the problem without its location.
    pub apply: fn(&mut Settings, &Value<'_>) -> Result<(), String>,
}

/// How a setting is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// File and environment only.
    None,
    /// `--flag VALUE`, the last one wins (a list setting takes a comma-separated value).
    Single(&'static str),
    /// `--flag VALUE`, repeatable: each occurrence is one item of a list setting.
    Repeated(&'static str),
}

impl Flag {
    /// The flag with its leading `--`, if any.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Flag::None => None,
            Flag::Single(name) | Flag::Repeated(name) => Some(name),
        }
    }
}

/// A setting's default.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// This text, parsed by the setting's own parser.
    Text(&'static str),
    /// Computed from other settings when no layer sets this one; `shown` describes it.
    Derived {
        /// How `--help` and the README describe it (`3 × poll.interval`).
        shown: &'static str,
        /// Sets the value from the settings already resolved.
        derive: fn(&mut Settings),
    },
    /// No value: the feature is off or the list is empty; `shown` says what that means (may
    /// be empty).
    Unset {
        /// How the README describes the unset state (`discover`), or empty.
        shown: &'static str,
    },
}

/// The raw value of one setting as a layer gave it, with parsing helpers for
/// [`Setting::apply`].
#[derive(Debug, Clone, Copy)]
pub struct Value<'a>(pub(crate) &'a RawValue);

impl Value<'_> {
    /// One parsed value (a list given for it is read as its comma-joined text).
    pub fn scalar<T>(&self, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, String> {
        match self.0 {
            RawValue::Scalar(text) => parse(text),
            RawValue::List(items) => parse(&items.join(",")),
        }
    }

    /// One parsed value, where an empty value means "unset" (so the environment can clear a
    /// value from the file).
    pub fn optional<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        self.scalar(|text| {
            if text.trim().is_empty() {
                Ok(None)
            } else {
                parse(text).map(Some)
            }
        })
    }

    /// Every item parsed (a single value is split at commas).
    pub fn list<T>(&self, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
        let items = match self.0 {
            RawValue::Scalar(text) => split_list(text),
            RawValue::List(items) => items.clone(),
        };
        items.iter().map(|item| parse(item)).collect()
    }
}

impl Setting {
    /// The environment variable: `poll.interval` → `HONCHO_EXPORTER_POLL_INTERVAL`.
    pub fn env_var(&self) -> String {
        env_var_name(self.key)
    }

    /// The default as `--help` and the README show it, if there is one to show.
    pub fn default_shown(&self) -> Option<&'static str> {
        match self.default {
            Default::Text(text) => Some(text),
            Default::Derived { shown, .. } => Some(shown),
            Default::Unset { .. } => None,
        }
    }

    /// The help line of the flag: the help, and `[default: …]` when there is a default.
    pub fn flag_help(&self) -> String {
        match self.default_shown() {
            Some(default) => format!("{}. [default: {default}]", self.help),
            None => self.help.to_string(),
        }
    }
}

/// The environment variable for a canonical key: `poll.interval` → `HONCHO_EXPORTER_POLL_INTERVAL`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The setting with this canonical key.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.key == key)
}

/// Every setting, in `--help` order.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "web.listen_addresses",
        flag: Flag::Repeated("--web.listen-address"),
        value_name: "ADDRESS",
        shape: Shape::List,
        is_path: false,
        default: Default::Text(DEFAULT_LISTEN_ADDRESS),
        help: "Address to listen on for the web interface and telemetry; repeat for several",
        details: "21794 is outside the fully allocated 9100–9999 exporter range.",
        apply: |settings, value| {
            let addresses = value.list(parse_listen_address)?;
            if addresses.is_empty() {
                return Err("at least one listen address is needed".to_string());
            }
            settings.web.listen_addresses = addresses;
            Ok(())
        },
    },
    Setting {
        key: "web.telemetry_path",
        flag: Flag::Single("--web.telemetry-path"),
        value_name: "PATH",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("/metrics"),
        help: "Path under which to expose metrics",
        details: "",
        apply: |settings, value| {
            settings.web.telemetry_path = value.scalar(parse_telemetry_path)?;
            Ok(())
        },
    },
    Setting {
        key: "web.config_file",
        flag: Flag::Single("--web.config.file"),
        value_name: "FILE",
        shape: Shape::Scalar,
        is_path: true,
        default: Default::Unset { shown: "" },
        help: "exporter-toolkit web config file (TLS, basic auth)",
        details: "[exporter-toolkit web config](https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md): \
                  TLS, mTLS, `basic_auth_users` (bcrypt), headers. `/-/healthy` and `/-/ready` \
                  stay open for probes.",
        apply: |settings, value| {
            settings.web.config_file = value.optional(parse_web_config_file)?;
            Ok(())
        },
    },
    Setting {
        key: "web.max_concurrent_requests",
        flag: Flag::Single("--web.max-concurrent-requests"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("16"),
        help: "Scrape requests served at once",
        details: "More get 503 (scrapes cannot starve the poll loop).",
        apply: |settings, value| {
            settings.web.max_concurrent_requests = value.scalar(at_least(1))?;
            Ok(())
        },
    },
    Setting {
        key: "web.request_timeout",
        flag: Flag::None,
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("10s"),
        help: "Budget of one response, headers included (slow clients are cut off)",
        details: "",
        apply: |settings, value| {
            settings.web.request_timeout = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.url",
        flag: Flag::Single("--honcho.url"),
        value_name: "URL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text(DEFAULT_HONCHO_URL),
        help: "Base URL of Honcho",
        details: "http or https.",
        apply: |settings, value| {
            settings.honcho.url = value.scalar(parse_url)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.token_file",
        flag: Flag::Single("--honcho.token-file"),
        value_name: "FILE",
        shape: Shape::Scalar,
        is_path: true,
        default: Default::Unset { shown: "" },
        help: "File holding Honcho's bearer token (re-read when it changes)",
        details: "Rotation needs no restart. A changed file that is unreadable, empty or not a \
                  valid header value is logged and counted \
                  (`honcho_exporter_token_reload_errors_total`) once, and the previous token \
                  stays in use; an empty file at start is a configuration error. Or env \
                  `HONCHO_EXPORTER_HONCHO_TOKEN`. Never a flag or a file key; never logged. \
                  Discovery needs an **admin** token; with a workspace token, list the \
                  workspace in `workspaces.static`.",
        apply: |settings, value| {
            settings.honcho.token = value.optional(parse_token_file)?.map(TokenSource::File);
            Ok(())
        },
    },
    Setting {
        key: "honcho.api_generation",
        flag: Flag::Single("--honcho.api-generation"),
        value_name: "GENERATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("auto"),
        help: "Force the API generation instead of detecting it: auto, a, b or c",
        details: "",
        apply: |settings, value| {
            settings.honcho.api_generation = value.scalar(parse_generation)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.ca_file",
        flag: Flag::Single("--honcho.ca-file"),
        value_name: "FILE",
        shape: Shape::Scalar,
        is_path: true,
        default: Default::Unset { shown: "" },
        help: "Extra CA certificates (PEM) to trust for an https Honcho URL",
        details: "Verification is always on.",
        apply: |settings, value| {
            settings.honcho.ca_file = value.optional(parse_ca_file)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.max_response_bytes",
        flag: Flag::None,
        value_name: "BYTES",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("16777216"),
        help: "Largest response body accepted, in bytes",
        details: "Larger responses fail with `too_large`.",
        apply: |settings, value| {
            settings.honcho.max_response_bytes = value.scalar(at_least(1))?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.max_requests_per_second",
        flag: Flag::None,
        value_name: "RATE",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("50"),
        help: "Bound on the exporter's request rate to Honcho",
        details: "",
        apply: |settings, value| {
            settings.honcho.max_requests_per_second = value.scalar(parse_positive_rate)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.retries",
        flag: Flag::None,
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("2"),
        help: "Retries after a timeout, connection error, 5xx or 429 (within poll.timeout)",
        details: "",
        apply: |settings, value| {
            settings.honcho.retries = value.scalar(at_least(0))?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.retry_initial_backoff",
        flag: Flag::None,
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("200ms"),
        help: "First retry delay; doubled per retry, with jitter",
        details: "",
        apply: |settings, value| {
            settings.honcho.retry_initial_backoff = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.retry_max_backoff",
        flag: Flag::None,
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("5s"),
        help: "Cap of one retry delay",
        details: "`Retry-After` on a 429 or 5xx (503) is honoured across cycles: no request \
                  leaves before it passes. Seconds or an HTTP date in any RFC 9110 format \
                  (IMF-fixdate, RFC 850, asctime); longer waits, however large, are capped at \
                  300 s.",
        apply: |settings, value| {
            settings.honcho.retry_max_backoff = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "poll.interval",
        flag: Flag::Single("--poll.interval"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("15s"),
        help: "Time between poll cycles, e.g. 15s",
        details: "",
        apply: |settings, value| {
            settings.poll.interval = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "poll.timeout",
        flag: Flag::Single("--poll.timeout"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Derived {
            shown: "min(10s, 0.8 × poll.interval)",
            derive: |settings| {
                settings.poll.timeout = default_poll_timeout(settings.poll.interval);
            },
        },
        help: "Budget for one upstream request including retries; shorter than the interval",
        details: "The default follows the interval as Prometheus' `scrape_timeout` does (10 s, \
                  less for a short interval), so `--poll.interval 5s` alone gives a 4 s timeout; \
                  an explicit value is still checked.",
        apply: |settings, value| {
            settings.poll.timeout = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "poll.concurrency",
        flag: Flag::Single("--poll.concurrency"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("4"),
        help: "Requests in flight to Honcho at once, across every workspace and endpoint",
        details: "A FIFO slot per request, held through its retries: a long walk's pages queue \
                  behind the small workspaces' requests instead of blocking them.",
        apply: |settings, value| {
            settings.poll.concurrency = value.scalar(at_least(1))?;
            Ok(())
        },
    },
    Setting {
        key: "poll.max_staleness",
        flag: Flag::Single("--poll.max-staleness"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Derived {
            shown: "3 × poll.interval",
            derive: |settings| settings.poll.max_staleness = settings.poll.interval * 3,
        },
        help: "Queue values older than this are no longer served",
        details: "",
        apply: |settings, value| {
            settings.poll.max_staleness = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "workspaces.static",
        flag: Flag::Single("--workspaces"),
        value_name: "NAMES",
        shape: Shape::List,
        is_path: false,
        default: Default::Unset { shown: "discover" },
        help: "Comma-separated workspaces to poll instead of discovering them",
        details: "",
        apply: |settings, value| {
            settings.workspaces.static_list = value.list(parse_name)?;
            Ok(())
        },
    },
    Setting {
        key: "workspaces.allow",
        flag: Flag::Single("--workspaces.allow"),
        value_name: "REGEX",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Unset { shown: "" },
        help: "Only poll discovered workspaces whose whole name matches this regex",
        details: "",
        apply: |settings, value| {
            settings.workspaces.allow = value.optional(parse_anchored_regex)?;
            Ok(())
        },
    },
    Setting {
        key: "workspaces.deny",
        flag: Flag::Single("--workspaces.deny"),
        value_name: "REGEX",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Unset { shown: "" },
        help: "Skip workspaces whose whole name matches this regex (applied after allow)",
        details: "",
        apply: |settings, value| {
            settings.workspaces.deny = value.optional(parse_anchored_regex)?;
            Ok(())
        },
    },
    Setting {
        key: "workspaces.max_exported",
        flag: Flag::Single("--workspaces.max-exported"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("250"),
        help: "Workspaces exported in full (top by pending backlog, then oldest ready item); the rest are summed into workspace __other__ (0: no limit)",
        details: "Sums per state stay exact (oldest timestamps: the minimum); per-session and per-unit detail exist for the exported workspaces only. A workspace exported in full keeps its place until it ranks a tenth of N (at least 1) below the top N, so the boundary does not churn series every cycle.",
        apply: |settings, value| {
            settings.export.max_exported_workspaces = value.scalar(at_least(0))?;
            Ok(())
        },
    },
    Setting {
        key: "sessions.max_per_workspace",
        flag: Flag::Single("--sessions.max-per-workspace"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("50"),
        help: "Sessions exported per workspace; the rest are summed into __other__",
        details: "",
        apply: |settings, value| {
            settings.sessions.max_per_workspace = value.scalar(at_least(0))?;
            Ok(())
        },
    },
    Setting {
        key: "work_units.enabled",
        flag: Flag::None,
        value_name: "BOOL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("true"),
        help: "Walk work units (generation C)",
        details: "",
        apply: |settings, value| {
            settings.work_units.enabled = value.scalar(parse_bool)?;
            Ok(())
        },
    },
    Setting {
        key: "work_units.page_size",
        flag: Flag::None,
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("100"),
        help: "Page size of the work-units walk (1–100)",
        details: "",
        apply: |settings, value| {
            settings.work_units.page_size = value.scalar(parse_page_size)?;
            Ok(())
        },
    },
    Setting {
        key: "work_units.detail_limit",
        flag: Flag::Single("--work-units.detail-limit"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("20"),
        help: "Per-work-unit detail series per workspace",
        details: "",
        apply: |settings, value| {
            settings.work_units.detail_limit = value.scalar(at_least(0))?;
            Ok(())
        },
    },
    Setting {
        key: "metrics.session_items",
        flag: Flag::None,
        value_name: "BOOL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("true"),
        help: "Export honcho_queue_session_items",
        details: "",
        apply: |settings, value| {
            settings.export.session_items = value.scalar(parse_bool)?;
            Ok(())
        },
    },
    Setting {
        key: "metrics.session_info",
        flag: Flag::None,
        value_name: "BOOL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("true"),
        help: "Export honcho_queue_session_info",
        details: "",
        apply: |settings, value| {
            settings.export.session_info = value.scalar(parse_bool)?;
            Ok(())
        },
    },
    Setting {
        key: "metrics.work_unit_detail",
        flag: Flag::None,
        value_name: "BOOL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("true"),
        help: "Export the per-unit detail families (honcho_queue_work_unit_age_seconds, …_tokens_until_threshold, …_pending_tokens)",
        details: "",
        apply: |settings, value| {
            settings.export.work_unit_detail = value.scalar(parse_bool)?;
            Ok(())
        },
    },
    Setting {
        key: "work_units.max_pages",
        flag: Flag::Single("--work-units.max-pages"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("2000"),
        help: "Work-unit pages walked per workspace per cycle at most",
        details: "Past it the walk is truncated (oldest units first).",
        apply: |settings, value| {
            settings.work_units.max_pages = value.scalar(at_least(1))?;
            Ok(())
        },
    },
    Setting {
        key: "classify.overdue_after",
        flag: Flag::Single("--classify.overdue-after"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Derived {
            shown: "30m + poll.interval",
            derive: |settings| {
                settings.classify.overdue_after = HONCHO_BATCH_MAX_AGE + settings.poll.interval;
            },
        },
        help: "Age past which a stalled work unit is overdue",
        details: "Honcho's `DERIVER_REPRESENTATION_BATCH_MAX_AGE_SECONDS` is 1800 s.",
        apply: |settings, value| {
            settings.classify.overdue_after = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "verdict.idle_window",
        flag: Flag::Single("--verdict.idle-window"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("35m"),
        help: "Verdict deriver_idle: pending work, nothing in progress and nothing completed for this long",
        details: "The same number as `HonchoDeriverIdle.window` in the rules file (set there for the alert, here for the verdict).",
        apply: |settings, value| {
            settings.verdict.idle_window = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "verdict.not_processing_after",
        flag: Flag::Single("--verdict.not-processing-after"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("10m"),
        help: "Verdict deriver_idle (generation C): ready work unclaimed with nothing in progress for this long",
        details: "The same number as `HonchoDeriverNotProcessing.for`. In one look (`doctor`, a young history) it is the age of the oldest ready item.",
        apply: |settings, value| {
            settings.verdict.not_processing_after = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "verdict.stuck_after",
        flag: Flag::Single("--verdict.stuck-after"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("30m"),
        help: "Verdict stuck_in_progress: the same oldest item in progress for this long",
        details: "The same number as `HonchoWorkUnitInProgressTooLong.window`. In one look it is the age of the oldest in-progress item.",
        apply: |settings, value| {
            settings.verdict.stuck_after = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "verdict.backlog_after",
        flag: Flag::Single("--verdict.backlog-after"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("1h"),
        help: "Verdict backlog: ready work older than this, or never cleared and not shrinking over this window",
        details: "The same number as `HonchoOldestPendingItemTooOld.threshold_seconds` and `HonchoBacklogLagging.window`.",
        apply: |settings, value| {
            settings.verdict.backlog_after = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "shard.count",
        flag: Flag::Single("--shard.count"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("1"),
        help: "Number of exporter replicas sharing the workspaces",
        details: "Workspaces are split by a stable hash (FNV-1a of the name).",
        apply: |settings, value| {
            settings.shard.count = value.scalar(at_least(1))?;
            Ok(())
        },
    },
    Setting {
        key: "shard.index",
        flag: Flag::Single("--shard.index"),
        value_name: "N",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("0"),
        help: "This replica's shard, from 0",
        details: "",
        apply: |settings, value| {
            settings.shard.index = value.scalar(at_least(0))?;
            Ok(())
        },
    },
    Setting {
        key: "log.level",
        flag: Flag::Single("--log.level"),
        value_name: "LEVEL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("info"),
        help: "Log level: error, warn, info, debug or trace",
        details: "",
        apply: |settings, value| {
            settings.log.level = value.scalar(parse_log_level)?;
            Ok(())
        },
    },
    Setting {
        key: "log.format",
        flag: Flag::Single("--log.format"),
        value_name: "FORMAT",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("logfmt"),
        help: "Log format: logfmt or json",
        details: "",
        apply: |settings, value| {
            settings.log.format = value.scalar(parse_log_format)?;
            Ok(())
        },
    },
    Setting {
        key: "poll.duty_factor",
        flag: Flag::Single("--poll.duty-factor"),
        value_name: "K",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("4"),
        help: "Duty rule: a workspace's status poll, head or walk starts no sooner than K × its last busy time",
        details: "So each keeps Honcho busy at most 1/K of the time however large the workspace \
                  grows (at least 1). See \"Load bound\" above.",
        apply: |settings, value| {
            settings.poll.duty_factor = value.scalar(parse_duty_factor)?;
            Ok(())
        },
    },
    // The database source (its own section, last: added after the table landed).
    Setting {
        key: "poll.source",
        flag: Flag::Single("--source"),
        value_name: "SOURCE",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("api"),
        help: "Where the queue numbers come from: api (Honcho's HTTP API) or postgres (Honcho's database)",
        details: "`postgres` reads Honcho's database in one read-only pass per cycle and exports \
                  every family on every Honcho version; see \"The database source\" below.",
        apply: |settings, value| {
            settings.source = value.scalar(parse_source)?;
            Ok(())
        },
    },
    Setting {
        key: "postgres.url",
        flag: Flag::Single("--postgres.url"),
        value_name: "URL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Unset { shown: "" },
        help: "Honcho's database for the database source, postgres://user@host:port/db?sslmode=verify-full",
        details: "libpq's `sslmode` values; TLS (rustls) always verifies the certificate and the \
                  host name. A password in it is refused.",
        apply: |settings, value| {
            settings.postgres.url = value.optional(parse_postgres_url)?;
            Ok(())
        },
    },
    Setting {
        key: "postgres.password_file",
        flag: Flag::Single("--postgres.password-file"),
        value_name: "FILE",
        shape: Shape::Scalar,
        is_path: true,
        default: Default::Unset { shown: "" },
        help: "File holding the database password (re-read each cycle)",
        details: "A changed file reconnects with the new password. A changed file that is \
                  unreadable or empty is logged and counted \
                  (`honcho_exporter_postgres_password_reload_errors_total`) once, and the \
                  previous password stays in use (an open connection is kept); an empty file at \
                  start is a configuration error. Or env `HONCHO_EXPORTER_POSTGRES_PASSWORD`. \
                  Never a flag or a file key; never logged.",
        apply: |settings, value| {
            settings.postgres.password =
                value.optional(parse_password_file)?.map(TokenSource::File);
            Ok(())
        },
    },
    Setting {
        key: "postgres.ca_file",
        flag: Flag::Single("--postgres.ca-file"),
        value_name: "FILE",
        shape: Shape::Scalar,
        is_path: true,
        default: Default::Unset {
            shown: "system roots",
        },
        help: "CA certificates (PEM) that sign the database server's certificate",
        details: "",
        apply: |settings, value| {
            settings.postgres.ca_file = value.optional(parse_ca_file)?;
            Ok(())
        },
    },
    Setting {
        key: "postgres.statement_timeout",
        flag: Flag::Single("--postgres.statement-timeout"),
        value_name: "DURATION",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Derived {
            shown: "min(5s, poll.timeout / 2)",
            derive: |settings| {
                settings.postgres.statement_timeout =
                    default_statement_timeout(settings.poll.timeout);
            },
        },
        help: "statement_timeout of the database source's cycle; shorter than poll.timeout",
        details: "The default follows `poll.timeout` (as that follows the interval), leaving \
                  the other half for connecting and the schema check, so `--poll.interval 5s` \
                  alone gives 2 s; an explicit value is still checked.",
        apply: |settings, value| {
            settings.postgres.statement_timeout = value.scalar(positive_duration)?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.deriver_representation_batch_max_tokens",
        flag: Flag::Single("--honcho.deriver-representation-batch-max-tokens"),
        value_name: "TOKENS",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("1024"),
        help: "Honcho's DERIVER_REPRESENTATION_BATCH_MAX_TOKENS, for the database source",
        details: "The stalled/ready threshold; not stored in the database: set it to Honcho's value.",
        apply: |settings, value| {
            settings.honcho.deriver_representation_batch_max_tokens = value.scalar(at_least(1))?;
            Ok(())
        },
    },
    Setting {
        key: "honcho.deriver_flush_enabled",
        flag: Flag::Single("--honcho.deriver-flush-enabled"),
        value_name: "BOOL",
        shape: Shape::Scalar,
        is_path: false,
        default: Default::Text("false"),
        help: "Honcho's DERIVER_FLUSH_ENABLED, for the database source",
        details: "",
        apply: |settings, value| {
            settings.honcho.deriver_flush_enabled = value.scalar(parse_bool)?;
            Ok(())
        },
    },
];

/// The default `poll.timeout` for an interval: min(10 s, 0.8 × interval). Like Prometheus'
/// `scrape_timeout` (10 s unless the interval is shorter), but strictly shorter than the
/// interval, which `poll.timeout` must be, with a fifth of the interval left for the rest.
pub fn default_poll_timeout(interval: Duration) -> Duration {
    Duration::from_secs(10).min(interval.mul_f64(0.8))
}

/// The default `postgres.statement_timeout` for a poll timeout: min(5 s, half of it).
pub fn default_statement_timeout(poll_timeout: Duration) -> Duration {
    Duration::from_secs(5).min(poll_timeout / 2)
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

/// The README row of `scopes`, the one part of the configuration outside the table (a list of
/// mappings: file only, no flag or variable).
const SCOPES_ROW: &str = "| `scopes` | – (file only) | – | – | List of `{name, workspaces, \
observer_id, sender_id, session_id}`: extra filtered status polls exported as \
`honcho_queue_scope_items{scope=name}`. Note Honcho ORs observer and sender, `observer_id` matches \
only dream rows on 3.x, and `session_id` is the session **name**. |";

/// The configuration table of `README.md` (between its `settings-table` markers), generated
/// from [`SETTINGS`].
pub fn markdown_reference() -> String {
    let mut out =
        String::from("| key | flag | environment | default | meaning |\n|---|---|---|---|---|\n");
    for setting in SETTINGS {
        let flag = match setting.flag {
            Flag::None => "–".to_string(),
            Flag::Single(name) => format!("`{name}`"),
            Flag::Repeated(name) => format!("`{name}` (repeatable)"),
        };
        let default = match setting.default {
            Default::Text(text) => format!("`{text}`"),
            Default::Derived { shown, .. } => shown.to_string(),
            Default::Unset { shown: "" } => "–".to_string(),
            Default::Unset { shown } => format!("– ({shown})"),
        };
        let mut meaning = format!("{}.", setting.help);
        if !setting.details.is_empty() {
            meaning.push(' ');
            meaning.push_str(setting.details);
        }
        out.push_str(&format!(
            "| `{}` | {flag} | `{}` | {default} | {meaning} |\n",
            setting.key,
            setting.env_var(),
        ));
    }
    out.push_str(SCOPES_ROW);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn keys_flags_and_environment_names_are_unique() {
        let keys: BTreeSet<_> = SETTINGS.iter().map(|setting| setting.key).collect();
        assert_eq!(keys.len(), SETTINGS.len());
        let flags: Vec<_> = SETTINGS.iter().filter_map(|s| s.flag.name()).collect();
        assert_eq!(flags.iter().collect::<BTreeSet<_>>().len(), flags.len());
        let variables: BTreeSet<_> = SETTINGS.iter().map(Setting::env_var).collect();
        assert_eq!(variables.len(), SETTINGS.len());
        assert!(!variables.contains(ENV_TOKEN));
        assert!(!variables.contains(ENV_POSTGRES_PASSWORD));
    }

    #[test]
    fn keys_are_section_dot_name() {
        for setting in SETTINGS {
            let (section, name) = setting.key.split_once('.').expect("section.name");
            assert!(!section.is_empty() && !name.is_empty() && !name.contains('.'));
            assert!(
                setting
                    .key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            );
        }
    }

    #[test]
    fn repeated_flags_belong_to_list_settings() {
        for setting in SETTINGS {
            if let Flag::Repeated(flag) = setting.flag {
                assert_eq!(setting.shape, Shape::List, "{flag}");
            }
        }
    }

    #[test]
    fn every_text_default_parses_with_its_own_parser() {
        let mut settings = Settings::with_url(DEFAULT_HONCHO_URL.parse().expect("valid"));
        for setting in SETTINGS {
            if let Default::Text(text) = setting.default {
                let raw = RawValue::Scalar(text.to_string());
                (setting.apply)(&mut settings, &Value(&raw)).unwrap_or_else(|problem| {
                    panic!("{}: default {text:?}: {problem}", setting.key)
                });
            }
        }
    }

    #[test]
    fn defaults_are_the_documented_values() {
        let settings = Settings::with_url(DEFAULT_HONCHO_URL.parse().expect("valid"));
        assert_eq!(
            settings.web.listen_addresses,
            vec!["0.0.0.0:21794".parse().expect("valid")]
        );
        assert_eq!(settings.poll.interval, Duration::from_secs(15));
        assert_eq!(settings.poll.max_staleness, Duration::from_secs(45));
        assert_eq!(settings.classify.overdue_after, Duration::from_secs(1815));
        assert_eq!(settings.honcho.max_response_bytes, 16 * 1024 * 1024);
        assert_eq!(
            settings.honcho.retry_initial_backoff,
            Duration::from_millis(200)
        );
        assert!(settings.work_units.enabled);
        assert!(settings.honcho.token.is_none());
        assert!(settings.workspaces.static_list.is_empty());
    }

    #[test]
    fn the_flag_help_shows_the_default() {
        let interval = setting("poll.interval").expect("declared");
        assert_eq!(
            interval.flag_help(),
            "Time between poll cycles, e.g. 15s. [default: 15s]"
        );
        let token_file = setting("honcho.token_file").expect("declared");
        assert_eq!(
            token_file.flag_help(),
            "File holding Honcho's bearer token (re-read when it changes)"
        );
    }

    #[test]
    fn environment_names_are_derived_from_keys() {
        let page_size = setting("work_units.page_size").expect("declared");
        assert_eq!(page_size.env_var(), "HONCHO_EXPORTER_WORK_UNITS_PAGE_SIZE");
    }
}
