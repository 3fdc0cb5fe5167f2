//! The result of a work-units walk ([`WorkUnitAggregate`]: task type × state cells, the top
//! problem units) and [`merge_head`], which refreshes a walk's ages and detail from the head
//! page. Pure; the walk itself is streamed by [`super::WorkUnitAggregator`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use crate::classify::{TaskType, UnitState};

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
    pub(super) fn problem_order(&self, other: &Self) -> Ordering {
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
