//! The database source's poll loop (`poll.source: postgres`): on its own timer, one read-only
//! transaction per cycle over the selected workspaces (the selection is applied before the
//! query and passed to it, so the database reads only their rows), mapped by
//! [`super::mapping`] onto the same per-workspace records the API poller stores, built into the
//! same [`Snapshot`] and published through the same [`Published`] handle, so `/metrics` cannot
//! tell the sources apart except by the self-metrics.
//!
//! Owns: the one connection (reused; reconnected with capped backoff when it breaks or the
//! password file changes), the schema check at start and after every reconnect or schema
//! error, staleness, and the self-metrics (`up{upstream="postgres"}`, errors by bounded
//! reason, the cycle's database time, the schema revision). Failures never end the loop and
//! only successes are stored, so a failed cycle never serves numbers as fresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::accumulator::{
    CycleAccumulator, CycleResults, FoldedResult, WorkspaceResult, full_workspaces,
};
use super::connection::{self, CycleCost, SchemaInfo};
use super::error::PostgresError;
use super::mapping::{MappingSettings, overdue_boundary_micros};
use super::queries::{CycleParameters, honcho_of_revision};
use crate::config::postgres_url::ConnectOptions;
use crate::config::secret_file::{SecretFile, Trim};
use crate::config::{Secret, Settings, TokenSource};
use crate::publication::{SharedPublished, SnapshotSource, unix_now};
use crate::snapshot::{
    ExporterStats, FoldedWorkspaces, Generation, PostgresStats, Snapshot, WorkspaceSnapshot,
};
use crate::source::bookkeeping::{Counters, Health, Stamp, Transition, next_bound};
use crate::source::selection::{select_workspaces, selects_everything};
use crate::upstream::Endpoint;

/// Why the database source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceBuildError {
    /// `poll.source: postgres` without `postgres.url`.
    #[error("poll.source: postgres needs postgres.url")]
    NoUrl,
    /// The TLS setup failed (CA file).
    #[error("{0}")]
    Tls(PostgresError),
}

/// The delay before the next connection attempt after `consecutive_failures` failed ones, in
/// poll intervals: 0 (the next cycle), then 1, 3, 7, … intervals (2^(n−1) − 1), capped at
/// 8 intervals or 120 s (never below one interval).
pub fn reconnect_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    let cap = (interval * 8).min(Duration::from_secs(120)).max(interval);
    let exponent = consecutive_failures.clamp(1, 16) - 1;
    let factor = 2u32.saturating_pow(exponent) - 1;
    interval.saturating_mul(factor).min(cap)
}

/// Where the password comes from, keeping the last good one.
enum Password {
    /// No password (trust, peer or certificate logins).
    None,
    /// `HONCHO_EXPORTER_POSTGRES_PASSWORD`.
    Env(Secret),
    /// `postgres.password_file`: opened at the first cycle that can read it, then followed.
    File {
        path: std::path::PathBuf,
        file: Option<SecretFile>,
    },
}

impl Password {
    fn new(source: Option<&TokenSource>) -> Self {
        match source {
            None => Password::None,
            Some(TokenSource::Env(secret)) => Password::Env(secret.clone()),
            Some(TokenSource::File(path)) => Password::File {
                path: path.clone(),
                file: None,
            },
        }
    }

    /// The password to log in with now. A changed file that cannot be used keeps the last
    /// good password (logged once per version of the file, counted by reason); only a file
    /// never read successfully is an error.
    fn current(&mut self) -> Result<Option<Secret>, PostgresError> {
        match self {
            Password::None => Ok(None),
            Password::Env(secret) => Ok(Some(secret.clone())),
            Password::File { path, file } => {
                let Some(opened) = file else {
                    let opened = SecretFile::open(path, Trim::LineEnd).map_err(|error| {
                        PostgresError::Password(format!(
                            "password file {}: {error}",
                            path.display()
                        ))
                    })?;
                    return Ok(Some(file.insert(opened).secret().clone()));
                };
                match opened.refresh() {
                    Ok(true) => {
                        tracing::info!(path = %path.display(), "the database password file changed; using the new password")
                    }
                    Ok(false) => {}
                    Err(rejection) => tracing::warn!(
                        path = %rejection.path.display(),
                        reason = rejection.error.reason(),
                        error = %rejection.error,
                        "the database password file changed but cannot be used; keeping the previous password"
                    ),
                }
                Ok(Some(opened.secret().clone()))
            }
        }
    }

    /// Versions of the password file not used, by reason; `None` without a password file.
    fn rejected(&self) -> Option<BTreeMap<&'static str, u64>> {
        match self {
            Password::File { file, .. } => Some(
                file.as_ref()
                    .map(|file| file.rejected().clone())
                    .unwrap_or_else(|| {
                        crate::config::secret_file::SecretFileError::REASONS
                            .into_iter()
                            .map(|reason| (reason, 0))
                            .collect()
                    }),
            ),
            _ => None,
        }
    }
}

/// The database source's poll loop.
pub struct PostgresSource {
    settings: Arc<Settings>,
    options: ConnectOptions,
    tls: Arc<rustls::ClientConfig>,
    published: SharedPublished,
    client: Option<tokio_postgres::Client>,
    password: Password,
    /// The password the open connection logged in with (to notice a rotated file).
    password_in_use: Option<Secret>,
    /// Set once the schema check passed on the open connection.
    schema: Option<SchemaInfo>,
    /// The last revision that passed a check (kept while reconnecting, for the self-metric).
    revision: Option<String>,
    unknown_revision_logged: Option<String>,
    consecutive_failures: u32,
    next_connect: Option<Instant>,
    records: Arc<BTreeMap<String, (Stamp, WorkspaceResult)>>,
    /// The workspaces folded by the query (over the ceiling), read with `records`.
    folded: Option<Arc<(Stamp, FoldedResult)>>,
    health: Health,
    counters: Counters,
    last_cost: Option<CycleCost>,
}

impl PostgresSource {
    /// A source publishing into `published`.
    pub fn new(
        settings: Arc<Settings>,
        published: SharedPublished,
    ) -> Result<Self, SourceBuildError> {
        let options = settings
            .postgres
            .url
            .clone()
            .ok_or(SourceBuildError::NoUrl)?;
        let tls = connection::tls_config(settings.postgres.ca_file.as_deref())
            .map_err(SourceBuildError::Tls)?;
        let password = Password::new(settings.postgres.password.as_ref());
        Ok(PostgresSource {
            settings,
            options,
            tls: Arc::new(tls),
            published,
            client: None,
            password,
            password_in_use: None,
            schema: None,
            revision: None,
            unknown_revision_logged: None,
            consecutive_failures: 0,
            next_connect: None,
            records: Arc::new(BTreeMap::new()),
            folded: None,
            health: Health::default(),
            counters: Counters::default(),
            last_cost: None,
        })
    }

    /// Polls every interval until `shutdown` resolves; a cycle in flight is abandoned then.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.settings.poll.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            let cycle = std::panic::AssertUnwindSafe(self.poll_once()).catch_unwind();
            tokio::select! {
                _ = &mut shutdown => return,
                result = cycle => {
                    if result.is_err() {
                        // The connection may be mid-transaction: start afresh.
                        self.client = None;
                        self.schema = None;
                        tracing::error!("a database poll cycle panicked; polling goes on");
                    }
                }
            }
        }
    }

    /// One complete cycle: (re)connect and check the schema if needed, read, map, publish.
    pub async fn poll_once(&mut self) {
        let started = Instant::now();
        let outcome = self.read().await;
        let now = unix_now();
        match outcome {
            Ok(Some((results, cost))) => {
                let stamp = Stamp::new(now, self.settings.poll.max_staleness);
                let folded = results.folded.as_ref().map(|folded| &folded.result);
                for result in results.workspaces.values().chain(folded) {
                    self.counters
                        .count_capped("session_items", result.status.capped_sessions);
                    self.counters
                        .count_capped("work_unit_detail", result.work_units.capped_detail);
                }
                self.records = Arc::new(
                    results
                        .workspaces
                        .into_iter()
                        .map(|(name, result)| (name, (stamp, result)))
                        .collect(),
                );
                self.folded = results.folded.map(|folded| Arc::new((stamp, folded)));
                self.last_cost = Some(cost);
                if self.health.succeeded(now) == Transition::Recovered {
                    tracing::info!("Honcho's database answers again");
                }
                self.consecutive_failures = 0;
            }
            Ok(None) => {
                // Waiting out the reconnect backoff: nothing attempted, nothing counted.
                self.health.failed();
            }
            Err(error) => self.fail(error),
        }
        self.counters.cycle_done(started.elapsed());
        crate::source::publish(
            &self.published,
            &self.settings,
            Arc::new(self.view()),
            unix_now(),
            true,
        );
    }

    fn fail(&mut self, error: PostgresError) {
        self.counters
            .count_error(Endpoint::Postgres, error.reason());
        if self.health.failed() == Transition::Failed {
            tracing::warn!(reason = error.reason(), %error, "reading Honcho's database failed");
        } else {
            tracing::debug!(reason = error.reason(), %error, "reading Honcho's database still fails");
        }
        match &error {
            PostgresError::Schema(_) | PostgresError::Permission(_) => self.schema = None,
            PostgresError::Timeout(_) | PostgresError::Query(_) => {}
            PostgresError::Connect(_) | PostgresError::Auth(_) | PostgresError::Password(_) => {
                self.client = None;
                self.schema = None;
            }
        }
        if self.client.is_none() {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            let delay = reconnect_delay(self.settings.poll.interval, self.consecutive_failures);
            self.next_connect = Some(Instant::now() + delay);
        }
    }

    /// Connects and checks the schema as needed, then reads one cycle. `Ok(None)`: still
    /// within the reconnect backoff.
    async fn read(&mut self) -> Result<Option<(CycleResults, CycleCost)>, PostgresError> {
        let settings = Arc::clone(&self.settings);
        if !self.ensure_connected().await? {
            return Ok(None);
        }
        let budget = settings.poll.timeout;
        let mapping = MappingSettings {
            batch_max_tokens: settings.honcho.deriver_representation_batch_max_tokens,
            flush_enabled: settings.honcho.deriver_flush_enabled,
            overdue_after: settings.classify.overdue_after,
            detail_limit: settings.work_units.detail_limit,
            max_sessions: settings.sessions.max_per_workspace,
            scopes: settings.scopes.clone(),
        };
        let now = unix_now();
        let selection = &settings.workspaces;
        let shard = settings.shard;
        let max_exported = settings.export.max_exported_workspaces;
        let client = self.client.as_mut().expect("a client was connected above");
        let reading =
            connection::read_cycle(client, settings.postgres.statement_timeout, |names| {
                let names = if selection.static_list.is_empty() {
                    names
                } else {
                    selection.static_list.clone()
                };
                let selected = select_workspaces(names, selection, shard);
                // The database reads only the selected workspaces' rows (a shard its share);
                // selecting everything needs no filter.
                let filter = (!selects_everything(selection, shard)).then(|| selected.clone());
                // Over the ceiling, only what it can choose from comes back in full.
                let full = full_workspaces(max_exported, selected.len());
                let parameters = CycleParameters::new(
                    filter,
                    mapping.batch_max_tokens,
                    mapping.flush_enabled,
                    overdue_boundary_micros(now, mapping.overdue_after),
                    mapping.detail_limit,
                    &mapping.scopes,
                )
                .with_full_workspaces(full);
                (CycleAccumulator::new(mapping, &selected, full), parameters)
            });
        match tokio::time::timeout(budget, reading).await {
            Ok(Ok((accumulator, cost))) => Ok(Some((accumulator.finish(), cost))),
            Ok(Err(error)) => Err(error),
            Err(_) => {
                // The connection is mid-query: drop it (the server cancels on disconnect).
                self.client = None;
                self.schema = None;
                Err(PostgresError::Timeout(format!(
                    "no complete answer within poll.timeout ({budget:?})"
                )))
            }
        }
    }

    /// Connects (or reconnects after a closed connection or a rotated password) and checks the
    /// schema as needed. `Ok(false)`: still within the reconnect backoff.
    async fn ensure_connected(&mut self) -> Result<bool, PostgresError> {
        let password = self.password.current()?;
        if self
            .client
            .as_ref()
            .is_some_and(|client| client.is_closed())
            || (self.client.is_some() && password != self.password_in_use)
        {
            self.client = None;
            self.schema = None;
        }
        let budget = self.settings.poll.timeout;
        if self.client.is_none() {
            if self.next_connect.is_some_and(|next| Instant::now() < next) {
                return Ok(false);
            }
            let client =
                connection::connect(&self.options, &self.tls, password.as_ref(), budget).await?;
            self.client = Some(client);
            self.password_in_use = password;
        }
        if self.schema.is_none() {
            let client = self.client.as_ref().expect("a client was connected above");
            let schema = tokio::time::timeout(budget, connection::check_schema(client))
                .await
                .map_err(|_| PostgresError::Timeout(format!("schema check over {budget:?}")))??;
            self.note_revision(&schema.revision);
            self.revision = Some(schema.revision.clone());
            self.schema = Some(schema);
        }
        Ok(true)
    }

    fn note_revision(&mut self, revision: &str) {
        if honcho_of_revision(revision).is_none()
            && self.unknown_revision_logged.as_deref() != Some(revision)
        {
            tracing::info!(
                revision,
                "unknown Honcho schema revision; every needed column is present, so reading it"
            );
            self.unknown_revision_logged = Some(revision.to_string());
        }
    }

    /// What this cycle publishes: the stored results and the self-metrics, frozen.
    fn view(&self) -> CycleView {
        let honcho = &self.settings.honcho;
        CycleView {
            records: Arc::clone(&self.records),
            folded: self.folded.clone(),
            transaction: self
                .last_cost
                .map(|cost| cost.transaction)
                .unwrap_or_default(),
            batch_max_tokens: honcho.deriver_representation_batch_max_tokens,
            flush_enabled: honcho.deriver_flush_enabled,
            exporter: ExporterStats {
                // The database holds everything generation C's API computes.
                generation: Some(Generation::C),
                status_split: Some(true),
                work_units_available: Some(true),
                postgres: Some(PostgresStats {
                    health: self.health.or_down(),
                    database_time: self
                        .last_cost
                        .map(|cost| cost.transaction.saturating_sub(cost.mapping)),
                    mapping_time: self.last_cost.map(|cost| cost.mapping),
                    schema_revision: self.revision.clone(),
                    honcho_version: self.revision.as_deref().and_then(honcho_of_revision),
                    password_reload_errors: self.password.rejected(),
                }),
                ..self.counters.stats(self.settings.poll.interval)
            },
        }
    }
}

/// One cycle's publication: the results with the time they were read, served at scrape time
/// only while their stamp allows (the publication re-renders without them at their bound,
/// mid-interval included).
struct CycleView {
    records: Arc<BTreeMap<String, (Stamp, WorkspaceResult)>>,
    folded: Option<Arc<(Stamp, FoldedResult)>>,
    transaction: Duration,
    batch_max_tokens: u64,
    flush_enabled: bool,
    exporter: ExporterStats,
}

impl SnapshotSource for CycleView {
    fn snapshot_at(&self, now: f64) -> Snapshot {
        let workspaces = self
            .records
            .iter()
            .filter(|(_, (stamp, _))| stamp.servable(now))
            .map(|(name, (stamp, result))| {
                (
                    name.clone(),
                    workspace_snapshot(result, stamp.at, self.transaction),
                )
            })
            .collect();
        let folded = self
            .folded
            .as_deref()
            .filter(|(stamp, _)| stamp.servable(now))
            .map(|(stamp, folded)| FoldedWorkspaces {
                workspaces: folded.workspaces,
                data: workspace_snapshot(&folded.result, stamp.at, self.transaction),
            });
        Snapshot {
            taken_at: now,
            workspaces,
            folded,
            batch_max_tokens: Some(self.batch_max_tokens),
            flush_enabled: Some(self.flush_enabled),
            exporter: self.exporter.clone(),
        }
    }

    fn next_expiry(&self, now: f64) -> Option<f64> {
        let folded = self.folded.as_deref().map(|(stamp, _)| stamp.until);
        next_bound(
            self.records
                .values()
                .map(|(stamp, _)| stamp.until)
                .chain(folded),
            now,
        )
    }
}

/// One workspace's stored result as the snapshot shows it.
fn workspace_snapshot(
    result: &WorkspaceResult,
    read_at: f64,
    transaction: Duration,
) -> WorkspaceSnapshot {
    let units = result
        .work_units
        .cells
        .iter()
        .flatten()
        .map(|cell| cell.units)
        .sum();
    WorkspaceSnapshot {
        status: Some(result.status.clone()),
        work_units: Some(result.work_units.clone()),
        walk_truncated: false,
        head_only: false,
        units_listed: Some(units),
        last_complete_walk: Some((read_at, transaction)),
        scopes: result.scopes.clone(),
        health: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reconnect_is_the_next_cycle_then_the_delay_doubles_up_to_its_cap() {
        let interval = Duration::from_secs(15);
        let delays: Vec<u64> = (1..=6)
            .map(|failures| reconnect_delay(interval, failures).as_secs())
            .collect();
        assert_eq!(delays, [0, 15, 45, 105, 120, 120]);
    }

    #[test]
    fn the_reconnect_cap_is_eight_intervals_below_two_minutes() {
        let interval = Duration::from_secs(2);
        assert_eq!(reconnect_delay(interval, 30), Duration::from_secs(16));
        assert_eq!(reconnect_delay(interval, u32::MAX), Duration::from_secs(16));
    }

    #[test]
    fn the_reconnect_cap_is_never_below_one_interval() {
        let interval = Duration::from_secs(300);
        assert_eq!(reconnect_delay(interval, 1), Duration::ZERO);
        assert_eq!(reconnect_delay(interval, 3), interval);
    }

    #[test]
    fn a_password_file_never_read_is_an_auth_error_naming_the_file() {
        let mut password = Password::new(Some(&TokenSource::File("/nonexistent/pw".into())));
        let error = password.current().expect_err("no file");
        assert_eq!(error.reason(), "auth");
        assert!(error.to_string().contains("/nonexistent/pw"), "{error}");
    }

    #[test]
    fn an_emptied_password_file_keeps_the_last_good_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "first\n").expect("write");
        let mut password = Password::new(Some(&TokenSource::File(path.clone())));
        let mut current = || {
            let secret = password.current().expect("a password");
            secret.map(|secret| secret.expose().to_string())
        };
        assert_eq!(current().as_deref(), Some("first"));
        std::fs::write(&path, "").expect("empty");
        assert_eq!(current().as_deref(), Some("first"), "kept when emptied");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(current().as_deref(), Some("first"), "kept when deleted");
        let rejected = password.rejected().expect("a file");
        assert_eq!((rejected["empty"], rejected["unreadable"]), (1, 1));
    }
}
