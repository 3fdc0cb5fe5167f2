//! The database source's poll loop (`poll.source: postgres`): on its own timer, one read-only
//! transaction per cycle over all workspaces, mapped by [`super::mapping`] onto the same
//! per-workspace records the API poller stores, built into the same [`Snapshot`] and published
//! through the same [`Published`] handle, so `/metrics` cannot tell the sources apart except by
//! the self-metrics.
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

use super::connection::{self, ConnectOptions, CycleCost, SchemaInfo};
use super::error::PostgresError;
use super::mapping::{CycleAccumulator, MappingSettings, WorkspaceResult};
use super::queries::honcho_of_revision;
use crate::config::{Secret, Settings, TokenSource};
use crate::honcho::Endpoint;
use crate::poller::select_workspaces;
use crate::publication::{Published, SharedPublished, SnapshotSource, unix_now};
use crate::snapshot::{
    EndpointHealth, ExporterStats, Generation, PostgresStats, Snapshot, WorkspaceSnapshot,
};

/// Why the database source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceBuildError {
    /// `poll.source: postgres` without `postgres.url`.
    #[error("poll.source: postgres needs postgres.url")]
    NoUrl,
    /// The URL cannot be used.
    #[error(transparent)]
    Url(#[from] connection::UrlError),
    /// The TLS setup failed (CA file).
    #[error("{0}")]
    Tls(PostgresError),
}

/// The snapshot published before the first cycle of the database source.
pub fn initial_published(settings: &Settings) -> Published {
    let snapshot = Snapshot {
        exporter: ExporterStats {
            poll_interval: settings.poll.interval,
            postgres: Some(PostgresStats::default()),
            ..ExporterStats::default()
        },
        ..Snapshot::default()
    };
    Published::render(snapshot, false).judged_by(crate::verdict::Criteria::of(settings))
}

/// Reads the password as configured now (a file is read each time, so a rotated file is seen).
fn current_password(source: Option<&TokenSource>) -> Result<Option<Secret>, PostgresError> {
    match source {
        None => Ok(None),
        Some(TokenSource::Env(secret)) => Ok(Some(secret.clone())),
        Some(TokenSource::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                PostgresError::Password(format!("password file {}: {error}", path.display()))
            })?;
            let trimmed = text.trim_end_matches(['\r', '\n']);
            if trimmed.is_empty() {
                return Err(PostgresError::Password(format!(
                    "password file {} is empty",
                    path.display()
                )));
            }
            Ok(Some(Secret::new(trimmed.to_string())))
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
    /// The password the open connection logged in with (to notice a rotated file).
    password_in_use: Option<Secret>,
    /// Set once the schema check passed on the open connection.
    schema: Option<SchemaInfo>,
    /// The last revision that passed a check (kept while reconnecting, for the self-metric).
    revision: Option<String>,
    unknown_revision_logged: Option<String>,
    consecutive_failures: u32,
    next_connect: Option<Instant>,
    records: BTreeMap<String, (f64, WorkspaceResult)>,
    health: EndpointHealth,
    /// Whether a cycle has recorded a health yet (the first failure is always logged).
    health_known: bool,
    errors: BTreeMap<(Endpoint, &'static str), u64>,
    capped: BTreeMap<&'static str, u64>,
    cycles: u64,
    last_duration: Option<Duration>,
    last_cost: Option<CycleCost>,
}

impl PostgresSource {
    /// A source publishing into `published`.
    pub fn new(
        settings: Arc<Settings>,
        published: SharedPublished,
    ) -> Result<Self, SourceBuildError> {
        let url = settings
            .postgres
            .url
            .as_deref()
            .ok_or(SourceBuildError::NoUrl)?;
        let options = ConnectOptions::parse(url)?;
        let tls = connection::tls_config(settings.postgres.ca_file.as_deref())
            .map_err(SourceBuildError::Tls)?;
        Ok(PostgresSource {
            settings,
            options,
            tls: Arc::new(tls),
            published,
            client: None,
            password_in_use: None,
            schema: None,
            revision: None,
            unknown_revision_logged: None,
            consecutive_failures: 0,
            next_connect: None,
            records: BTreeMap::new(),
            health: EndpointHealth::default(),
            health_known: false,
            errors: BTreeMap::new(),
            capped: BTreeMap::new(),
            cycles: 0,
            last_duration: None,
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
                self.records = results
                    .into_iter()
                    .map(|(name, result)| {
                        *self.capped.entry("session_items").or_insert(0) +=
                            result.status.capped_sessions;
                        *self.capped.entry("work_unit_detail").or_insert(0) +=
                            result.work_units.capped_detail;
                        (name, (now, result))
                    })
                    .collect();
                self.last_cost = Some(cost);
                if self.health_known && !self.health.up {
                    tracing::info!("Honcho's database answers again");
                }
                self.health = EndpointHealth {
                    up: true,
                    last_success: Some(now),
                };
                self.consecutive_failures = 0;
            }
            Ok(None) => {
                // Waiting out the reconnect backoff: nothing attempted, nothing counted.
                self.health.up = false;
            }
            Err(error) => self.fail(error),
        }
        self.health_known = true;
        self.cycles += 1;
        self.last_duration = Some(started.elapsed());
        let now = unix_now();
        let view: Arc<dyn SnapshotSource> = Arc::new(self.view());
        crate::publication::publish(&self.published, view, now, true, &self.settings);
    }

    fn fail(&mut self, error: PostgresError) {
        *self
            .errors
            .entry((Endpoint::Postgres, error.reason()))
            .or_insert(0) += 1;
        if !self.health_known || self.health.up {
            tracing::warn!(reason = error.reason(), %error, "reading Honcho's database failed");
        } else {
            tracing::debug!(reason = error.reason(), %error, "reading Honcho's database still fails");
        }
        self.health.up = false;
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
            // Capped exponential backoff between connection attempts, counted in poll
            // intervals: the first retry is the next cycle.
            let interval = self.settings.poll.interval;
            let cap = (interval * 8).min(Duration::from_secs(120)).max(interval);
            let factor = 2u32.saturating_pow(self.consecutive_failures.min(16) - 1) - 1;
            let delay = interval.saturating_mul(factor).min(cap);
            self.next_connect = Some(Instant::now() + delay);
        }
    }

    /// Connects and checks the schema as needed, then reads one cycle. `Ok(None)`: still
    /// within the reconnect backoff.
    async fn read(
        &mut self,
    ) -> Result<Option<(BTreeMap<String, WorkspaceResult>, CycleCost)>, PostgresError> {
        let settings = Arc::clone(&self.settings);
        let password = current_password(settings.postgres.password.as_ref())?;
        if self
            .client
            .as_ref()
            .is_some_and(|client| client.is_closed())
            || (self.client.is_some() && password != self.password_in_use)
        {
            self.client = None;
            self.schema = None;
        }
        if self.client.is_none() {
            if self.next_connect.is_some_and(|next| Instant::now() < next) {
                return Ok(None);
            }
            let client = connection::connect(
                &self.options,
                &self.tls,
                password.as_ref(),
                settings.poll.timeout,
            )
            .await?;
            self.client = Some(client);
            self.password_in_use = password;
        }
        let budget = settings.poll.timeout;
        if self.schema.is_none() {
            let client = self.client.as_ref().expect("a client was connected above");
            let schema = tokio::time::timeout(budget, connection::check_schema(client))
                .await
                .map_err(|_| PostgresError::Timeout(format!("schema check over {budget:?}")))??;
            self.note_revision(&schema.revision);
            self.revision = Some(schema.revision.clone());
            self.schema = Some(schema);
        }
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
        let client = self.client.as_mut().expect("a client was connected above");
        let reading =
            connection::read_cycle(client, settings.postgres.statement_timeout, |names| {
                let names = if selection.static_list.is_empty() {
                    names
                } else {
                    selection.static_list.clone()
                };
                let selected = select_workspaces(names, selection, settings.shard);
                CycleAccumulator::new(mapping, &selected, now)
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
            max_staleness: self.settings.poll.max_staleness.as_secs_f64(),
            records: self.records.clone(),
            transaction: self
                .last_cost
                .map(|cost| cost.transaction)
                .unwrap_or_default(),
            batch_max_tokens: honcho.deriver_representation_batch_max_tokens,
            flush_enabled: honcho.deriver_flush_enabled,
            exporter: ExporterStats {
                poll_duration: self.last_duration,
                poll_interval: self.settings.poll.interval,
                poll_cycles: self.cycles,
                errors: self.errors.clone(),
                capped: self.capped.clone(),
                // The database holds everything generation C's API computes.
                generation: Some(Generation::C),
                status_split: Some(true),
                work_units_available: Some(true),
                postgres: Some(PostgresStats {
                    health: self.health,
                    database_time: self
                        .last_cost
                        .map(|cost| cost.transaction.saturating_sub(cost.mapping)),
                    mapping_time: self.last_cost.map(|cost| cost.mapping),
                    schema_revision: self.revision.clone(),
                }),
                ..ExporterStats::default()
            },
        }
    }
}

/// One cycle's publication: the results with the time they were read, served at scrape time
/// only while younger than `poll.max_staleness` (the publication re-renders without them at
/// their bound, mid-interval included).
struct CycleView {
    max_staleness: f64,
    records: BTreeMap<String, (f64, WorkspaceResult)>,
    transaction: Duration,
    batch_max_tokens: u64,
    flush_enabled: bool,
    exporter: ExporterStats,
}

impl SnapshotSource for CycleView {
    fn snapshot_at(&self, now: f64) -> Snapshot {
        let oldest_allowed = now - self.max_staleness;
        let workspaces = self
            .records
            .iter()
            .filter(|(_, (at, _))| *at >= oldest_allowed)
            .map(|(name, (at, result))| {
                let units = result
                    .work_units
                    .cells
                    .iter()
                    .flatten()
                    .map(|cell| cell.units)
                    .sum();
                (
                    name.clone(),
                    WorkspaceSnapshot {
                        status: Some(result.status.clone()),
                        work_units: Some(result.work_units.clone()),
                        walk_truncated: false,
                        head_only: false,
                        units_listed: Some(units),
                        last_complete_walk: Some((*at, self.transaction)),
                        scopes: result.scopes.clone(),
                        health: BTreeMap::new(),
                    },
                )
            })
            .collect();
        Snapshot {
            taken_at: now,
            workspaces,
            batch_max_tokens: Some(self.batch_max_tokens),
            flush_enabled: Some(self.flush_enabled),
            exporter: self.exporter.clone(),
        }
    }

    fn next_expiry(&self, now: f64) -> Option<f64> {
        self.records
            .values()
            .map(|(at, _)| at + self.max_staleness)
            .filter(|bound| *bound > now)
            .min_by(f64::total_cmp)
    }
}
