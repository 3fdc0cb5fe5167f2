//! The poll loop. On its own timer (not per scrape): discover workspaces, then per workspace,
//! with bounded concurrency, queue/status (+ configured scopes) and the work-units walk; merge
//! the outcomes into per-workspace records; build a [`Snapshot`] that drops anything older than
//! max staleness; render it once and publish the bytes for the server.
//!
//! Failures never end the loop: they become `honcho_exporter_up 0`, an error counter with a
//! bounded reason and a log line on the transition. Only successes are stored, so a failed
//! result is never served as good, and a stored success expires after max staleness.
//!
//! The API generation is detected, not configured (unless overridden): `/v3` routes answering
//! 404 mean Honcho 2.x (`/v2`); a status body without the split keys means no split; a 404 from
//! work-units means the walk is unavailable (a feature gauge, not an error). Each is re-checked
//! while running, so an upgraded Honcho is picked up within a cycle or two.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

use crate::config::{GenerationOverride, Settings, ShardSettings, WorkspaceSelection};
use crate::exposition::{self, Format};
use crate::families;
use crate::honcho::types::ItemCounts;
use crate::honcho::{ApiVersion, Client, Endpoint, StatusFilter, UpstreamError, WalkOutcome};
use crate::snapshot::{
    EndpointHealth, ExporterStats, Generation, Snapshot, StatusSummary, WorkUnitAggregate,
    WorkUnitAggregator, WorkspaceSnapshot, summarize_status,
};

/// What the server serves: the bytes rendered after the last poll cycle.
#[derive(Debug, Clone)]
pub struct Published {
    /// The snapshot the bytes were rendered from (for scrape-time ages and the landing page).
    pub snapshot: Arc<Snapshot>,
    /// Poll-time families, OpenMetrics, without `# EOF`.
    pub openmetrics: Bytes,
    /// `openmetrics` gzipped (one gzip member).
    pub openmetrics_gzip: Bytes,
    /// Poll-time families, text 0.0.4.
    pub text: Bytes,
    /// `text` gzipped (one gzip member).
    pub text_gzip: Bytes,
    /// Whether a poll cycle has completed (readiness).
    pub ready: bool,
}

impl Published {
    /// Before the first cycle: only the exporter's own metrics.
    pub fn initial(settings: &Settings) -> Self {
        let snapshot = Snapshot {
            exporter: ExporterStats {
                poll_interval: settings.poll.interval,
                ..ExporterStats::default()
            },
            ..Snapshot::default()
        };
        Self::render(snapshot, false)
    }

    /// Renders the poll-time part of `snapshot` in both formats.
    pub fn render(snapshot: Snapshot, ready: bool) -> Self {
        let poll_families = families::poll_families(&snapshot);
        let mut openmetrics = Vec::with_capacity(64 * 1024);
        exposition::render(&poll_families, Format::OpenMetrics, &mut openmetrics);
        let mut text = Vec::with_capacity(64 * 1024);
        exposition::render(&poll_families, Format::Text, &mut text);
        Published {
            openmetrics_gzip: Bytes::from(exposition::gzip(&openmetrics)),
            text_gzip: Bytes::from(exposition::gzip(&text)),
            openmetrics: Bytes::from(openmetrics),
            text: Bytes::from(text),
            snapshot: Arc::new(snapshot),
            ready,
        }
    }

    /// The whole body for a scrape at `now` (Unix seconds): the cached poll-time bytes, then the
    /// scrape-time families (ages, process metrics), then `# EOF` for OpenMetrics. With `gzip`,
    /// the cached gzip member followed by a fresh one for the small tail (RFC 1952 members
    /// concatenate).
    pub fn body(&self, format: Format, gzip: bool, now: f64) -> Vec<Bytes> {
        let mut tail_families = families::scrape_families(&self.snapshot, now);
        tail_families.extend(crate::process::process_families());
        let mut tail = Vec::with_capacity(4096);
        exposition::render(&tail_families, format, &mut tail);
        exposition::finish(format, &mut tail);
        let head = match (format, gzip) {
            (Format::OpenMetrics, false) => self.openmetrics.clone(),
            (Format::OpenMetrics, true) => self.openmetrics_gzip.clone(),
            (Format::Text, false) => self.text.clone(),
            (Format::Text, true) => self.text_gzip.clone(),
        };
        let tail = if gzip { exposition::gzip(&tail) } else { tail };
        vec![head, Bytes::from(tail)]
    }
}

/// The handle the server reads from; the poller writes it once per cycle.
pub type SharedPublished = Arc<RwLock<Arc<Published>>>;

/// Reads the current publication.
pub fn current(shared: &SharedPublished) -> Arc<Published> {
    shared
        .read()
        .expect("the publication lock is never poisoned: nothing panics while holding it")
        .clone()
}

/// Unix seconds now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

/// The shard of a workspace: FNV-1a 64 of its name modulo `count`. Stable across processes,
/// versions and platforms (never Rust's randomly keyed hasher).
pub fn shard_of(workspace: &str, count: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in workspace.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(count.max(1))) as u32
}

/// The workspaces this replica polls: `names` filtered by allow, then deny, then the shard;
/// sorted and unique. Pure, so a workspace's shard depends on its name alone.
pub fn select_workspaces(
    names: Vec<String>,
    selection: &WorkspaceSelection,
    shard: ShardSettings,
) -> Vec<String> {
    let mut selected: Vec<String> = names
        .into_iter()
        .filter(|name| {
            selection
                .allow
                .as_ref()
                .is_none_or(|allow| allow.is_match(name))
        })
        .filter(|name| {
            selection
                .deny
                .as_ref()
                .is_none_or(|deny| !deny.is_match(name))
        })
        .filter(|name| shard.count <= 1 || shard_of(name, shard.count) == shard.index)
        .collect();
    selected.sort();
    selected.dedup();
    selected
}

/// What is remembered of one workspace between cycles: successes only, with their times.
#[derive(Debug, Default)]
struct WorkspaceRecord {
    status: Option<(f64, StatusSummary)>,
    work_units: Option<(f64, WorkUnitAggregate)>,
    walk_truncated: bool,
    scopes: BTreeMap<String, (f64, ItemCounts)>,
    health: BTreeMap<Endpoint, EndpointHealth>,
}

/// The poller's state across cycles.
#[derive(Debug, Default)]
struct PollState {
    api_version: Option<ApiVersion>,
    status_split: Option<bool>,
    work_units_available: Option<bool>,
    batch_max_tokens: Option<u64>,
    flush_enabled: Option<bool>,
    workspaces: Vec<String>,
    records: BTreeMap<String, WorkspaceRecord>,
    discovery: Option<EndpointHealth>,
    errors: BTreeMap<(Endpoint, &'static str), u64>,
    capped: BTreeMap<&'static str, u64>,
    cycles: u64,
    last_duration: Option<Duration>,
}

/// The outcome of one workspace's polls in one cycle.
struct WorkspaceOutcome {
    name: String,
    /// The API version that answered queue/status, if it differs from the one tried first.
    switched_version: Option<ApiVersion>,
    status: Result<StatusSummary, UpstreamError>,
    scopes: Vec<(String, Result<ItemCounts, UpstreamError>)>,
    walk: WalkResult,
}

enum WalkResult {
    /// Not attempted (generation A/B, disabled, or the status call failed).
    Skipped,
    /// 404: this server has no work-units endpoint.
    Unavailable,
    Done(Box<(WorkUnitAggregate, WalkOutcome)>),
    Failed(UpstreamError),
}

/// The poll loop.
pub struct Poller {
    settings: Arc<Settings>,
    client: Client,
    state: PollState,
    published: SharedPublished,
}

impl Poller {
    /// A poller publishing into `published`.
    pub fn new(settings: Arc<Settings>, client: Client, published: SharedPublished) -> Self {
        Poller {
            settings,
            client,
            state: PollState::default(),
            published,
        }
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
            // A bug must not end polling for good: a panicking cycle is logged and the next
            // one runs (the publication keeps the last good cycle until it goes stale).
            let cycle = std::panic::AssertUnwindSafe(self.poll_once()).catch_unwind();
            tokio::select! {
                _ = &mut shutdown => return,
                result = cycle => {
                    if let Err(panic) = result {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|text| (*text).to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(panic = %message, "a poll cycle panicked; polling goes on");
                    }
                }
            }
        }
    }

    /// One complete cycle: poll, merge, build the snapshot, render, publish.
    pub async fn poll_once(&mut self) {
        let started = Instant::now();
        let workspaces = self.select_workspaces().await;
        let version = self
            .state
            .api_version
            .unwrap_or(match self.settings.honcho.api_generation {
                GenerationOverride::A => ApiVersion::V2,
                _ => ApiVersion::V3,
            });
        let walk_plan = self.walk_plan(&workspaces, version);
        let client = &self.client;
        let settings = &self.settings;
        let outcomes: Vec<WorkspaceOutcome> =
            futures_util::stream::iter(workspaces.iter().cloned())
                .map(|name| {
                    let walk = walk_plan.contains(&name);
                    poll_workspace(client, settings, name, version, walk)
                })
                .buffer_unordered(settings.poll.concurrency.max(1))
                .collect()
                .await;
        let now = unix_now();
        for outcome in outcomes {
            self.merge(outcome, now);
        }
        self.state
            .records
            .retain(|name, _| workspaces.binary_search(name).is_ok());
        self.state.cycles += 1;
        self.state.last_duration = Some(started.elapsed());
        let snapshot = self.snapshot(unix_now());
        let published = Arc::new(Published::render(snapshot, true));
        *self
            .published
            .write()
            .expect("the publication lock is never poisoned: nothing panics while holding it") =
            published;
    }

    /// The workspaces to poll this cycle: the static list or discovery, filtered by allow/deny
    /// and the shard, sorted. A failed discovery keeps the last known list.
    async fn select_workspaces(&mut self) -> Vec<String> {
        let settings = Arc::clone(&self.settings);
        let selection = &settings.workspaces;
        let names = if selection.static_list.is_empty() {
            match self.discover().await {
                Some(names) => names,
                None => self.state.workspaces.clone(),
            }
        } else {
            selection.static_list.clone()
        };
        let selected = select_workspaces(names, selection, settings.shard);
        self.state.workspaces = selected.clone();
        selected
    }

    async fn discover(&mut self) -> Option<Vec<String>> {
        let preferred =
            self.state
                .api_version
                .unwrap_or(match self.settings.honcho.api_generation {
                    GenerationOverride::A => ApiVersion::V2,
                    _ => ApiVersion::V3,
                });
        let mut result = self.client.list_workspaces(preferred).await;
        if let Err(error) = &result
            && error.is_not_found()
            && self.settings.honcho.api_generation == GenerationOverride::Auto
        {
            let other = other_version(preferred);
            let retried = self.client.list_workspaces(other).await;
            if retried.is_ok() {
                tracing::info!(version = ?other, "Honcho answers on another API version; switching");
                switch_api_version(&mut self.state, other);
            }
            result = retried;
        }
        let now = unix_now();
        let previous = self.state.discovery.unwrap_or_default();
        match result {
            Ok(names) => {
                if self.state.api_version.is_none() {
                    self.state.api_version = Some(preferred);
                }
                self.state.discovery = Some(EndpointHealth {
                    up: true,
                    last_success: Some(now),
                });
                Some(names)
            }
            Err(error) => {
                *self
                    .state
                    .errors
                    .entry((Endpoint::Discovery, error.reason()))
                    .or_insert(0) += 1;
                if previous.up || self.state.discovery.is_none() {
                    let hint = if matches!(error.reason(), "http_401" | "http_403") {
                        " (workspaces/list needs an admin token; with a workspace token, list the workspaces with --workspaces)"
                    } else {
                        ""
                    };
                    tracing::warn!(reason = error.reason(), %error, "workspace discovery failed{hint}");
                }
                self.state.discovery = Some(EndpointHealth {
                    up: false,
                    last_success: previous.last_success,
                });
                None
            }
        }
    }

    /// Which workspaces get the work-units walk this cycle. While the endpoint is known to be
    /// absent, one workspace re-probes it each cycle (an upgraded Honcho is noticed).
    fn walk_plan(&self, workspaces: &[String], version: ApiVersion) -> HashSet<String> {
        let settings = &self.settings;
        let allowed = settings.work_units.enabled
            && version == ApiVersion::V3
            && !matches!(
                settings.honcho.api_generation,
                GenerationOverride::A | GenerationOverride::B
            );
        if !allowed {
            return HashSet::new();
        }
        match self.state.work_units_available {
            Some(false) if settings.honcho.api_generation == GenerationOverride::Auto => {
                workspaces.iter().take(1).cloned().collect()
            }
            _ => workspaces.iter().cloned().collect(),
        }
    }

    fn merge(&mut self, outcome: WorkspaceOutcome, now: f64) {
        let state = &mut self.state;
        if let Some(version) = outcome.switched_version {
            tracing::info!(?version, "Honcho answers on another API version; switching");
            switch_api_version(state, version);
        } else if state.api_version.is_none() && outcome.status.is_ok() {
            state.api_version = Some(match self.settings.honcho.api_generation {
                GenerationOverride::A => ApiVersion::V2,
                _ => ApiVersion::V3,
            });
        }
        let record = state.records.entry(outcome.name.clone()).or_default();
        let workspace = outcome.name.as_str();
        match outcome.status {
            Ok(summary) => {
                state.status_split = Some(summary.counts.has_split());
                *state.capped.entry("session_items").or_insert(0) += summary.capped_sessions;
                record.status = Some((now, summary));
                mark(record, Endpoint::Status, None, now, workspace);
            }
            Err(error) => {
                *state
                    .errors
                    .entry((Endpoint::Status, error.reason()))
                    .or_insert(0) += 1;
                mark(record, Endpoint::Status, Some(&error), now, workspace);
            }
        }
        if !outcome.scopes.is_empty() {
            let mut first_error = None;
            for (scope, result) in outcome.scopes {
                match result {
                    Ok(counts) => {
                        record.scopes.insert(scope, (now, counts));
                    }
                    Err(error) => {
                        *state
                            .errors
                            .entry((Endpoint::Scope, error.reason()))
                            .or_insert(0) += 1;
                        first_error.get_or_insert(error);
                    }
                }
            }
            mark(
                record,
                Endpoint::Scope,
                first_error.as_ref(),
                now,
                workspace,
            );
        }
        match outcome.walk {
            WalkResult::Skipped => {}
            WalkResult::Unavailable => {
                if state.work_units_available != Some(false) {
                    tracing::info!(
                        "Honcho has no queue/work-units endpoint (not generation C): work-unit metrics are unavailable"
                    );
                }
                state.work_units_available = Some(false);
                record.health.remove(&Endpoint::WorkUnits);
                record.work_units = None;
                record.walk_truncated = false;
                // The threshold and flush flag come from the work-units envelope only.
                state.batch_max_tokens = None;
                state.flush_enabled = None;
            }
            WalkResult::Done(done) => {
                let (aggregate, walk) = *done;
                if state.work_units_available != Some(true) {
                    tracing::info!("Honcho has the queue/work-units endpoint: walking work units");
                }
                state.work_units_available = Some(true);
                state.batch_max_tokens = aggregate.batch_max_tokens.or(state.batch_max_tokens);
                state.flush_enabled = aggregate.flush_enabled.or(state.flush_enabled);
                *state.capped.entry("work_unit_detail").or_insert(0) += aggregate.capped_detail;
                if walk.truncated {
                    *state
                        .errors
                        .entry((Endpoint::WorkUnits, "page_cap"))
                        .or_insert(0) += 1;
                    if !record.walk_truncated {
                        tracing::warn!(
                            workspace,
                            pages = walk.pages,
                            "work-units walk stopped at the page cap; work-unit metrics cover the oldest units only"
                        );
                    }
                }
                record.walk_truncated = walk.truncated;
                let invalid_before = record
                    .work_units
                    .as_ref()
                    .map_or(0, |(_, previous)| previous.invalid_timestamps);
                if aggregate.invalid_timestamps > 0 && invalid_before == 0 {
                    // Once, when they appear; the gauge tells how many there are each cycle.
                    tracing::warn!(
                        workspace,
                        units = aggregate.invalid_timestamps,
                        example = aggregate.first_invalid_timestamp.as_deref().unwrap_or(""),
                        "work units whose oldest_item_at is not a timestamp: their age is unknown, so they are in no state (honcho_exporter_work_units_invalid_timestamp)"
                    );
                }
                record.work_units = Some((now, aggregate));
                mark(record, Endpoint::WorkUnits, None, now, workspace);
            }
            WalkResult::Failed(error) => {
                *state
                    .errors
                    .entry((Endpoint::WorkUnits, error.reason()))
                    .or_insert(0) += 1;
                mark(record, Endpoint::WorkUnits, Some(&error), now, workspace);
            }
        }
    }

    /// The snapshot at `now`: every record, minus values older than max staleness.
    fn snapshot(&self, now: f64) -> Snapshot {
        let state = &self.state;
        let oldest_allowed = now - self.settings.poll.max_staleness.as_secs_f64();
        let fresh = |fetched_at: f64| fetched_at >= oldest_allowed;
        let workspaces = state
            .records
            .iter()
            .map(|(name, record)| {
                let snapshot = WorkspaceSnapshot {
                    status: record
                        .status
                        .as_ref()
                        .filter(|(at, _)| fresh(*at))
                        .map(|(_, summary)| summary.clone()),
                    work_units: record
                        .work_units
                        .as_ref()
                        .filter(|(at, _)| fresh(*at))
                        .map(|(_, aggregate)| aggregate.clone()),
                    walk_truncated: record.walk_truncated,
                    scopes: record
                        .scopes
                        .iter()
                        .filter(|(_, (at, _))| fresh(*at))
                        .map(|(scope, (_, counts))| (scope.clone(), *counts))
                        .collect(),
                    health: record.health.clone(),
                };
                (name.clone(), snapshot)
            })
            .collect();
        let generation = state.api_version.map(|version| match version {
            ApiVersion::V2 => Generation::A,
            ApiVersion::V3 => match (state.work_units_available, state.status_split) {
                (Some(true), _) => Generation::C,
                (None, Some(true)) => Generation::C,
                _ => Generation::B,
            },
        });
        Snapshot {
            taken_at: now,
            workspaces,
            batch_max_tokens: state.batch_max_tokens,
            flush_enabled: state.flush_enabled,
            exporter: ExporterStats {
                poll_duration: state.last_duration,
                poll_interval: self.settings.poll.interval,
                poll_cycles: state.cycles,
                requests: self.client.request_counts(),
                errors: state.errors.clone(),
                capped: state.capped.clone(),
                discovery: state.discovery,
                generation,
                status_split: state.status_split,
                work_units_available: state.work_units_available,
                token_reload_errors: self.client.token_reload_errors(),
            },
        }
    }
}

/// Uses `version` from now on. On 2.x the features are unknown again and everything learnt
/// from a generation C walk is dropped: the server no longer has the walk (downgraded).
fn switch_api_version(state: &mut PollState, version: ApiVersion) {
    state.api_version = Some(version);
    if version == ApiVersion::V2 {
        state.work_units_available = None;
        state.status_split = None;
        forget_work_units(state);
    }
}

/// Drops every workspace's work-unit data and health, and the deriver settings read from the
/// work-units envelope.
fn forget_work_units(state: &mut PollState) {
    state.batch_max_tokens = None;
    state.flush_enabled = None;
    for record in state.records.values_mut() {
        record.work_units = None;
        record.walk_truncated = false;
        record.health.remove(&Endpoint::WorkUnits);
    }
}

fn other_version(version: ApiVersion) -> ApiVersion {
    match version {
        ApiVersion::V2 => ApiVersion::V3,
        ApiVersion::V3 => ApiVersion::V2,
    }
}

/// Records an endpoint's result; logs only when its health changes (no log storm).
fn mark(
    record: &mut WorkspaceRecord,
    endpoint: Endpoint,
    error: Option<&UpstreamError>,
    now: f64,
    workspace: &str,
) {
    let previous = record.health.get(&endpoint).copied();
    let health = record.health.entry(endpoint).or_default();
    match error {
        None => {
            if previous.is_some_and(|health| !health.up) {
                tracing::info!(
                    workspace,
                    endpoint = endpoint.as_str(),
                    "Honcho endpoint recovered"
                );
            }
            health.up = true;
            health.last_success = Some(now);
        }
        Some(error) => {
            if previous.is_none_or(|health| health.up) {
                tracing::warn!(workspace, endpoint = endpoint.as_str(), reason = error.reason(), %error, "polling Honcho failed");
            } else {
                tracing::debug!(workspace, endpoint = endpoint.as_str(), reason = error.reason(), %error, "polling Honcho still fails");
            }
            health.up = false;
        }
    }
}

async fn poll_workspace(
    client: &Client,
    settings: &Settings,
    name: String,
    version: ApiVersion,
    walk: bool,
) -> WorkspaceOutcome {
    let unfiltered = StatusFilter::default();
    let mut switched_version = None;
    let mut status = client
        .fetch_status(version, &name, &unfiltered, Endpoint::Status)
        .await;
    if let Err(error) = &status
        && error.is_not_found()
        && settings.honcho.api_generation == GenerationOverride::Auto
    {
        let other = other_version(version);
        let retried = client
            .fetch_status(other, &name, &unfiltered, Endpoint::Status)
            .await;
        if retried.is_ok() {
            switched_version = Some(other);
        }
        status = retried;
    }
    let effective_version = switched_version.unwrap_or(version);
    let status = status.map(|status| summarize_status(status, settings.sessions.max_per_workspace));
    let mut scopes = Vec::new();
    if status.is_ok() {
        for scope in &settings.scopes {
            if !scope.workspaces.is_empty() && !scope.workspaces.contains(&name) {
                continue;
            }
            let filter = StatusFilter {
                observer_id: scope.observer_id.clone(),
                sender_id: scope.sender_id.clone(),
                session_id: scope.session_id.clone(),
            };
            let result = client
                .fetch_status(effective_version, &name, &filter, Endpoint::Scope)
                .await
                .map(|status| status.counts);
            scopes.push((scope.name.clone(), result));
        }
    }
    // The walk does not depend on the status call: when status fails for another reason than a
    // missing route, the walk still runs, so `up{endpoint="work_units"}` says what it saw rather
    // than keeping last cycle's value. Only the session names wanted need the status.
    let status_route_missing = status.as_ref().is_err_and(UpstreamError::is_not_found);
    let walk = if walk && effective_version == ApiVersion::V3 && !status_route_missing {
        let wanted: HashSet<String> = status
            .as_ref()
            .map(|summary| {
                summary
                    .sessions
                    .iter()
                    .map(|row| row.session_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut aggregator = WorkUnitAggregator::new(
            unix_now(),
            settings.classify.overdue_after,
            settings.work_units.detail_limit,
            wanted,
        );
        let result = client
            .walk_work_units(
                &name,
                settings.work_units.page_size,
                settings.work_units.max_pages,
                |page| aggregator.add_page(page),
            )
            .await;
        match result {
            Ok(outcome) => WalkResult::Done(Box::new((aggregator.finish(), outcome))),
            Err(error)
                if error.is_not_found()
                    && settings.honcho.api_generation == GenerationOverride::Auto =>
            {
                WalkResult::Unavailable
            }
            Err(error) => WalkResult::Failed(error),
        }
    } else {
        WalkResult::Skipped
    };
    WorkspaceOutcome {
        name,
        switched_version,
        status,
        scopes,
        walk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_workspaces() {
        let names: Vec<String> = (0..1000).map(|i| format!("workspace-{i}")).collect();
        for count in [1u32, 2, 3, 4, 7] {
            let mut seen = 0;
            for index in 0..count {
                seen += names
                    .iter()
                    .filter(|name| shard_of(name, count) == index)
                    .count();
            }
            assert_eq!(
                seen,
                names.len(),
                "count {count}: every workspace in exactly one shard"
            );
        }
    }

    #[test]
    fn shard_of_is_stable_across_releases() {
        // Pinned values: changing the hash would move every workspace to another replica.
        assert_eq!(shard_of("acme-support", 4), shard_of("acme-support", 4));
        assert_eq!(shard_of("", 3), (0xcbf2_9ce4_8422_2325u64 % 3) as u32);
    }

    fn shards(names: &[String], count: u32, selection: &WorkspaceSelection) -> Vec<Vec<String>> {
        (0..count)
            .map(|index| {
                select_workspaces(names.to_vec(), selection, ShardSettings { count, index })
            })
            .collect()
    }

    #[test]
    fn adding_or_removing_workspaces_moves_no_other_workspace_and_the_union_stays_whole() {
        let everything = WorkspaceSelection {
            static_list: Vec::new(),
            allow: None,
            deny: None,
        };
        let before: Vec<String> = (0..200).map(|i| format!("ws-{i}")).collect();
        let mut after: Vec<String> = before
            .iter()
            .filter(|name| !name.ends_with('7'))
            .cloned()
            .collect();
        after.extend((200..260).map(|i| format!("ws-{i}")));
        for count in [2u32, 3, 4] {
            let old = shards(&before, count, &everything);
            let new = shards(&after, count, &everything);
            let mut union: Vec<String> = new.concat();
            union.sort();
            let mut expected = after.clone();
            expected.sort();
            assert_eq!(
                union, expected,
                "count {count}: disjoint shards whose union is the new set"
            );
            for (index, shard) in new.iter().enumerate() {
                for name in shard.iter().filter(|name| before.contains(name)) {
                    assert!(
                        old[index].contains(name),
                        "count {count}: {name} moved away from shard {index}"
                    );
                }
            }
        }
    }

    #[test]
    fn allow_then_deny_then_shard() {
        let selection = WorkspaceSelection {
            static_list: Vec::new(),
            allow: Some(regex::Regex::new("^(?:prod-.*)$").expect("regex")),
            deny: Some(regex::Regex::new("^(?:prod-test)$").expect("regex")),
        };
        let names = vec![
            "prod-a".to_string(),
            "prod-test".into(),
            "dev-a".into(),
            "prod-a".into(),
        ];
        let selected = select_workspaces(names, &selection, ShardSettings { count: 1, index: 0 });
        assert_eq!(selected, ["prod-a"]);
    }
}
