//! Pure mapping of the cycle query's aggregate rows ([`super::queries::CYCLE`]: per workspace
//! the task type × state cells, the per-session and per-scope item counts, and the top-K problem
//! units) onto what the API path produces for the same queue: the queue/status counts with the
//! stalled/ready split, capped per-session rows (through the *same* [`summarize_status`]), the
//! work-unit aggregate (the same [`WorkUnitAggregate`] the API path's aggregator builds) and
//! the configured scopes — so the snapshot, and every metric family, is built by one model
//! whichever the source. The database classifies each unit (the rules of `classify.rs`, in SQL);
//! the equivalence test (`tests/integration/postgres.rs`) keeps the two definitions one.
//!
//! Memory: per selected workspace, its counts, one entry per session with rows, at most
//! `detail_limit` detail units and its scopes: bounded by workspaces and sessions, never by
//! work units. No I/O, no clock: callers pass `now`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::classify::{TaskType, UnitState};
use crate::config::Scope;
use crate::honcho::types::{ItemCounts, QueueStatus, SessionStatus};
use crate::snapshot::{StatusSummary, UnitDetail, WorkUnitAggregate, summarize_status};

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
        /// `queue.workspace_name`.
        workspace: &'a str,
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
fn zero_with_split() -> ItemCounts {
    StateItems::default().counts()
}

/// Whether a unit's pending representation items are gated by the threshold (flush off).
fn is_gated(task_type: TaskType, settings: &MappingSettings) -> bool {
    task_type == TaskType::Representation && !settings.flush_enabled
}

/// Microseconds since the epoch as Unix seconds, computed exactly as the API path reads Honcho's
/// `oldest_item_at` (whole seconds plus the microseconds / 1e6), so both sources give the same
/// values to the last bit.
fn unix_seconds(micros: i64) -> f64 {
    micros.div_euclid(1_000_000) as f64 + micros.rem_euclid(1_000_000) as f64 / 1e6
}

/// The overdue boundary the query compares with (`$4`): a stalled unit whose oldest row is at
/// microsecond `o` is overdue when `now − o/10⁶ > overdue_after`, i.e. when
/// `o < ceil((now − overdue_after) × 10⁶)` — the classification of `classify.rs` at the age the
/// API path computes.
pub fn overdue_boundary_micros(now: f64, overdue_after: Duration) -> i64 {
    ((now - overdue_after.as_secs_f64()) * 1e6).ceil() as i64
}

/// One workspace's result: what the API path would have stored after queue/status, the scopes
/// and a complete walk.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceResult {
    /// The capped status summary.
    pub status: StatusSummary,
    /// The walk's aggregate, with names for every exported session.
    pub work_units: WorkUnitAggregate,
    /// Configured scopes applying to this workspace, by name.
    pub scopes: BTreeMap<String, ItemCounts>,
}

/// One workspace while its rows arrive.
struct WorkspaceAccumulator {
    counts: ItemCounts,
    sessions: BTreeMap<String, ItemCounts>,
    session_names: BTreeMap<String, String>,
    scopes: Vec<(usize, ItemCounts)>,
    aggregate: WorkUnitAggregate,
    /// Detail units with their places (sorted at the end).
    detail: Vec<(u64, UnitDetail)>,
}

/// Folds the rows of one cycle, in any order, into per-workspace results.
pub struct CycleAccumulator {
    settings: MappingSettings,
    workspaces: BTreeMap<String, WorkspaceAccumulator>,
}

impl CycleAccumulator {
    /// A cycle over the selected `workspaces`: each gets a result, with zeros when it has no rows
    /// (the API answers zeros for a workspace without rows); rows of other workspaces are
    /// ignored.
    pub fn new(settings: MappingSettings, workspaces: &[String]) -> Self {
        let accumulators = workspaces
            .iter()
            .map(|name| {
                let scopes = settings
                    .scopes
                    .iter()
                    .enumerate()
                    .filter(|(_, scope)| {
                        scope.workspaces.is_empty() || scope.workspaces.contains(name)
                    })
                    .map(|(index, _)| (index, zero_with_split()))
                    .collect();
                let accumulator = WorkspaceAccumulator {
                    counts: zero_with_split(),
                    sessions: BTreeMap::new(),
                    session_names: BTreeMap::new(),
                    scopes,
                    // The deriver settings are known even with no rows (the API's envelope
                    // gives them on an empty walk, whose `total` is 0).
                    aggregate: WorkUnitAggregate {
                        batch_max_tokens: Some(settings.batch_max_tokens),
                        flush_enabled: Some(settings.flush_enabled),
                        listed: Some(0),
                        ..WorkUnitAggregate::default()
                    },
                    detail: Vec::new(),
                };
                (name.clone(), accumulator)
            })
            .collect();
        CycleAccumulator {
            settings,
            workspaces: accumulators,
        }
    }

    /// Adds one row.
    pub fn add(&mut self, row: &CycleRow<'_>) {
        let workspace_name = match row {
            CycleRow::Cell { workspace, .. }
            | CycleRow::Session { workspace, .. }
            | CycleRow::Scope { workspace, .. }
            | CycleRow::Detail { workspace, .. } => *workspace,
        };
        let Some(workspace) = self.workspaces.get_mut(workspace_name) else {
            return;
        };
        match row {
            CycleRow::Cell { .. } => workspace.add_cell(row, &self.settings),
            CycleRow::Session { .. } => workspace.add_session(row),
            CycleRow::Scope { index, items, .. } => {
                if let Some((_, counts)) = workspace
                    .scopes
                    .iter_mut()
                    .find(|(applying, _)| applying == index)
                {
                    counts.add(&items.counts());
                }
            }
            CycleRow::Detail { .. } => workspace.add_detail(row, &self.settings),
        }
    }

    /// Ends the cycle.
    pub fn finish(self) -> BTreeMap<String, WorkspaceResult> {
        let settings = self.settings;
        self.workspaces
            .into_iter()
            .map(|(name, workspace)| {
                let sessions = (!workspace.sessions.is_empty()).then(|| {
                    workspace
                        .sessions
                        .into_iter()
                        .map(|(session_id, counts)| {
                            let status = SessionStatus {
                                session_id: session_id.clone(),
                                counts,
                            };
                            (session_id, status)
                        })
                        .collect()
                });
                let status = summarize_status(
                    QueueStatus {
                        counts: workspace.counts,
                        sessions,
                    },
                    settings.max_sessions,
                );
                let mut work_units = workspace.aggregate;
                let mut detail = workspace.detail;
                detail.sort_by_key(|(place, _)| *place);
                work_units.detail = detail.into_iter().map(|(_, unit)| unit).collect();
                // Every problem unit not kept is counted, as the aggregator counts them.
                let problems: u64 = work_units
                    .cells
                    .iter()
                    .flat_map(|cells| {
                        [
                            UnitState::Overdue,
                            UnitState::Stalled,
                            UnitState::InProgress,
                        ]
                        .map(|state| cells[state.index()].units)
                    })
                    .sum();
                work_units.capped_detail = problems.saturating_sub(work_units.detail.len() as u64);
                // Names for every exported session (the API knows only those with unprocessed
                // rows; the database knows them all).
                work_units.session_names = status
                    .sessions
                    .iter()
                    .filter_map(|row| {
                        workspace
                            .session_names
                            .get(&row.session_id)
                            .map(|name| (row.session_id.clone(), name.clone()))
                    })
                    .collect();
                let scopes = workspace
                    .scopes
                    .into_iter()
                    .map(|(index, counts)| (settings.scopes[index].name.clone(), counts))
                    .collect();
                (
                    name,
                    WorkspaceResult {
                        status,
                        work_units,
                        scopes,
                    },
                )
            })
            .collect()
    }
}

impl WorkspaceAccumulator {
    /// One task type × state cell of the workspace.
    fn add_cell(&mut self, row: &CycleRow<'_>, settings: &MappingSettings) {
        let CycleRow::Cell {
            task_type,
            state,
            units,
            items,
            tokens,
            oldest_micros,
            largest_gated_tokens,
            ..
        } = *row
        else {
            return;
        };
        let task_type = TaskType::parse(task_type);
        let cell = &mut self.aggregate.cells[task_type.index()][state.index()];
        cell.units = cell.units.saturating_add(units);
        cell.items = cell.items.saturating_add(items);
        cell.tokens = cell.tokens.saturating_add(tokens);
        let oldest = unix_seconds(oldest_micros);
        cell.oldest_item_timestamp = Some(
            cell.oldest_item_timestamp
                .map_or(oldest, |current| current.min(oldest)),
        );
        if matches!(state, UnitState::Stalled | UnitState::Overdue)
            && let Some(largest) = largest_gated_tokens
        {
            let until = settings.batch_max_tokens.saturating_sub(largest);
            let slot = &mut self.aggregate.tokens_until_threshold[task_type.index()];
            *slot = Some(slot.map_or(until, |current| current.min(until)));
        }
    }

    /// One session's item counts (a row without a session: items of no session).
    fn add_session(&mut self, row: &CycleRow<'_>) {
        let CycleRow::Session {
            session_id,
            session_name,
            items,
            ..
        } = *row
        else {
            return;
        };
        let counts = items.counts();
        self.counts.add(&counts);
        if let Some(session_id) = session_id {
            self.sessions
                .entry(session_id.to_string())
                .or_insert_with(zero_with_split)
                .add(&counts);
            if let Some(name) = session_name {
                self.session_names
                    .entry(session_id.to_string())
                    .or_insert_with(|| name.to_string());
            }
        }
    }

    /// One of the workspace's top detail units, at its place in the aggregator's order.
    fn add_detail(&mut self, row: &CycleRow<'_>, settings: &MappingSettings) {
        let CycleRow::Detail {
            place,
            work_unit_key,
            task_type,
            session_name,
            state,
            tokens,
            oldest_micros,
            ..
        } = *row
        else {
            return;
        };
        let task = TaskType::parse(task_type);
        let tokens_until_threshold = if is_gated(task, settings) {
            settings.batch_max_tokens.saturating_sub(tokens)
        } else {
            0
        };
        self.detail.push((
            place,
            UnitDetail {
                work_unit_key: work_unit_key.to_string(),
                task_type: task,
                state,
                session_name: session_name.unwrap_or("").to_string(),
                observed: key_peers(work_unit_key).1.unwrap_or("").to_string(),
                oldest_item_timestamp: unix_seconds(oldest_micros),
                tokens_until_threshold,
                pending_tokens: tokens,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(flush: bool) -> MappingSettings {
        MappingSettings {
            batch_max_tokens: 100,
            flush_enabled: flush,
            overdue_after: Duration::from_secs(1800),
            detail_limit: 2,
            max_sessions: 10,
            scopes: vec![
                Scope {
                    name: "everywhere".into(),
                    workspaces: Vec::new(),
                    observer_id: Some("alice".into()),
                    sender_id: None,
                    session_id: None,
                },
                Scope {
                    name: "elsewhere".into(),
                    workspaces: vec!["other".into()],
                    observer_id: Some("alice".into()),
                    sender_id: None,
                    session_id: None,
                },
            ],
        }
    }

    fn items(completed: u64, in_progress: u64, stalled: u64, ready: u64) -> StateItems {
        StateItems {
            completed,
            in_progress,
            stalled,
            ready,
        }
    }

    fn cell(state: UnitState, units: u64, largest: Option<u64>) -> CycleRow<'static> {
        CycleRow::Cell {
            workspace: "ws",
            task_type: "representation",
            state,
            units,
            items: units * 2,
            tokens: 90 * units,
            oldest_micros: 1_000_000_000_250_000,
            largest_gated_tokens: largest,
        }
    }

    fn detail(place: u64, key: &'static str, state: UnitState) -> CycleRow<'static> {
        CycleRow::Detail {
            workspace: "ws",
            place,
            work_unit_key: key,
            task_type: "representation",
            session_name: Some("chat-1"),
            state,
            tokens: 60,
            oldest_micros: 1_000_000_000_000_000 + place as i64,
        }
    }

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

    #[test]
    fn sessions_sum_to_the_workspace_and_the_none_row_holds_the_rest() {
        let names = vec!["ws".to_string(), "empty".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names);
        cycle.add(&CycleRow::Session {
            workspace: "ws",
            session_id: Some("s1"),
            session_name: Some("chat-1"),
            items: items(1, 0, 3, 2),
        });
        cycle.add(&CycleRow::Session {
            workspace: "ws",
            session_id: Some("s2"),
            session_name: Some("chat-2"),
            items: items(4, 0, 0, 0),
        });
        cycle.add(&CycleRow::Session {
            workspace: "ws",
            session_id: None,
            session_name: None,
            items: items(0, 1, 0, 1),
        });
        cycle.add(&CycleRow::Session {
            workspace: "not-selected",
            session_id: Some("s9"),
            session_name: None,
            items: items(9, 9, 9, 9),
        });
        let results = cycle.finish();
        assert_eq!(results.len(), 2);
        let ws = &results["ws"];
        assert_eq!(
            ws.status.counts,
            ItemCounts {
                total: 12,
                completed: 5,
                in_progress: 1,
                pending: 6,
                pending_stalled: Some(3),
                pending_ready: Some(3),
            }
        );
        let ids: Vec<&str> = ws
            .status
            .sessions
            .iter()
            .map(|row| row.session_id.as_str())
            .collect();
        assert_eq!(ids, ["s1", "s2", crate::snapshot::NO_SESSION]);
        assert_eq!(
            ws.work_units.session_names.len(),
            2,
            "the completed-only session is named too"
        );
        let empty = &results["empty"];
        assert_eq!(empty.status.counts.total, 0);
        assert_eq!(empty.status.counts.pending_stalled, Some(0));
        assert!(empty.status.sessions.is_empty());
        assert_eq!(empty.work_units.batch_max_tokens, Some(100));
        assert_eq!(empty.work_units.listed, Some(0));
    }

    #[test]
    fn cells_give_the_smallest_distance_to_the_threshold_over_stalled_and_overdue() {
        let names = vec!["ws".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names);
        cycle.add(&cell(UnitState::Stalled, 2, Some(70)));
        cycle.add(&cell(UnitState::Overdue, 1, Some(95)));
        cycle.add(&cell(UnitState::Ready, 4, None));
        let ws = &cycle.finish()["ws"];
        let stalled = ws
            .work_units
            .cell(TaskType::Representation, UnitState::Stalled);
        assert_eq!((stalled.units, stalled.items, stalled.tokens), (2, 4, 180));
        assert_eq!(stalled.oldest_item_timestamp, Some(1_000_000_000.25));
        assert_eq!(
            ws.work_units.tokens_until_threshold[TaskType::Representation.index()],
            Some(5)
        );
        assert_eq!(
            ws.work_units.tokens_until_threshold[TaskType::Summary.index()],
            None
        );
    }

    #[test]
    fn detail_units_keep_the_query_order_and_the_rest_are_counted_as_capped() {
        let names = vec!["ws".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names);
        cycle.add(&cell(UnitState::Overdue, 2, Some(60)));
        cycle.add(&cell(UnitState::InProgress, 3, None));
        cycle.add(&cell(UnitState::Ready, 7, None));
        cycle.add(&detail(
            2,
            "representation:ws:s:alice:bob",
            UnitState::Overdue,
        ));
        cycle.add(&detail(1, "representation:ws:s:carol", UnitState::Overdue));
        let ws = &cycle.finish()["ws"];
        let keys: Vec<&str> = ws
            .work_units
            .detail
            .iter()
            .map(|unit| unit.work_unit_key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["representation:ws:s:carol", "representation:ws:s:alice:bob"]
        );
        assert_eq!(ws.work_units.detail[1].observed, "bob");
        assert_eq!(ws.work_units.detail[1].tokens_until_threshold, 40);
        assert_eq!(ws.work_units.capped_detail, 3, "5 problem units, 2 kept");
    }

    #[test]
    fn flush_leaves_no_distance_to_the_threshold_on_detail_units() {
        let names = vec!["ws".to_string()];
        let mut cycle = CycleAccumulator::new(settings(true), &names);
        cycle.add(&detail(
            1,
            "representation:ws:s:carol",
            UnitState::InProgress,
        ));
        let ws = &cycle.finish()["ws"];
        assert_eq!(ws.work_units.detail[0].tokens_until_threshold, 0);
    }

    #[test]
    fn scope_rows_reach_only_the_workspaces_a_scope_applies_to() {
        let names = vec!["ws".to_string(), "other".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names);
        for workspace in ["ws", "other"] {
            for index in [0, 1] {
                cycle.add(&CycleRow::Scope {
                    workspace,
                    index,
                    items: items(1, 1, 1, 1),
                });
            }
        }
        let results = cycle.finish();
        assert_eq!(results["ws"].scopes.len(), 1);
        assert_eq!(results["ws"].scopes["everywhere"].total, 4);
        assert_eq!(
            results["other"].scopes["elsewhere"].pending_stalled,
            Some(1)
        );
    }
}
