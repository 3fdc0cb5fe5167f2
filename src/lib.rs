//! `honcho_exporter`: a Prometheus exporter for the deriver queue of Honcho.
//!
//! # Layout
//!
//! The data path reads in one direction, and no module reaches back up it:
//!
//! ```text
//! source::api ──► honcho (HTTP client) ─┐
//!                                       ├─► snapshot (pure) ──► families ──► exposition ──► publication ──► server
//! source::postgres (Honcho's database) ─┘
//! ```
//!
//! - [`app`]: wiring settings → source → publication → server with one shutdown signal.
//! - [`config`]: raw command line, environment and YAML → validated [`config::Settings`]. Every
//!   setting is declared once, in the settings table [`config::table`] (key, flag, default,
//!   help, parser); the clap command, the environment names, the YAML keys, the defaults and
//!   README's configuration table follow from it. Values are parsed once, here
//!   ([`config::postgres_url`], [`config::secret_file`]). No network I/O; reads the config,
//!   token, password and CA files only.
//! - [`source`]: the two sources of queue numbers, siblings that import nothing from each other,
//!   on one shared bookkeeping room ([`source::bookkeeping`]: health logged once per change,
//!   the staleness stamp, error/cycle/cap counters; [`source::selection`]: which workspaces this
//!   replica exports; the initial publication):
//!   - [`source::api`]: Honcho's HTTP API: discovery, generation detection, per-job scheduling
//!     with bounded concurrency, the pure merge of outcomes;
//!   - [`source::postgres`]: Honcho's database: one read-only pass per cycle.
//! - [`honcho`]: the HTTP client for Honcho's queue API (all three generations), its response
//!   types and its error taxonomy with bounded `reason()` labels. Used by `source::api` only.
//! - [`upstream`]: the `upstream` label type (which call a health, error or count is about).
//! - [`tls_roots`]: the one CA-file loader (`honcho.ca_file` adds to the system roots,
//!   `postgres.ca_file` replaces them); reads the file, opens no connection.
//! - [`classify`]: pure classification of one work unit into `in_progress|ready|stalled|overdue`.
//! - [`snapshot`]: pure, immutable per-poll data (`Snapshot`) and the streaming aggregation that
//!   builds it page by page without keeping the work-unit list in memory: the model both
//!   sources fill.
//! - [`families`]: pure mapping of a [`snapshot::Snapshot`] onto metric families (names, help,
//!   labels). The only place metric names live; imports no source.
//! - [`metric`]: the format-neutral metric family model shared by `families` and `exposition`.
//! - [`exposition`]: renders metric families as OpenMetrics 1.0.0 or text 0.0.4 bytes, content
//!   negotiation, gzip.
//! - [`publication`]: the rendered exposition the server serves (cached bytes + scrape-time
//!   tail) and when it is re-rendered; the server depends on it, never on a source. Two rooms
//!   of its own: `publication::body` (one scrape's body, gzipped or plain, from the cached
//!   pieces) and `publication::verdicts` (the verdicts' criteria and history, handed from
//!   publication to publication).
//! - [`server`]: the hyper HTTP server: `/metrics`, `/`, `/status`, `/-/healthy`, `/-/ready`.
//! - [`verdict`]: pure verdicts per workspace (*why* work is or is not moving, in words) from the
//!   snapshot and a bounded history; carried by `publication`, shown by `/`, `/status`, `doctor`
//!   and `honcho_queue_verdict`. [`verdict::rules`] holds the numbers the rules read and the
//!   order they run in, one file per rule (`idle`, `stuck`, `overdue`, `backlog`, `tokens`,
//!   `unknown`) and `report` (a snapshot → the [`verdict::Report`]); beside it the history,
//!   the `/status` schema, the `doctor` table, the landing page section and the metric.
//! - [`web_config`]: exporter-toolkit style `--web.config.file` (TLS, basic auth).
//! - [`yaml`]: YAML text → a tree of keys, shared by `config` and `web_config`.
//! - [`process`]: the exporter's own process metrics (RSS, CPU, fds, start time), read at scrape.
//! - `demo` (cargo feature `demo`, on by default): `honcho_exporter demo`: the simulated Honcho
//!   (the workspace crate `honcho-sim`, `crates/honcho-sim`) + the exporter on loopback.
//!
//! The simulator is its own crate (`honcho_sim`): it must not depend on the exporter, and the
//! exporter uses it only for `demo` and as a dev-dependency (tests, benchmarks).

pub mod app;
pub mod classify;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exposition;
pub mod families;
pub mod honcho;
pub mod metric;
pub mod process;
pub mod publication;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod tls_roots;
pub mod upstream;
pub mod verdict;
pub mod web_config;
pub mod yaml;

/// The version printed by `--version` and exported in `honcho_exporter_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from, when the build could tell (`unknown` otherwise).
pub const REVISION: &str = match option_env!("HONCHO_EXPORTER_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// Installs rustls' `ring` crypto provider as the process default (idempotent). reqwest is
/// built without a provider of its own (no aws-lc C build, no OpenSSL), so anything that builds
/// an HTTP client or TLS server calls this first.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
