//! The per-poll data model and the pure functions that build it. No I/O, no clock: callers pass
//! `now`.
//!
//! - [`summarize_status`] turns one queue/status body into workspace counts plus capped
//!   per-session rows (top N by pending + `__other__` + `__none__`), so that per state the
//!   session rows always sum to the workspace counts.
//! - [`WorkUnitAggregator`] consumes the work-units walk page by page: per task type × state
//!   counts, items, tokens and oldest timestamps, the smallest tokens-until-threshold, a
//!   bounded top-K of problem units, and the id → name of the exported sessions (a unit whose
//!   `oldest_item_at` does not parse is only counted: its age is unknown). Its memory is
//!   bounded by K and the session cap, plus 8 bytes per unit for de-duplication (a unit can
//!   reappear on a later page when the deriver moves its oldest item while we walk).
//! - [`Snapshot`] is the immutable result of one poll cycle, handed to [`crate::families`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::classify::{TaskType, UnitState, classify};
use crate::honcho::types::{ItemCounts, QueueStatus, WorkUnitRow, WorkUnitsPage, parse_timestamp};
use crate::honcho::{Endpoint, RequestCounts};

/// `session_id` label of the sessions beyond the cap, summed.
pub const OTHER_SESSIONS: &str = "__other__";
/// `session_id` label of the items that belong to no session (dreams).
pub const NO_SESSION: &str = "__none__";

/// One session row of a workspace (possibly the `__other__` or `__none__` aggregate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The internal session id, or [`OTHER_SESSIONS`] / [`NO_SESSION`].
    pub session_id: String,
    /// Its item counts.
    pub counts: ItemCounts,
}

/// A workspace's queue/status, ready for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSummary {
    /// Workspace-wide item counts.
    pub counts: ItemCounts,
    /// The exported session rows: the top sessions by pending items (ties: in progress, then
    /// id), then `__other__` if sessions were capped, then `__none__` if some items belong to no
    /// session.
    pub sessions: Vec<SessionRow>,
    /// Sessions folded into `__other__`.
    pub capped_sessions: u64,
}

/// Summarises one queue/status body, keeping at most `max_sessions` sessions.
pub fn summarize_status(status: QueueStatus, max_sessions: usize) -> StatusSummary {
    let sessions: Vec<SessionRow> = status
        .sessions
        .unwrap_or_default()
        .into_iter()
        .map(|(session_id, session)| SessionRow {
            session_id,
            counts: session.counts,
        })
        .collect();
    // Every session's split must be known for the workspace rows to keep theirs.
    let mut all_sessions = ItemCounts {
        pending_stalled: status.counts.pending_stalled.map(|_| 0),
        pending_ready: status.counts.pending_ready.map(|_| 0),
        ..ItemCounts::default()
    };
    for row in &sessions {
        all_sessions.add(&row.counts);
    }
    // An id equal to one of our own row names (impossible for Honcho's nanoids, possible for a
    // hostile body) would duplicate a series: such sessions are folded into `__other__`.
    let (mut sessions, reserved): (Vec<SessionRow>, Vec<SessionRow>) = sessions
        .into_iter()
        .partition(|row| row.session_id != OTHER_SESSIONS && row.session_id != NO_SESSION);
    sessions.sort_by(|a, b| {
        b.counts
            .pending
            .cmp(&a.counts.pending)
            .then(b.counts.in_progress.cmp(&a.counts.in_progress))
            .then(a.session_id.cmp(&b.session_id))
    });
    let mut rest = if sessions.len() > max_sessions {
        sessions.split_off(max_sessions)
    } else {
        Vec::new()
    };
    rest.extend(reserved);
    let capped_sessions = rest.len() as u64;
    if !rest.is_empty() {
        let mut other = ItemCounts {
            pending_stalled: status.counts.pending_stalled.map(|_| 0),
            pending_ready: status.counts.pending_ready.map(|_| 0),
            ..ItemCounts::default()
        };
        for row in &rest {
            other.add(&row.counts);
        }
        sessions.push(SessionRow {
            session_id: OTHER_SESSIONS.to_string(),
            counts: other,
        });
    }
    let none = status.counts.saturating_sub(&all_sessions);
    if none.total > 0 {
        sessions.push(SessionRow {
            session_id: NO_SESSION.to_string(),
            counts: none,
        });
    }
    StatusSummary {
        counts: status.counts,
        sessions,
        capped_sessions,
    }
}

/// Totals of one task type × state cell of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UnitCell {
    /// Work units.
    pub units: u64,
    /// Sum of their `pending_items`.
    pub items: u64,
    /// Sum of their `pending_tokens`.
    pub tokens: u64,
    /// The smallest `oldest_item_at` (Unix seconds); `None` when there are no units.
    pub oldest_item_timestamp: Option<f64>,
}

/// One problem work unit kept for the per-unit detail series.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitDetail {
    /// The work unit key.
    pub work_unit_key: String,
    /// Its task type.
    pub task_type: TaskType,
    /// Its state (never ready).
    pub state: UnitState,
    /// Its session name (empty for dreams).
    pub session_name: String,
    /// The observed peer (empty for summaries).
    pub observed: String,
    /// `oldest_item_at` in Unix seconds.
    pub oldest_item_timestamp: f64,
    /// Tokens still missing before the batch threshold.
    pub tokens_until_threshold: u64,
    /// Tokens of its unprocessed items.
    pub pending_tokens: u64,
}

impl UnitDetail {
    /// Problem order: overdue < stalled < in_progress, then oldest first, then key.
    fn problem_order(&self, other: &Self) -> Ordering {
        let rank = |state: UnitState| state.problem_rank().unwrap_or(u8::MAX);
        rank(self.state)
            .cmp(&rank(other.state))
            .then(
                self.oldest_item_timestamp
                    .total_cmp(&other.oldest_item_timestamp),
            )
            .then_with(|| self.work_unit_key.cmp(&other.work_unit_key))
    }
}

/// Heap entry: the max-heap's top is the least problematic detail, the one to evict.
struct DetailEntry(UnitDetail);

impl PartialEq for DetailEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DetailEntry {}
impl PartialOrd for DetailEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DetailEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.problem_order(&other.0)
    }
}

/// The result of one complete work-units walk of a workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkUnitAggregate {
    /// Indexed `[task_type.index()][state.index()]`.
    pub cells: [[UnitCell; 4]; 4],
    /// Per task type, the smallest `tokens_until_threshold` among stalled and overdue units.
    pub tokens_until_threshold: [Option<u64>; 4],
    /// The top problem units, most problematic first.
    pub detail: Vec<UnitDetail>,
    /// Problem units that did not fit in the detail limit.
    pub capped_detail: u64,
    /// Internal session id → name, for the sessions the status summary exports.
    pub session_names: BTreeMap<String, String>,
    /// `representation_batch_max_tokens` from the envelope.
    pub batch_max_tokens: Option<u64>,
    /// `flush_enabled` from the envelope.
    pub flush_enabled: Option<bool>,
    /// Units seen more than once during the walk (counted once).
    pub duplicates: u64,
    /// Units whose `oldest_item_at` could not be parsed. Their age is unknown, so they are in
    /// no cell and no detail (a made-up age would misclassify them); only counted here.
    pub invalid_timestamps: u64,
    /// The first such `oldest_item_at` (at most 64 characters), for the log.
    pub first_invalid_timestamp: Option<String>,
    /// The number of work units Honcho listed when the walk began (`total` of its first page).
    pub listed: Option<u64>,
}

impl WorkUnitAggregate {
    /// The cell of a task type × state.
    pub fn cell(&self, task_type: TaskType, state: UnitState) -> &UnitCell {
        &self.cells[task_type.index()][state.index()]
    }

    /// Whether any unit of this task type was seen.
    pub fn has_units(&self, task_type: TaskType) -> bool {
        self.cells[task_type.index()]
            .iter()
            .any(|cell| cell.units > 0)
    }
}

/// A hasher for keys that are already 64-bit hashes.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A 64-bit hash of a work unit key: foldhash (quality variant, fixed seed), which reads 8–16
/// bytes per step where a byte-at-a-time hash spends ~1 ns per byte of the ~60-byte keys.
fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher as _;
    const SEED: u64 = 0x6f6e_6368_6f5f_6b65;
    foldhash::quality::FixedState::with_seed(SEED).hash_one(key)
}

/// The work units already counted in this walk, as 64-bit key hashes: a sorted vector (8 bytes
/// per unit, no hash-table overhead) plus a small staging set merged into it in linear time.
/// A `HashSet<u64>` of 1 M units takes ~19 MB (buckets rounded to a power of two, 7/8 load);
/// this takes ~8 MB.
#[derive(Default)]
struct SeenKeys {
    sorted: Vec<u64>,
    staged: HashSet<u64, BuildHasherDefault<PrehashedKey>>,
}

impl SeenKeys {
    /// Staged hashes merged into `sorted` at once.
    const STAGE: usize = 1 << 14;

    fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.staged.is_empty()
    }

    fn reserve(&mut self, units: usize) {
        self.sorted.reserve_exact(units);
    }

    /// Records `hash`; false if it was already recorded.
    fn insert(&mut self, hash: u64) -> bool {
        if self.sorted.binary_search(&hash).is_ok() || !self.staged.insert(hash) {
            return false;
        }
        if self.staged.len() >= Self::STAGE {
            self.merge_staged();
        }
        true
    }

    /// Merges the staged hashes into the sorted vector from the back, in place.
    fn merge_staged(&mut self) {
        let mut staged: Vec<u64> = self.staged.drain().collect();
        staged.sort_unstable();
        let old_len = self.sorted.len();
        self.sorted.resize(old_len + staged.len(), 0);
        let (mut read, mut write) = (old_len, self.sorted.len());
        while let Some(&last) = staged.last() {
            write -= 1;
            if read > 0 && self.sorted[read - 1] > last {
                read -= 1;
                self.sorted[write] = self.sorted[read];
            } else {
                self.sorted[write] = last;
                staged.pop();
            }
        }
    }
}

/// Streams the pages of one walk into a [`WorkUnitAggregate`].
pub struct WorkUnitAggregator {
    now: f64,
    overdue_after: Duration,
    detail_limit: usize,
    wanted_sessions: HashSet<String, foldhash::fast::RandomState>,
    seen: SeenKeys,
    heap: BinaryHeap<DetailEntry>,
    aggregate: WorkUnitAggregate,
}

impl WorkUnitAggregator {
    /// A new walk at time `now` (Unix seconds). `wanted_sessions`: the session ids whose names
    /// should be kept (those the status summary exports).
    pub fn new(
        now: f64,
        overdue_after: Duration,
        detail_limit: usize,
        wanted_sessions: HashSet<String>,
    ) -> Self {
        WorkUnitAggregator {
            now,
            overdue_after,
            detail_limit,
            // A faster hasher than SipHash: every row of the walk looks its session id up here.
            wanted_sessions: wanted_sessions.into_iter().collect(),
            seen: SeenKeys::default(),
            heap: BinaryHeap::with_capacity(detail_limit + 1),
            aggregate: WorkUnitAggregate::default(),
        }
    }

    /// Adds one page: its envelope, then each of its rows.
    pub fn add_page(&mut self, page: &WorkUnitsPage<'_>) {
        self.add_envelope(
            page.representation_batch_max_tokens,
            page.flush_enabled,
            page.total,
        );
        for row in &page.items {
            self.add_row(row);
        }
    }

    /// A page's envelope: Honcho's deriver settings, and `total`, the number of units listed.
    pub fn add_envelope(
        &mut self,
        batch_max_tokens: Option<u64>,
        flush_enabled: Option<bool>,
        total: u64,
    ) {
        if batch_max_tokens.is_some() {
            self.aggregate.batch_max_tokens = batch_max_tokens;
        }
        if flush_enabled.is_some() {
            self.aggregate.flush_enabled = flush_enabled;
        }
        if self.aggregate.listed.is_none() {
            self.aggregate.listed = Some(total);
        }
        if self.seen.is_empty() {
            // `total` is the unit count: size the de-duplication memory once (bounded, so a bogus
            // `total` cannot make us allocate much; a larger walk grows the vector).
            self.seen
                .reserve(usize::try_from(total.min(1 << 20)).unwrap_or(0));
        }
    }

    /// Adds one listed unit, parsing its `oldest_item_at`.
    pub fn add_row(&mut self, row: &WorkUnitRow<'_>) {
        if !self.first_sighting(row) {
            return;
        }
        let Some(oldest) = parse_timestamp(&row.oldest_item_at) else {
            self.aggregate.invalid_timestamps += 1;
            if self.aggregate.first_invalid_timestamp.is_none() {
                self.aggregate.first_invalid_timestamp =
                    Some(row.oldest_item_at.chars().take(64).collect());
            }
            return;
        };
        self.add_unit(row, oldest);
    }

    /// Adds one unit whose oldest item time is already known (Unix seconds; its
    /// `oldest_item_at` text is not read): the database source, which has it as a number.
    pub fn add_row_at(&mut self, row: &WorkUnitRow<'_>, oldest: f64) {
        if self.first_sighting(row) {
            self.add_unit(row, oldest);
        }
    }

    /// False (and counted) when the unit was already seen in this walk.
    fn first_sighting(&mut self, row: &WorkUnitRow<'_>) -> bool {
        if self.seen.insert(key_hash(&row.work_unit_key)) {
            true
        } else {
            self.aggregate.duplicates += 1;
            false
        }
    }

    fn add_unit(&mut self, row: &WorkUnitRow<'_>, oldest: f64) {
        let age = Duration::from_secs_f64((self.now - oldest).max(0.0));
        let task_type = TaskType::parse(&row.task_type);
        let state = classify(row.in_progress, row.hit_threshold, age, self.overdue_after);
        let cell = &mut self.aggregate.cells[task_type.index()][state.index()];
        // Upstream numbers: saturate rather than overflow.
        cell.units += 1;
        cell.items = cell.items.saturating_add(row.pending_items);
        cell.tokens = cell.tokens.saturating_add(row.pending_tokens);
        cell.oldest_item_timestamp = Some(match cell.oldest_item_timestamp {
            Some(current) => current.min(oldest),
            None => oldest,
        });
        if matches!(state, UnitState::Stalled | UnitState::Overdue) {
            let slot = &mut self.aggregate.tokens_until_threshold[task_type.index()];
            *slot = Some(slot.map_or(row.tokens_until_threshold, |v| {
                v.min(row.tokens_until_threshold)
            }));
        }
        if let (Some(id), Some(name)) = (&row.session_id, &row.session_name)
            && self.wanted_sessions.contains(id.as_ref())
            && !self.aggregate.session_names.contains_key(id.as_ref())
        {
            self.aggregate
                .session_names
                .insert(id.to_string(), name.to_string());
        }
        if state.problem_rank().is_some() {
            self.offer_detail(row, task_type, state, oldest);
        }
    }

    fn offer_detail(
        &mut self,
        row: &crate::honcho::types::WorkUnitRow<'_>,
        task_type: TaskType,
        state: UnitState,
        oldest: f64,
    ) {
        if self.detail_limit == 0 {
            self.aggregate.capped_detail += 1;
            return;
        }
        let rank = state.problem_rank().unwrap_or(u8::MAX);
        if self.heap.len() >= self.detail_limit
            && let Some(worst_kept) = self.heap.peek()
        {
            let kept = &worst_kept.0;
            let kept_rank = kept.state.problem_rank().unwrap_or(u8::MAX);
            let better = rank
                .cmp(&kept_rank)
                .then(oldest.total_cmp(&kept.oldest_item_timestamp))
                .then_with(|| row.work_unit_key.as_ref().cmp(kept.work_unit_key.as_str()));
            self.aggregate.capped_detail += 1;
            if better != Ordering::Less {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(DetailEntry(UnitDetail {
            work_unit_key: row.work_unit_key.to_string(),
            task_type,
            state,
            session_name: row.session_name.as_deref().unwrap_or("").to_string(),
            observed: row.observed.as_deref().unwrap_or("").to_string(),
            oldest_item_timestamp: oldest,
            tokens_until_threshold: row.tokens_until_threshold,
            pending_tokens: row.pending_tokens,
        }));
    }

    /// Ends the walk.
    pub fn finish(mut self) -> WorkUnitAggregate {
        let mut detail: Vec<UnitDetail> = self.heap.into_iter().map(|entry| entry.0).collect();
        detail.sort_by(UnitDetail::problem_order);
        self.aggregate.detail = detail;
        self.aggregate
    }
}

/// Whether an endpoint's last poll worked, and when one last did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EndpointHealth {
    /// The last poll of this endpoint succeeded.
    pub up: bool,
    /// Unix seconds of the last success, if any.
    pub last_success: Option<f64>,
}

/// Everything exported about one workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkspaceSnapshot {
    /// queue/status, unless never fetched or older than max staleness.
    pub status: Option<StatusSummary>,
    /// The last complete walk (generation C), unless never done or older than max staleness.
    pub work_units: Option<WorkUnitAggregate>,
    /// The last truncated walk stopped at the page cap (its numbers are partial).
    pub walk_truncated: bool,
    /// Configured scopes' counts (fresh ones only).
    pub scopes: BTreeMap<String, ItemCounts>,
    /// Health per endpoint (`status`, `work_units`, `scopes`).
    pub health: BTreeMap<Endpoint, EndpointHealth>,
    /// Only the head of the walk (its first page) is known, no complete walk: `work_units`
    /// carries the oldest units' ages and detail, but its per-state counts are unknown and not
    /// exported.
    pub head_only: bool,
    /// The number of work units Honcho lists (`total` of the last head page), fresh every
    /// interval while a full walk takes longer.
    pub units_listed: Option<u64>,
    /// The last complete walk that is still served: (Unix seconds it ended, its duration).
    pub last_complete_walk: Option<(f64, Duration)>,
}

/// The served work-unit view of a workspace: the per-state counts of the last complete `walk`,
/// with the oldest timestamps and the problem-unit detail refreshed from `head` (the walk's
/// first page, fetched every interval). The walk is oldest first, so every unit older than
/// `boundary` (the head's last `oldest_item_at`) is on the head page: for those the head is the
/// truth and the walk's older entries are gone; entries newer than it still come from the walk.
pub fn merge_head(
    walk: &WorkUnitAggregate,
    head: &WorkUnitAggregate,
    boundary: f64,
    detail_limit: usize,
) -> WorkUnitAggregate {
    let mut merged = walk.clone();
    for (task_type, states) in merged.cells.iter_mut().enumerate() {
        for (state, cell) in states.iter_mut().enumerate() {
            let fresh = head.cells[task_type][state].oldest_item_timestamp;
            cell.oldest_item_timestamp = match fresh {
                Some(timestamp) => Some(timestamp),
                // Older than the boundary but not on the head page: that unit is gone.
                None => cell
                    .oldest_item_timestamp
                    .filter(|timestamp| *timestamp > boundary),
            };
        }
    }
    let on_head: HashSet<&str> = head
        .detail
        .iter()
        .map(|unit| unit.work_unit_key.as_str())
        .collect();
    let mut detail: Vec<UnitDetail> = head.detail.clone();
    detail.extend(
        walk.detail
            .iter()
            .filter(|unit| {
                unit.oldest_item_timestamp > boundary
                    && !on_head.contains(unit.work_unit_key.as_str())
            })
            .cloned(),
    );
    detail.sort_by(UnitDetail::problem_order);
    detail.truncate(detail_limit);
    merged.detail = detail;
    for (id, name) in &head.session_names {
        merged
            .session_names
            .entry(id.clone())
            .or_insert_with(|| name.clone());
    }
    merged.batch_max_tokens = head.batch_max_tokens.or(walk.batch_max_tokens);
    merged.flush_enabled = head.flush_enabled.or(walk.flush_enabled);
    merged
}

/// The API generation in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Honcho 2.x: `/v2/…/deriver/status`.
    A,
    /// Honcho 3.x without the stalled/ready split or work-units.
    B,
    /// Honcho 3.x with the split and work-units.
    C,
}

impl Generation {
    /// The `generation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::A => "a",
            Generation::B => "b",
            Generation::C => "c",
        }
    }
}

/// The exporter's own state for its self-metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExporterStats {
    /// Duration of the last complete poll cycle.
    pub poll_duration: Option<Duration>,
    /// The configured poll interval.
    pub poll_interval: Duration,
    /// Poll cycles completed since start.
    pub poll_cycles: u64,
    /// Upstream requests by endpoint and code.
    pub requests: RequestCounts,
    /// Failed polls by endpoint and bounded reason.
    pub errors: BTreeMap<(Endpoint, &'static str), u64>,
    /// Series dropped by caps, by family (`session_items`, `work_unit_detail`).
    pub capped: BTreeMap<&'static str, u64>,
    /// Health of workspace discovery (None with a static list).
    pub discovery: Option<EndpointHealth>,
    /// The API generation in use, once known.
    pub generation: Option<Generation>,
    /// Whether queue/status reports the stalled/ready split, once known.
    pub status_split: Option<bool>,
    /// Whether queue/work-units exists, once known.
    pub work_units_available: Option<bool>,
    /// Changes of the token file not used, by reason; `None` when the token is not from a file.
    pub token_reload_errors: Option<BTreeMap<&'static str, u64>>,
    /// The database source's own numbers; `None` with the API source.
    pub postgres: Option<PostgresStats>,
}

/// The database source's self-metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostgresStats {
    /// Whether the last cycle read the database.
    pub health: EndpointHealth,
    /// The last successful cycle's time waiting on the database (transaction minus mapping).
    pub database_time: Option<Duration>,
    /// The last successful cycle's time mapping rows in the exporter.
    pub mapping_time: Option<Duration>,
    /// `alembic_version` of the last successful schema check.
    pub schema_revision: Option<String>,
    /// The Honcho release that revision belongs to, when the source knows it.
    pub honcho_version: Option<&'static str>,
    /// Changes of the password file not used, by reason; `None` without a password file.
    pub password_reload_errors: Option<BTreeMap<&'static str, u64>>,
}

/// One poll cycle's immutable result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Unix seconds when the cycle ended.
    pub taken_at: f64,
    /// Per workspace, sorted by name.
    pub workspaces: BTreeMap<String, WorkspaceSnapshot>,
    /// The deriver settings seen in the work-units envelope.
    pub batch_max_tokens: Option<u64>,
    /// `flush_enabled` seen in the work-units envelope.
    pub flush_enabled: Option<bool>,
    /// The exporter's own numbers.
    pub exporter: ExporterStats,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::honcho::types::SessionStatus;

    fn counts(pending: u64, in_progress: u64, stalled: Option<u64>) -> ItemCounts {
        ItemCounts {
            total: pending + in_progress,
            completed: 0,
            in_progress,
            pending,
            pending_stalled: stalled,
            pending_ready: stalled.map(|s| pending - s),
        }
    }

    fn status(workspace: ItemCounts, sessions: &[(&str, ItemCounts)]) -> QueueStatus {
        QueueStatus {
            counts: workspace,
            sessions: Some(
                sessions
                    .iter()
                    .map(|(id, counts)| {
                        (
                            id.to_string(),
                            SessionStatus {
                                session_id: id.to_string(),
                                counts: *counts,
                            },
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn sum_rows(summary: &StatusSummary) -> ItemCounts {
        let mut sum = ItemCounts {
            pending_stalled: Some(0),
            pending_ready: Some(0),
            ..ItemCounts::default()
        };
        for row in &summary.sessions {
            sum.add(&row.counts);
        }
        sum
    }

    #[test]
    fn sessions_beyond_the_cap_fold_into_other_and_rows_still_sum_to_the_workspace() {
        let summary = summarize_status(
            status(
                counts(10, 2, Some(6)),
                &[
                    ("a", counts(5, 0, Some(5))),
                    ("b", counts(3, 2, Some(1))),
                    ("c", counts(1, 0, Some(0))),
                ],
            ),
            1,
        );
        let ids: Vec<&str> = summary
            .sessions
            .iter()
            .map(|row| row.session_id.as_str())
            .collect();
        assert_eq!(ids, ["a", OTHER_SESSIONS, NO_SESSION]);
        assert_eq!(summary.capped_sessions, 2);
        assert_eq!(sum_rows(&summary), summary.counts);
    }

    #[test]
    fn items_of_no_session_appear_as_none() {
        let summary = summarize_status(
            status(counts(3, 0, Some(3)), &[("a", counts(2, 0, Some(2)))]),
            10,
        );
        let none = summary
            .sessions
            .iter()
            .find(|row| row.session_id == NO_SESSION)
            .expect("a __none__ row");
        assert_eq!(none.counts.pending, 1);
        assert_eq!(summary.capped_sessions, 0);
    }

    #[test]
    fn null_sessions_give_only_none_when_items_exist() {
        let summary = summarize_status(
            QueueStatus {
                counts: counts(0, 0, None),
                sessions: None,
            },
            10,
        );
        assert!(summary.sessions.is_empty());
    }

    #[test]
    fn a_unit_whose_oldest_item_at_does_not_parse_is_counted_in_no_state() {
        let body = r#"{"items":[
            {"work_unit_key":"representation:w:s:a","task_type":"representation","session_id":"s","session_name":"s","observed":"a","pending_items":1,"pending_tokens":5,"tokens_until_threshold":95,"hit_threshold":false,"in_progress":false,"oldest_item_at":"not a time"},
            {"work_unit_key":"representation:w:s:b","task_type":"representation","session_id":"s","session_name":"s","observed":"b","pending_items":1,"pending_tokens":5,"tokens_until_threshold":95,"hit_threshold":false,"in_progress":false,"oldest_item_at":"2026-11-22T02:00:00"}
        ],"total":2,"next_page":null}"#;
        let page: WorkUnitsPage<'_> = serde_json::from_str(body).expect("valid page");
        // An hour after the naive (UTC) timestamp of the second unit.
        let now = 1_795_312_800.0 + 3600.0;
        let mut aggregator =
            WorkUnitAggregator::new(now, Duration::from_secs(1800), 10, HashSet::new());
        aggregator.add_page(&page);
        let aggregate = aggregator.finish();
        assert_eq!(aggregate.invalid_timestamps, 1);
        assert_eq!(
            aggregate.first_invalid_timestamp.as_deref(),
            Some("not a time")
        );
        let representation = |state| aggregate.cell(TaskType::Representation, state).units;
        assert_eq!(
            representation(UnitState::Overdue),
            1,
            "the naive one, an hour old"
        );
        assert_eq!(
            representation(UnitState::Stalled),
            0,
            "no made-up fresh age"
        );
        assert_eq!(aggregate.detail.len(), 1);
        assert_eq!(aggregate.detail[0].observed, "b");
    }

    #[test]
    fn seen_keys_remember_every_unit_across_merges() {
        let mut seen = SeenKeys::default();
        let count = SeenKeys::STAGE as u64 * 3 + 17;
        for value in 0..count {
            assert!(
                seen.insert(value.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                "first time {value}"
            );
        }
        for value in (0..count).rev() {
            assert!(
                !seen.insert(value.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                "again {value}"
            );
        }
        assert!(
            seen.sorted.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted and unique"
        );
    }

    #[test]
    fn a_session_id_named_like_our_own_rows_is_folded_into_other() {
        let summary = summarize_status(
            status(
                counts(4, 0, Some(0)),
                &[
                    (NO_SESSION, counts(1, 0, Some(0))),
                    ("a", counts(3, 0, Some(0))),
                ],
            ),
            10,
        );
        let ids: Vec<&str> = summary
            .sessions
            .iter()
            .map(|row| row.session_id.as_str())
            .collect();
        assert_eq!(
            ids,
            ["a", OTHER_SESSIONS],
            "one row per id, no duplicate __none__"
        );
        assert_eq!(sum_rows(&summary), summary.counts);
    }
}
