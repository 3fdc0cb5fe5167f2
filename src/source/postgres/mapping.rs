//! The cycle query's rows ([`super::queries::CYCLE`]) as values, and the pure rules shared by
//! their fold (`super::accumulator`): how a work unit key names its peers (never the payload),
//! item counts by state, the query's state codes, timestamps and the overdue boundary exactly as
//! the API path computes them. The database classifies each unit (the rules of `classify.rs`,
//! in SQL); the equivalence test (`tests/integration/postgres.rs`) keeps the two definitions
//! one. No I/O, no clock: callers pass `now`.

use std::time::Duration;

use crate::classify::{TaskType, UnitState};
use crate::config::Scope;
use crate::honcho::types::ItemCounts;

use super::queries::unit_state;

/// What the mapping and the query need to know besides the rows.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    /// Honcho's `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS` (not stored in the database).
    pub batch_max_tokens: u64,
    /// Honcho's `DERIVER_FLUSH_ENABLED`.
    pub flush_enabled: bool,
    /// Stalled units older than this are overdue.
    pub overdue_after: Duration,
    /// Problem units kept for the per-unit detail series.
    pub detail_limit: usize,
    /// Sessions exported per workspace before `__other__`.
    pub max_sessions: usize,
    /// The configured scopes.
    pub scopes: Vec<Scope>,
}

/// The observer and observed peers named in a work unit key (`src/utils/work_unit.py`):
/// `representation:{ws}:{session}:{observed}` (3.x), `representation:{ws}:{session}:{observer}:{observed}`
/// (2.x), `dream:{type}:{ws}:{observer}:{observed}`; summaries name neither. This stands in for
/// `payload->>'observer'` / `payload->>'observed'`, so the payload (users' messages) is never read.
/// The cycle query parses keys the same way for the scopes' filters.
pub fn key_peers(work_unit_key: &str) -> (Option<&str>, Option<&str>) {
    let parts: Vec<&str> = work_unit_key.split(':').collect();
    match parts.as_slice() {
        ["representation", _, _, observed] => (None, Some(observed)),
        ["representation", _, _, observer, observed] => (Some(observer), Some(observed)),
        ["dream", _, _, observer, observed] => (Some(observer), Some(observed)),
        _ => (None, None),
    }
}

/// Item counts by state, as the query sums them (over sessions, or over a scope's units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateItems {
    /// Processed rows (completed items, errored ones included).
    pub completed: u64,
    /// Unprocessed rows of claimed units.
    pub in_progress: u64,
    /// Unprocessed rows of stalled or overdue units.
    pub stalled: u64,
    /// The other unprocessed rows.
    pub ready: u64,
}

impl StateItems {
    /// As the API's counts, with the stalled/ready split (the database always knows it).
    pub fn counts(&self) -> ItemCounts {
        let pending = self.stalled.saturating_add(self.ready);
        ItemCounts {
            total: self
                .completed
                .saturating_add(self.in_progress)
                .saturating_add(pending),
            completed: self.completed,
            in_progress: self.in_progress,
            pending,
            pending_stalled: Some(self.stalled),
            pending_ready: Some(self.ready),
        }
    }
}

/// One row of the cycle query, borrowing the driver's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleRow<'a> {
    /// One task type × state cell of a workspace's work units.
    Cell {
        /// `queue.workspace_name`; `None`: the sum over the folded workspaces.
        workspace: Option<&'a str>,
        /// The units' task type.
        task_type: &'a str,
        /// Their state.
        state: UnitState,
        /// Work units.
        units: u64,
        /// Their unprocessed rows.
        items: u64,
        /// Their tokens.
        tokens: u64,
        /// Microseconds since the epoch of the oldest unprocessed row among them.
        oldest_micros: i64,
        /// Stalled and overdue cells: the largest token sum of a unit (the smallest distance
        /// to the threshold).
        largest_gated_tokens: Option<u64>,
    },
    /// One session's items (`None`: items of no session, i.e. dreams).
    Session {
        /// `queue.workspace_name`.
        workspace: &'a str,
        /// `queue.session_id` (internal id).
        session_id: Option<&'a str>,
        /// `sessions.name` of that id, when the session still exists.
        session_name: Option<&'a str>,
        /// Its items by state.
        items: StateItems,
    },
    /// One configured scope's items in a workspace.
    Scope {
        /// `queue.workspace_name`.
        workspace: &'a str,
        /// Index into [`MappingSettings::scopes`].
        index: usize,
        /// Its items by state.
        items: StateItems,
        /// The workspace is folded (not returned in full).
        folded: bool,
    },
    /// One workspace folded by the query: its counts and what its caps would count.
    Folded {
        /// `queue.workspace_name`.
        workspace: &'a str,
        /// Its items by state.
        items: StateItems,
        /// Its sessions (not counting the items of no session).
        sessions: u64,
        /// Its problem units (overdue, stalled, in progress).
        problems: u64,
    },
    /// One of a workspace's top problem units.
    Detail {
        /// `queue.workspace_name`.
        workspace: &'a str,
        /// Its 1-based place in the problem order.
        place: u64,
        /// `queue.work_unit_key`.
        work_unit_key: &'a str,
        /// `queue.task_type`.
        task_type: &'a str,
        /// `sessions.name` of its session.
        session_name: Option<&'a str>,
        /// Its state (never ready).
        state: UnitState,
        /// Its tokens.
        tokens: u64,
        /// Microseconds since the epoch of its oldest unprocessed row.
        oldest_micros: i64,
    },
}

/// The query's state code as a [`UnitState`]; `None` for a code it never gives.
pub fn state_of_code(code: i32) -> Option<UnitState> {
    match code {
        unit_state::OVERDUE => Some(UnitState::Overdue),
        unit_state::STALLED => Some(UnitState::Stalled),
        unit_state::IN_PROGRESS => Some(UnitState::InProgress),
        unit_state::READY => Some(UnitState::Ready),
        _ => None,
    }
}

/// Zero counts that carry the stalled/ready split (the database always knows it).
pub(super) fn zero_with_split() -> ItemCounts {
    StateItems::default().counts()
}

/// Whether a unit's pending representation items are gated by the threshold (flush off).
pub(super) fn is_gated(task_type: TaskType, settings: &MappingSettings) -> bool {
    task_type == TaskType::Representation && !settings.flush_enabled
}

/// Microseconds since the epoch as Unix seconds, computed exactly as the API path reads Honcho's
/// `oldest_item_at` (whole seconds plus the microseconds / 1e6), so both sources give the same
/// values to the last bit.
pub(super) fn unix_seconds(micros: i64) -> f64 {
    micros.div_euclid(1_000_000) as f64 + micros.rem_euclid(1_000_000) as f64 / 1e6
}

/// The overdue boundary the query compares with (`$4`): a stalled unit whose oldest row is at
/// microsecond `o` is overdue when `now − o/10⁶ > overdue_after`, i.e. when
/// `o < ceil((now − overdue_after) × 10⁶)` — the classification of `classify.rs` at the age the
/// API path computes.
pub fn overdue_boundary_micros(now: f64, overdue_after: Duration) -> i64 {
    ((now - overdue_after.as_secs_f64()) * 1e6).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_unit_keys_name_their_peers_without_the_payload() {
        assert_eq!(key_peers("representation:ws:s:bob"), (None, Some("bob")));
        assert_eq!(
            key_peers("representation:ws:s:alice:bob"),
            (Some("alice"), Some("bob"))
        );
        assert_eq!(
            key_peers("dream:omni:ws:alice:bob"),
            (Some("alice"), Some("bob"))
        );
        assert_eq!(key_peers("summary:ws:s:None:None"), (None, None));
    }

    #[test]
    fn every_state_code_of_the_query_is_a_unit_state_in_problem_order() {
        let states: Vec<UnitState> = (0..4).filter_map(state_of_code).collect();
        assert_eq!(
            states,
            [
                UnitState::Overdue,
                UnitState::Stalled,
                UnitState::InProgress,
                UnitState::Ready
            ]
        );
        for (code, state) in states[..3].iter().enumerate() {
            assert_eq!(state.problem_rank(), Some(code as u8), "{state:?}");
        }
        assert_eq!(state_of_code(4), None);
    }

    #[test]
    fn the_overdue_boundary_is_the_first_microsecond_not_overdue() {
        let now = 1_000_000_000.5;
        let boundary = overdue_boundary_micros(now, Duration::from_secs(10));
        assert_eq!(boundary, 999_999_990_500_000);
        // One microsecond older than the boundary is older than overdue_after.
        let age = now - unix_seconds(boundary - 1);
        assert!(age > 10.0, "{age}");
        assert!(now - unix_seconds(boundary) <= 10.0);
    }
}
