//! The poller's memory and the pure merge of poll outcomes into it; its `view` submodule
//! builds the [`crate::snapshot::Snapshot`] of what may be served at a given time from it.
//!
//! Owns: per-workspace records (successes only, each with the time it arrived), endpoint
//! health and its log transitions, error and cap counters, and the generation verdicts (through
//! [`GenerationDetector`]). Pure: no I/O and no clock (every function takes `now`), so it is
//! tested over made-up outcomes. Must not decide *when* to poll (that is the poll loop's job).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::config::GenerationOverride;
use crate::honcho::types::ItemCounts;
use crate::honcho::{ApiVersion, UpstreamError, WalkOutcome};
use crate::snapshot::{EndpointHealth, StatusSummary, WorkUnitAggregate};
use crate::upstream::Endpoint;

mod view;

pub use view::Servable;

use super::generation::{Change, GenerationDetector, NotFoundMeaning, WorkUnitsAnswer};
use crate::source::bookkeeping::{Counters, Health, Stamp, Transition};

/// The head of a walk: its first page, aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The first page's units.
    pub aggregate: WorkUnitAggregate,
    /// `total`: the number of units Honcho lists.
    pub total: u64,
    /// The page's newest `oldest_item_at` (every older unit is on the page); `None` when the
    /// page was empty.
    pub boundary: Option<f64>,
    /// The page was the whole walk (no next page): it is a complete walk.
    pub complete: bool,
}

/// What is remembered of one workspace: successes only, with their times.
#[derive(Debug, Clone, Default)]
struct WorkspaceRecord {
    status: Option<(Stamp, StatusSummary)>,
    /// The last complete walk and its duration.
    walk: Option<(Stamp, Duration, WorkUnitAggregate)>,
    head: Option<(Stamp, Head)>,
    walk_truncated: bool,
    /// A full walk has ended (complete or failed) at least once.
    walk_ended: bool,
    /// The last full walk failed: `up{upstream="work_units"}` stays 0 until one completes,
    /// whatever the head (a first page that still works) says.
    walk_failing: bool,
    scopes: BTreeMap<String, (Stamp, ItemCounts)>,
    health: BTreeMap<Endpoint, EndpointHealth>,
}

/// How one workspace's queue/status poll ended.
#[derive(Debug)]
pub struct StatusOutcome {
    /// The workspace.
    pub workspace: String,
    /// The API version that answered (the one tried first, or the other after a 404).
    pub version: ApiVersion,
    /// The summary, or why there is none.
    pub status: Result<StatusSummary, UpstreamError>,
    /// Each configured scope's counts (empty when the status call failed).
    pub scopes: Vec<(String, Result<ItemCounts, UpstreamError>)>,
}

/// How one workspace's work-units walk ended.
#[derive(Debug)]
pub enum WalkResult {
    /// A complete (or page-capped) walk.
    Done(Box<(WorkUnitAggregate, WalkOutcome)>),
    /// The walk failed; a 404 is judged by [`GenerationDetector`].
    Failed(UpstreamError),
}

/// The poller's state.
#[derive(Debug, Clone)]
pub struct PollState {
    max_staleness: Duration,
    detail_limit: usize,
    poll_interval: Duration,
    generation: GenerationDetector,
    batch_max_tokens: Option<u64>,
    flush_enabled: Option<bool>,
    workspaces: Vec<String>,
    /// Shared with publications: publishing clones the map (reference counts, not records), and
    /// a change copies only the record it changes while a publication still holds it.
    records: BTreeMap<String, Arc<WorkspaceRecord>>,
    discovery: Health,
    counters: Counters,
}

impl PollState {
    /// An empty state: values are served for `max_staleness` (plus their job's duty stretch)
    /// after they arrive; `detail_limit` problem units per workspace.
    pub fn new(
        generation: GenerationOverride,
        poll_interval: Duration,
        max_staleness: Duration,
        detail_limit: usize,
    ) -> Self {
        PollState {
            max_staleness,
            detail_limit,
            poll_interval,
            generation: GenerationDetector::new(generation, max_staleness.as_secs_f64()),
            batch_max_tokens: None,
            flush_enabled: None,
            workspaces: Vec::new(),
            records: BTreeMap::new(),
            discovery: Health::default(),
            counters: Counters::default(),
        }
    }

    /// The generation verdicts (read-only).
    pub fn generation(&self) -> &GenerationDetector {
        &self.generation
    }

    /// The generation verdicts, for planning the walks (rotating probes).
    pub fn generation_mut(&mut self) -> &mut GenerationDetector {
        &mut self.generation
    }

    /// The last selected workspaces (kept when discovery fails).
    pub fn workspaces(&self) -> &[String] {
        &self.workspaces
    }

    /// Whether `workspace` is polled (results of a workspace dropped meanwhile are ignored).
    pub fn is_polled(&self, workspace: &str) -> bool {
        self.workspaces
            .binary_search_by(|name| name.as_str().cmp(workspace))
            .is_ok()
    }

    /// The session ids whose names the walk should keep: those the status summary exports.
    pub fn wanted_sessions(&self, workspace: &str) -> HashSet<String> {
        self.records
            .get(workspace)
            .and_then(|record| record.status.as_ref())
            .map(|(_, summary)| {
                summary
                    .sessions
                    .iter()
                    .map(|row| row.session_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `workspace` has had a queue/status outcome and, when `walked`, a full walk that
    /// ended (complete or failed).
    pub fn has_outcomes(&self, workspace: &str, walked: bool) -> bool {
        self.records.get(workspace).is_some_and(|record| {
            record.health.contains_key(&Endpoint::Status) && (!walked || record.walk_ended)
        })
    }

    /// Sets the polled workspaces; records of the others are dropped.
    pub fn set_workspaces(&mut self, workspaces: Vec<String>) {
        self.records
            .retain(|name, _| workspaces.binary_search(name).is_ok());
        self.workspaces = workspaces;
    }

    /// A round of polls ended after `duration`.
    pub fn cycle_done(&mut self, duration: Duration) {
        self.counters.cycle_done(duration);
    }

    /// Discovery succeeded on `version`.
    pub fn discovery_succeeded(&mut self, version: ApiVersion, now: f64) {
        if let Some(change) = self.generation.discovered_on(version) {
            self.apply(change);
        }
        self.discovery.succeeded(now);
    }

    /// Discovery failed; logs on the transition only.
    pub fn discovery_failed(&mut self, error: &UpstreamError) {
        self.count_error(Endpoint::Discovery, error.reason());
        if self.discovery.failed() == Transition::Failed {
            let hint = if matches!(error.reason(), "http_401" | "http_403") {
                " (workspaces/list needs an admin token; with a workspace token, list the workspaces with --workspaces)"
            } else {
                ""
            };
            tracing::warn!(reason = error.reason(), %error, "workspace discovery failed{hint}");
        }
    }

    /// Merges one workspace's queue/status (+ scopes) outcome that arrived at `now`; a success
    /// is served for `max_staleness + stretch`.
    pub fn merge_status(&mut self, outcome: StatusOutcome, now: f64, stretch: Duration) {
        let stamp = self.stamp(now, stretch);
        let plain = self.max_staleness.as_secs_f64();
        let workspace = outcome.workspace.as_str();
        if let Ok(summary) = &outcome.status {
            let has_split = summary.counts.has_split();
            if let Some(change) =
                self.generation
                    .status_answered(workspace, outcome.version, has_split, now)
            {
                self.apply(change);
            }
        }
        let record = Arc::make_mut(self.records.entry(outcome.workspace.clone()).or_default());
        match outcome.status {
            Ok(summary) => {
                self.counters
                    .count_capped("session_items", summary.capped_sessions);
                record.status = Some((stamp, summary));
                mark(record, Endpoint::Status, None, now, workspace);
            }
            Err(error) => {
                self.counters.count_error(Endpoint::Status, error.reason());
                // A failed poll: the last success is served up to the plain bound only.
                if let Some((stamp, _)) = record.status.as_mut() {
                    stamp.until = stamp.until.min(stamp.at + plain);
                }
                mark(record, Endpoint::Status, Some(&error), now, workspace);
            }
        }
        if !outcome.scopes.is_empty() {
            let mut first_error = None;
            for (scope, result) in outcome.scopes {
                match result {
                    Ok(counts) => {
                        record.scopes.insert(scope, (stamp, counts));
                    }
                    Err(error) => {
                        self.counters.count_error(Endpoint::Scope, error.reason());
                        if let Some((stamp, _)) = record.scopes.get_mut(&scope) {
                            stamp.until = stamp.until.min(stamp.at + plain);
                        }
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
    }

    /// Merges one workspace's full walk that ended at `now` after `duration`; a complete walk's
    /// counts are served for `max_staleness + stretch + duration` (until the next walk, which
    /// starts `stretch` later than an interval and takes about as long, replaces them). A failed
    /// walk cuts the last complete one back to the plain bound.
    pub fn merge_walk(
        &mut self,
        workspace: &str,
        result: WalkResult,
        now: f64,
        duration: Duration,
        stretch: Duration,
    ) {
        Arc::make_mut(self.records.entry(workspace.to_string()).or_default()).walk_ended = true;
        match result {
            WalkResult::Done(done) => {
                let (aggregate, walk) = *done;
                self.work_units_present(workspace, now);
                self.batch_max_tokens = aggregate.batch_max_tokens.or(self.batch_max_tokens);
                self.flush_enabled = aggregate.flush_enabled.or(self.flush_enabled);
                self.counters
                    .count_capped("work_unit_detail", aggregate.capped_detail);
                let stamp = self.stamp(now, stretch + duration);
                let record = Arc::make_mut(self.records.entry(workspace.to_string()).or_default());
                if walk.truncated {
                    self.counters.count_error(Endpoint::WorkUnits, "page_cap");
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
                    .walk
                    .as_ref()
                    .map_or(0, |(_, _, previous)| previous.invalid_timestamps);
                if aggregate.invalid_timestamps > 0 && invalid_before == 0 {
                    // Once, when they appear; the gauge tells how many there are each walk.
                    tracing::warn!(
                        workspace,
                        units = aggregate.invalid_timestamps,
                        example = aggregate.first_invalid_timestamp.as_deref().unwrap_or(""),
                        "work units whose oldest_item_at is not a timestamp: their age is unknown, so they are in no state (honcho_exporter_work_units_invalid_timestamp)"
                    );
                }
                record.walk = Some((stamp, duration, aggregate));
                record.walk_failing = false;
                mark(record, Endpoint::WorkUnits, None, now, workspace);
            }
            WalkResult::Failed(error) => {
                let plain = self.max_staleness.as_secs_f64();
                if let Some(record) = self.records.get_mut(workspace).map(Arc::make_mut) {
                    if let Some((stamp, _, _)) = record.walk.as_mut() {
                        stamp.until = stamp.until.min(stamp.at + plain);
                    }
                    record.walk_failing = true;
                }
                self.work_units_failed(workspace, error, now);
            }
        }
    }

    /// Merges one workspace's head of the walk (its first page) that arrived at `now`. A head
    /// that is the whole walk is also a complete walk.
    pub fn merge_head(
        &mut self,
        workspace: &str,
        result: Result<Head, UpstreamError>,
        now: f64,
        duration: Duration,
        stretch: Duration,
    ) {
        match result {
            Ok(head) => {
                if head.complete {
                    let walk = WalkResult::Done(Box::new((
                        head.aggregate.clone(),
                        WalkOutcome {
                            pages: 1,
                            truncated: false,
                        },
                    )));
                    self.merge_walk(workspace, walk, now, duration, stretch);
                } else {
                    self.work_units_present(workspace, now);
                    self.batch_max_tokens =
                        head.aggregate.batch_max_tokens.or(self.batch_max_tokens);
                    self.flush_enabled = head.aggregate.flush_enabled.or(self.flush_enabled);
                    let record =
                        Arc::make_mut(self.records.entry(workspace.to_string()).or_default());
                    if !record.walk_failing {
                        mark(record, Endpoint::WorkUnits, None, now, workspace);
                    }
                }
                let stamp = self.stamp(now, stretch);
                if let Some(record) = self.records.get_mut(workspace).map(Arc::make_mut) {
                    record.head = Some((stamp, head));
                }
            }
            Err(error) => {
                let plain = self.max_staleness.as_secs_f64();
                if let Some(record) = self.records.get_mut(workspace).map(Arc::make_mut)
                    && let Some((stamp, _)) = record.head.as_mut()
                {
                    stamp.until = stamp.until.min(stamp.at + plain);
                }
                self.work_units_failed(workspace, error, now);
            }
        }
    }

    fn stamp(&self, now: f64, stretch: Duration) -> Stamp {
        Stamp::new(now, self.max_staleness + stretch)
    }

    fn work_units_present(&mut self, workspace: &str, now: f64) {
        let (change, _) =
            self.generation
                .work_units_answered(workspace, WorkUnitsAnswer::Present, now);
        if let Some(change) = change {
            self.apply(change);
        }
    }

    fn work_units_failed(&mut self, workspace: &str, error: UpstreamError, now: f64) {
        if error.is_not_found() {
            let (change, meaning) =
                self.generation
                    .work_units_answered(workspace, WorkUnitsAnswer::NotFound, now);
            if let Some(change) = change {
                self.apply(change);
            }
            if meaning == NotFoundMeaning::Unavailable {
                // The server has no walk: no error, no health, no series.
                if let Some(record) = self.records.get_mut(workspace).map(Arc::make_mut) {
                    forget_walk(record);
                }
                return;
            }
        }
        self.counters
            .count_error(Endpoint::WorkUnits, error.reason());
        let record = Arc::make_mut(self.records.entry(workspace.to_string()).or_default());
        mark(record, Endpoint::WorkUnits, Some(&error), now, workspace);
    }

    /// Acts on a generation verdict change.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Version(version) => {
                tracing::info!(?version, "Honcho answers on another API version; switching");
                self.forget_work_units();
            }
            Change::WorkUnitsAppeared => {
                tracing::info!("Honcho has the queue/work-units endpoint: walking work units");
            }
            Change::WorkUnitsGone => {
                tracing::info!(
                    "Honcho has no queue/work-units endpoint (not generation C): work-unit metrics are unavailable"
                );
                self.forget_work_units();
            }
        }
    }

    /// Drops every workspace's work-unit data and health, and the deriver settings read from
    /// the work-units envelope.
    fn forget_work_units(&mut self) {
        self.batch_max_tokens = None;
        self.flush_enabled = None;
        for record in self.records.values_mut() {
            forget_walk(Arc::make_mut(record));
        }
    }

    fn count_error(&mut self, endpoint: Endpoint, reason: &'static str) {
        self.counters.count_error(endpoint, reason);
    }
}

/// Drops one workspace's work-unit data and health.
fn forget_walk(record: &mut WorkspaceRecord) {
    record.walk = None;
    record.head = None;
    record.walk_truncated = false;
    record.health.remove(&Endpoint::WorkUnits);
}

/// Records an endpoint's result; logs only when its health changes (no log storm).
fn mark(
    record: &mut WorkspaceRecord,
    endpoint: Endpoint,
    error: Option<&UpstreamError>,
    now: f64,
    workspace: &str,
) {
    let mut health = Health::from(record.health.get(&endpoint).copied());
    let endpoint_name = endpoint.as_str();
    match error {
        None => {
            if health.succeeded(now) == Transition::Recovered {
                tracing::info!(
                    workspace,
                    endpoint = endpoint_name,
                    "Honcho endpoint recovered"
                );
            }
        }
        Some(error) => {
            if health.failed() == Transition::Failed {
                tracing::warn!(workspace, endpoint = endpoint_name, reason = error.reason(), %error, "polling Honcho failed");
            } else {
                tracing::debug!(workspace, endpoint = endpoint_name, reason = error.reason(), %error, "polling Honcho still fails");
            }
        }
    }
    record.health.insert(endpoint, health.or_down());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::honcho::RequestCounts;
    use crate::snapshot::{Generation, Snapshot};

    const INTERVAL: Duration = Duration::from_secs(15);

    fn state() -> PollState {
        let mut state = PollState::new(GenerationOverride::Auto, INTERVAL, INTERVAL * 3, 20);
        state.set_workspaces(names(4));
        state
    }

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("ws-{i}")).collect()
    }

    fn counts(pending: u64) -> ItemCounts {
        ItemCounts {
            total: pending,
            pending,
            pending_ready: Some(pending),
            pending_stalled: Some(0),
            ..ItemCounts::default()
        }
    }

    fn status_ok(workspace: &str, pending: u64) -> StatusOutcome {
        StatusOutcome {
            workspace: workspace.to_string(),
            version: ApiVersion::V3,
            status: Ok(StatusSummary {
                counts: counts(pending),
                sessions: Vec::new(),
                capped_sessions: 0,
            }),
            scopes: Vec::new(),
        }
    }

    fn walked() -> WalkResult {
        WalkResult::Done(Box::new((
            WorkUnitAggregate::default(),
            WalkOutcome {
                pages: 1,
                truncated: false,
            },
        )))
    }

    fn not_found() -> WalkResult {
        WalkResult::Failed(UpstreamError::Status {
            status: 404,
            detail: "Not Found".to_string(),
            retry_after: None,
        })
    }

    fn health(snapshot: &Snapshot, workspace: &str, endpoint: Endpoint) -> Option<EndpointHealth> {
        snapshot.workspaces[workspace]
            .health
            .get(&endpoint)
            .copied()
    }

    /// One cycle: every workspace's status, then walks in the given order with the given result.
    fn cycle(state: &mut PollState, now: f64, walks: &[(&str, bool)]) -> Snapshot {
        for workspace in names(4) {
            state.merge_status(status_ok(&workspace, 3), now, Duration::ZERO);
        }
        for (workspace, found) in walks {
            state.merge_walk(
                workspace,
                if *found { walked() } else { not_found() },
                now,
                Duration::ZERO,
                Duration::ZERO,
            );
        }
        state.snapshot(now, RequestCounts::new())
    }

    #[test]
    fn one_slow_workspace_answering_404_marks_only_its_walk_down() {
        let mut state = state();
        let all_found = [
            ("ws-0", true),
            ("ws-1", true),
            ("ws-2", true),
            ("ws-3", true),
        ];
        cycle(&mut state, 0.0, &all_found);
        let one_missing = [
            ("ws-0", true),
            ("ws-1", true),
            ("ws-2", true),
            ("ws-3", false),
        ];
        for step in 1..5u32 {
            let now = f64::from(step) * 15.0;
            let snapshot = cycle(&mut state, now, &one_missing);
            assert_eq!(
                snapshot.exporter.generation,
                Some(Generation::C),
                "step {step}"
            );
            assert_eq!(snapshot.exporter.work_units_available, Some(true));
            for workspace in ["ws-0", "ws-1", "ws-2"] {
                let up = health(&snapshot, workspace, Endpoint::WorkUnits).expect("health");
                assert!(up.up, "step {step}: {workspace} walked and up");
                assert_eq!(up.last_success, Some(now), "{workspace} walked every cycle");
            }
            let down = health(&snapshot, "ws-3", Endpoint::WorkUnits).expect("ws-3 health");
            assert!(!down.up, "step {step}: ws-3's own walk is down");
            assert_eq!(
                snapshot.exporter.errors[&(Endpoint::WorkUnits, "http_4xx")],
                u64::from(step)
            );
        }
    }

    #[test]
    fn when_every_workspace_answers_404_every_work_unit_health_and_series_go() {
        let mut state = state();
        let all_found = [
            ("ws-0", true),
            ("ws-1", true),
            ("ws-2", true),
            ("ws-3", true),
        ];
        cycle(&mut state, 0.0, &all_found);
        cycle(
            &mut state,
            15.0,
            &[
                ("ws-0", true),
                ("ws-1", true),
                ("ws-2", true),
                ("ws-3", false),
            ],
        );
        let all_missing = [
            ("ws-0", false),
            ("ws-1", false),
            ("ws-2", false),
            ("ws-3", false),
        ];
        let snapshot = cycle(&mut state, 30.0, &all_missing);
        assert_eq!(snapshot.exporter.generation, Some(Generation::B));
        assert_eq!(snapshot.exporter.work_units_available, Some(false));
        for workspace in names(4) {
            assert_eq!(
                health(&snapshot, &workspace, Endpoint::WorkUnits),
                None,
                "{workspace}: no work-units health once the endpoint is gone"
            );
            assert!(snapshot.workspaces[&workspace].work_units.is_none());
        }
    }

    #[test]
    fn values_older_than_max_staleness_are_not_served() {
        let mut state = state();
        state.merge_status(status_ok("ws-0", 3), 0.0, Duration::ZERO);
        assert!(
            state.snapshot(44.9, RequestCounts::new()).workspaces["ws-0"]
                .status
                .is_some()
        );
        assert!(
            state.snapshot(45.0, RequestCounts::new()).workspaces["ws-0"]
                .status
                .is_none()
        );
    }

    #[test]
    fn a_failed_poll_keeps_the_last_success_until_it_is_stale_but_says_down() {
        let mut state = state();
        state.merge_status(status_ok("ws-0", 3), 0.0, Duration::ZERO);
        state.merge_status(
            StatusOutcome {
                workspace: "ws-0".to_string(),
                version: ApiVersion::V3,
                status: Err(UpstreamError::Timeout(Duration::from_secs(10))),
                scopes: Vec::new(),
            },
            15.0,
            Duration::ZERO,
        );
        let snapshot = state.snapshot(20.0, RequestCounts::new());
        let workspace = &snapshot.workspaces["ws-0"];
        assert_eq!(workspace.status.as_ref().map(|s| s.counts.pending), Some(3));
        let status = workspace.health[&Endpoint::Status];
        assert!(!status.up);
        assert_eq!(status.last_success, Some(0.0));
        assert_eq!(snapshot.exporter.errors[&(Endpoint::Status, "timeout")], 1);
    }

    #[test]
    fn a_workspace_no_longer_selected_is_forgotten() {
        let mut state = state();
        state.merge_status(status_ok("ws-3", 3), 0.0, Duration::ZERO);
        state.set_workspaces(names(3));
        assert!(
            !state
                .snapshot(1.0, RequestCounts::new())
                .workspaces
                .contains_key("ws-3")
        );
    }

    fn head(oldest: &[f64], total: u64, complete: bool) -> Head {
        let mut aggregate = WorkUnitAggregate::default();
        for timestamp in oldest {
            let cell = &mut aggregate.cells[0][1];
            cell.units += 1;
            cell.oldest_item_timestamp = Some(
                cell.oldest_item_timestamp
                    .map_or(*timestamp, |old: f64| old.min(*timestamp)),
            );
        }
        Head {
            aggregate,
            total,
            boundary: oldest.iter().copied().reduce(f64::max),
            complete,
        }
    }

    fn walk_of(units: u64, oldest: f64) -> WalkResult {
        let mut aggregate = WorkUnitAggregate::default();
        aggregate.cells[0][1].units = units;
        aggregate.cells[0][1].oldest_item_timestamp = Some(oldest);
        WalkResult::Done(Box::new((
            aggregate,
            WalkOutcome {
                pages: 10,
                truncated: false,
            },
        )))
    }

    #[test]
    fn before_the_first_complete_walk_the_head_gives_ages_and_total_but_no_counts() {
        let mut state = state();
        state.merge_head(
            "ws-0",
            Ok(head(&[100.0, 110.0], 5000, false)),
            200.0,
            Duration::from_millis(700),
            Duration::ZERO,
        );
        let snapshot = state.snapshot(201.0, RequestCounts::new());
        let workspace = &snapshot.workspaces["ws-0"];
        assert!(workspace.head_only, "counts unknown until a walk completes");
        assert_eq!(workspace.units_listed, Some(5000));
        assert_eq!(
            workspace
                .work_units
                .as_ref()
                .map(|units| units.cells[0][1].oldest_item_timestamp),
            Some(Some(100.0))
        );
        assert_eq!(workspace.last_complete_walk, None);
    }

    #[test]
    fn the_head_refreshes_ages_over_the_counts_of_the_last_complete_walk() {
        let mut state = state();
        state.merge_walk(
            "ws-0",
            walk_of(5000, 50.0),
            100.0,
            Duration::from_secs(40),
            Duration::ZERO,
        );
        // The unit of 50.0 has been processed since: the head's oldest is 90.0.
        state.merge_head(
            "ws-0",
            Ok(head(&[90.0, 95.0], 4990, false)),
            130.0,
            Duration::ZERO,
            Duration::ZERO,
        );
        let snapshot = state.snapshot(131.0, RequestCounts::new());
        let workspace = &snapshot.workspaces["ws-0"];
        assert!(!workspace.head_only);
        let units = workspace.work_units.as_ref().expect("served");
        assert_eq!(
            units.cells[0][1].units, 5000,
            "counts from the complete walk"
        );
        assert_eq!(
            units.cells[0][1].oldest_item_timestamp,
            Some(90.0),
            "age from the head"
        );
        assert_eq!(workspace.units_listed, Some(4990));
        assert_eq!(
            workspace.last_complete_walk,
            Some((100.0, Duration::from_secs(40)))
        );
    }

    #[test]
    fn a_progressing_walk_keeps_the_last_complete_one_until_its_own_bound_a_failed_one_does_not() {
        let mut state = state();
        // A 40 s walk whose duty period is 160 s: stretch 145 s over the 15 s interval.
        let stretch = Duration::from_secs(145);
        let duration = Duration::from_secs(40);
        state.merge_walk("ws-0", walk_of(5000, 50.0), 100.0, duration, stretch);
        let bound = 100.0 + 45.0 + 145.0 + 40.0;
        assert_eq!(state.next_expiry(101.0), Some(bound));
        let served = |state: &PollState, now: f64| {
            state.snapshot(now, RequestCounts::new()).workspaces["ws-0"]
                .last_complete_walk
                .is_some()
        };
        assert!(
            served(&state, bound - 0.1),
            "long after max staleness, still served"
        );
        assert!(!served(&state, bound), "gone at its own bound");
        // The next walk fails at 200: the last complete walk falls back to the plain bound.
        state.merge_walk(
            "ws-0",
            WalkResult::Failed(UpstreamError::Timeout(Duration::from_secs(10))),
            200.0,
            Duration::from_secs(10),
            stretch,
        );
        assert!(
            !served(&state, 200.0),
            "older than max staleness: blanked at once"
        );
    }

    #[test]
    fn a_single_page_head_is_a_complete_walk() {
        let mut state = state();
        state.merge_head(
            "ws-0",
            Ok(head(&[10.0], 1, true)),
            20.0,
            Duration::from_millis(50),
            Duration::ZERO,
        );
        let snapshot = state.snapshot(21.0, RequestCounts::new());
        let workspace = &snapshot.workspaces["ws-0"];
        assert!(!workspace.head_only);
        assert_eq!(workspace.last_complete_walk.map(|(at, _)| at), Some(20.0));
        assert_eq!(workspace.units_listed, Some(1));
    }

    #[test]
    fn a_head_that_works_does_not_hide_a_failing_walk() {
        let mut state = state();
        state.merge_walk(
            "ws-0",
            WalkResult::Failed(UpstreamError::CursorLoop { pages: 2 }),
            10.0,
            Duration::from_secs(1),
            Duration::ZERO,
        );
        state.merge_head(
            "ws-0",
            Ok(head(&[1.0, 2.0], 50, false)),
            11.0,
            Duration::ZERO,
            Duration::ZERO,
        );
        let snapshot = state.snapshot(11.5, RequestCounts::new());
        let health = snapshot.workspaces["ws-0"].health[&Endpoint::WorkUnits];
        assert!(!health.up, "the walk fails: work_units stays down");
        state.merge_walk(
            "ws-0",
            walk_of(50, 1.0),
            20.0,
            Duration::from_secs(1),
            Duration::ZERO,
        );
        let snapshot = state.snapshot(20.5, RequestCounts::new());
        assert!(snapshot.workspaces["ws-0"].health[&Endpoint::WorkUnits].up);
    }
}
