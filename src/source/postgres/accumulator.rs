//! The fold of one cycle's rows ([`super::queries::CYCLE`]), in any order, into what the API
//! path produces for the same queue: per workspace the queue/status counts with the
//! stalled/ready split, capped per-session rows (through the *same* [`summarize_status`]), the
//! work-unit aggregate (the same [`WorkUnitAggregate`] the API path's aggregator builds) and the
//! configured scopes — and, over the workspace ceiling, one [`FoldedResult`] for every workspace
//! the ceiling cannot choose.
//!
//! Memory: per workspace returned in full, its counts, one entry per session with rows, at most
//! `detail_limit` detail units and its scopes; over the ceiling at most `2 × (max_exported +
//! margin)` such workspaces and one folded sum, plus the selected names. Bounded by what can be
//! exported, never by work units, and over the ceiling not by workspaces' sessions either. No
//! I/O, no clock.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::classify::{TaskType, UnitState};
use crate::honcho::types::{ItemCounts, QueueStatus, SessionStatus};
use crate::snapshot::{StatusSummary, UnitDetail, WorkUnitAggregate, summarize_status};

use super::mapping::{
    CycleRow, MappingSettings, StateItems, is_gated, key_peers, unix_seconds, zero_with_split,
};

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

/// The workspaces folded before the ceiling saw them, summed as the ceiling sums the workspaces
/// it folds (`snapshot::roll_up`): counts, cells and scopes exact, no sessions, no detail; the
/// caps' counters as their per-workspace results would have counted them.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedResult {
    /// How many workspaces.
    pub workspaces: u64,
    /// Their sum.
    pub result: WorkspaceResult,
}

/// One cycle's results.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleResults {
    /// The workspaces returned in full, by name.
    pub workspaces: BTreeMap<String, WorkspaceResult>,
    /// The others, folded (only over the ceiling).
    pub folded: Option<FoldedResult>,
}

/// How many workspaces the cycle query returns in full (`$9`) for `selected` workspaces under a
/// ceiling of `max_exported` (0: none): `None` (all) unless there are more than the ceiling can
/// choose from — `max_exported` + its hysteresis margin (`snapshot::hysteresis_margin`). The
/// ceiling exports only workspaces ranked within that window, and a workspace's rank among the
/// workspaces with rows (the query's) is never worse than its rank among all, so the query's
/// first `window` hold every workspace with rows the ceiling can choose.
pub fn full_workspaces(max_exported: usize, selected: usize) -> Option<usize> {
    if max_exported == 0 {
        return None;
    }
    let window = max_exported.saturating_add(crate::snapshot::hysteresis_margin(max_exported));
    (selected > window).then_some(window)
}

/// Folds the rows of one cycle, in any order, into [`CycleResults`].
pub struct CycleAccumulator {
    settings: MappingSettings,
    workspaces: BTreeMap<String, WorkspaceAccumulator>,
    fold: Option<Fold>,
}

/// What is folded, over the ceiling.
struct Fold {
    /// Workspaces the query returns in full (`$9`).
    full: usize,
    /// Every selected workspace, in byte order (the ceiling's tie order).
    selected: BTreeSet<String>,
    /// The folded workspaces that have rows.
    seen: HashSet<String>,
    sum: WorkspaceAccumulator,
    /// Per scope: whether it applies to at least one folded workspace.
    applying: Vec<bool>,
    capped_sessions: u64,
    capped_detail: u64,
}

impl CycleAccumulator {
    /// A cycle over the selected `workspaces`, the first `full` of them returned in full by the
    /// query ([`full_workspaces`]; `None`: all). Each selected workspace gets a result, with
    /// zeros when it has no rows (the API answers zeros for a workspace without rows), or is
    /// folded; rows of other workspaces are ignored.
    pub fn new(settings: MappingSettings, workspaces: &[String], full: Option<usize>) -> Self {
        let Some(full) = full else {
            let accumulators = workspaces
                .iter()
                .map(|name| (name.clone(), WorkspaceAccumulator::new(name, &settings)))
                .collect();
            return CycleAccumulator {
                settings,
                workspaces: accumulators,
                fold: None,
            };
        };
        let mut sum = WorkspaceAccumulator::new("", &settings);
        sum.scopes = (0..settings.scopes.len())
            .map(|index| (index, zero_with_split()))
            .collect();
        let fold = Fold {
            full,
            selected: workspaces.iter().cloned().collect(),
            seen: HashSet::new(),
            sum,
            applying: vec![false; settings.scopes.len()],
            capped_sessions: 0,
            capped_detail: 0,
        };
        CycleAccumulator {
            settings,
            workspaces: BTreeMap::new(),
            fold: Some(fold),
        }
    }

    /// Adds one row.
    pub fn add(&mut self, row: &CycleRow<'_>) {
        match *row {
            CycleRow::Cell {
                workspace: None, ..
            } => {
                if let Some(fold) = &mut self.fold {
                    fold.sum.add_cell(row, &self.settings);
                }
            }
            CycleRow::Folded {
                workspace,
                items,
                sessions,
                problems,
            } => {
                if let Some(fold) = &mut self.fold {
                    fold.add_workspace(workspace, &items, sessions, problems, &self.settings);
                }
            }
            CycleRow::Scope {
                workspace,
                index,
                items,
                folded: true,
            } => {
                if let Some(fold) = &mut self.fold
                    && fold.selected.contains(workspace)
                    && applies(&self.settings, index, workspace)
                {
                    fold.sum.add_scope(index, &items);
                }
            }
            CycleRow::Cell {
                workspace: Some(workspace),
                ..
            }
            | CycleRow::Session { workspace, .. }
            | CycleRow::Scope { workspace, .. }
            | CycleRow::Detail { workspace, .. } => {
                let settings = &self.settings;
                let Some(accumulator) = full_entry(
                    &mut self.workspaces,
                    self.fold.as_ref(),
                    settings,
                    workspace,
                ) else {
                    return;
                };
                match row {
                    CycleRow::Cell { .. } => accumulator.add_cell(row, settings),
                    CycleRow::Session { .. } => accumulator.add_session(row),
                    CycleRow::Scope { index, items, .. } => accumulator.add_scope(*index, items),
                    CycleRow::Detail { .. } => accumulator.add_detail(row, settings),
                    CycleRow::Folded { .. } => {}
                }
            }
        }
    }

    /// Ends the cycle.
    pub fn finish(self) -> CycleResults {
        let settings = self.settings;
        let mut accumulators = self.workspaces;
        let folded = self.fold.and_then(|mut fold| {
            let mut count = fold.seen.len() as u64;
            // Workspaces without rows rank after every pending backlog, by name: the first
            // `full` of them may be chosen, the others cannot.
            let mut kept = 0usize;
            for name in &fold.selected {
                if accumulators.contains_key(name) || fold.seen.contains(name) {
                    continue;
                }
                if kept < fold.full {
                    accumulators.insert(name.clone(), WorkspaceAccumulator::new(name, &settings));
                    kept += 1;
                } else {
                    count += 1;
                    mark_applying(&mut fold.applying, name, &settings);
                }
            }
            (count > 0).then(|| fold.finish(count, &settings))
        });
        let workspaces = accumulators
            .into_iter()
            .map(|(name, workspace)| (name, workspace.finish(&settings)))
            .collect();
        CycleResults { workspaces, folded }
    }
}

/// The accumulator of a workspace returned in full (created on its first row over the
/// ceiling); `None` for a workspace not selected.
fn full_entry<'a>(
    workspaces: &'a mut BTreeMap<String, WorkspaceAccumulator>,
    fold: Option<&Fold>,
    settings: &MappingSettings,
    workspace: &str,
) -> Option<&'a mut WorkspaceAccumulator> {
    let creatable = fold.is_some_and(|fold| fold.selected.contains(workspace));
    if creatable && !workspaces.contains_key(workspace) {
        // The name is copied once, on the workspace's first row, not on every row.
        workspaces.insert(
            workspace.to_string(),
            WorkspaceAccumulator::new(workspace, settings),
        );
    }
    workspaces.get_mut(workspace)
}

/// Marks the scopes that apply to `workspace`.
fn mark_applying(applying: &mut [bool], workspace: &str, settings: &MappingSettings) {
    for (index, applies_here) in applying.iter_mut().enumerate() {
        *applies_here |= applies(settings, index, workspace);
    }
}

/// Whether the scope at `index` applies to `workspace`.
fn applies(settings: &MappingSettings, index: usize, workspace: &str) -> bool {
    settings
        .scopes
        .get(index)
        .is_some_and(|scope| scope.applies_to(workspace))
}

impl Fold {
    /// One folded workspace with rows: its counts, and what its caps would have counted.
    fn add_workspace(
        &mut self,
        workspace: &str,
        items: &StateItems,
        sessions: u64,
        problems: u64,
        settings: &MappingSettings,
    ) {
        if !self.selected.contains(workspace) || !self.seen.insert(workspace.to_string()) {
            return;
        }
        self.sum.counts.add(&items.counts());
        self.capped_sessions += sessions.saturating_sub(settings.max_sessions as u64);
        self.capped_detail += problems.saturating_sub(settings.detail_limit as u64);
        mark_applying(&mut self.applying, workspace, settings);
    }

    fn finish(mut self, workspaces: u64, settings: &MappingSettings) -> FoldedResult {
        let applying = self.applying;
        self.sum
            .scopes
            .retain(|(index, _)| applying.get(*index).copied().unwrap_or(false));
        let mut result = self.sum.finish(settings);
        // No session rows (summarize_status would make one of all the items).
        result.status.sessions.clear();
        result.status.capped_sessions = self.capped_sessions;
        result.work_units.capped_detail = self.capped_detail;
        FoldedResult { workspaces, result }
    }
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

impl WorkspaceAccumulator {
    /// Zeros for `name`, with the scopes that apply to it.
    fn new(name: &str, settings: &MappingSettings) -> Self {
        let scopes = (0..settings.scopes.len())
            .filter(|index| applies(settings, *index, name))
            .map(|index| (index, zero_with_split()))
            .collect();
        WorkspaceAccumulator {
            counts: zero_with_split(),
            sessions: BTreeMap::new(),
            session_names: BTreeMap::new(),
            scopes,
            // The deriver settings are known even with no rows (the API's envelope gives them
            // on an empty walk, whose `total` is 0).
            aggregate: WorkUnitAggregate {
                batch_max_tokens: Some(settings.batch_max_tokens),
                flush_enabled: Some(settings.flush_enabled),
                listed: Some(0),
                ..WorkUnitAggregate::default()
            },
            detail: Vec::new(),
        }
    }

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

    /// One configured scope's items, if the scope applies here.
    fn add_scope(&mut self, index: usize, items: &super::mapping::StateItems) {
        if let Some((_, counts)) = self
            .scopes
            .iter_mut()
            .find(|(applying, _)| *applying == index)
        {
            counts.add(&items.counts());
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

    /// The workspace's result.
    fn finish(self, settings: &MappingSettings) -> WorkspaceResult {
        let sessions = (!self.sessions.is_empty()).then(|| {
            self.sessions
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
                counts: self.counts,
                sessions,
            },
            settings.max_sessions,
        );
        let mut work_units = self.aggregate;
        let mut detail = self.detail;
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
        // Names for every exported session (the API knows only those with unprocessed rows;
        // the database knows them all).
        let names = self.session_names;
        work_units.session_names = status
            .sessions
            .iter()
            .filter_map(|row| {
                names
                    .get(&row.session_id)
                    .map(|name| (row.session_id.clone(), name.clone()))
            })
            .collect();
        let scopes = self
            .scopes
            .into_iter()
            .map(|(index, counts)| (settings.scopes[index].name.clone(), counts))
            .collect();
        WorkspaceResult {
            status,
            work_units,
            scopes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Scope;

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
            workspace: Some("ws"),
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
    fn sessions_sum_to_the_workspace_and_the_none_row_holds_the_rest() {
        let names = vec!["ws".to_string(), "empty".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names, None);
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
        let results = cycle.finish().workspaces;
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
        let mut cycle = CycleAccumulator::new(settings(false), &names, None);
        cycle.add(&cell(UnitState::Stalled, 2, Some(70)));
        cycle.add(&cell(UnitState::Overdue, 1, Some(95)));
        cycle.add(&cell(UnitState::Ready, 4, None));
        let ws = &cycle.finish().workspaces["ws"];
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
        let mut cycle = CycleAccumulator::new(settings(false), &names, None);
        cycle.add(&cell(UnitState::Overdue, 2, Some(60)));
        cycle.add(&cell(UnitState::InProgress, 3, None));
        cycle.add(&cell(UnitState::Ready, 7, None));
        cycle.add(&detail(
            2,
            "representation:ws:s:alice:bob",
            UnitState::Overdue,
        ));
        cycle.add(&detail(1, "representation:ws:s:carol", UnitState::Overdue));
        let ws = &cycle.finish().workspaces["ws"];
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
        let mut cycle = CycleAccumulator::new(settings(true), &names, None);
        cycle.add(&detail(
            1,
            "representation:ws:s:carol",
            UnitState::InProgress,
        ));
        let ws = &cycle.finish().workspaces["ws"];
        assert_eq!(ws.work_units.detail[0].tokens_until_threshold, 0);
    }

    #[test]
    fn scope_rows_reach_only_the_workspaces_a_scope_applies_to() {
        let names = vec!["ws".to_string(), "other".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names, None);
        for workspace in ["ws", "other"] {
            for index in [0, 1] {
                cycle.add(&CycleRow::Scope {
                    workspace,
                    index,
                    items: items(1, 1, 1, 1),
                    folded: false,
                });
            }
        }
        let results = cycle.finish().workspaces;
        assert_eq!(results["ws"].scopes.len(), 1);
        assert_eq!(results["ws"].scopes["everywhere"].total, 4);
        assert_eq!(
            results["other"].scopes["elsewhere"].pending_stalled,
            Some(1)
        );
    }

    #[test]
    fn the_query_returns_everything_in_full_until_the_ceiling_has_more_than_its_window() {
        assert_eq!(full_workspaces(0, 100_000), None, "no ceiling");
        assert_eq!(full_workspaces(250, 275), None, "within max + margin");
        assert_eq!(full_workspaces(250, 276), Some(275));
        assert_eq!(full_workspaces(1, 3), Some(2), "the margin is at least one");
    }

    #[test]
    fn over_the_ceiling_folded_rows_sum_into_one_result_with_their_caps_counted() {
        let names: Vec<String> = ["a", "b", "c", "d", "e", "other"]
            .map(String::from)
            .to_vec();
        let mut cycle = CycleAccumulator::new(settings(false), &names, Some(2));
        cycle.add(&CycleRow::Cell {
            workspace: Some("a"),
            task_type: "summary",
            state: UnitState::Ready,
            units: 1,
            items: 3,
            tokens: 10,
            oldest_micros: 1_000_000_000_000_000,
            largest_gated_tokens: None,
        });
        cycle.add(&CycleRow::Session {
            workspace: "a",
            session_id: Some("s1"),
            session_name: Some("chat-1"),
            items: items(0, 0, 0, 3),
        });
        // The folded workspaces' cells, summed by the query, and their own rows.
        cycle.add(&CycleRow::Cell {
            workspace: None,
            task_type: "representation",
            state: UnitState::Stalled,
            units: 5,
            items: 10,
            tokens: 300,
            oldest_micros: 1_000_000_000_000_000,
            largest_gated_tokens: Some(90),
        });
        for (workspace, sessions, problems) in [("c", 12, 5), ("other", 1, 1)] {
            cycle.add(&CycleRow::Folded {
                workspace,
                items: items(1, 0, 2, 0),
                sessions,
                problems,
            });
        }
        cycle.add(&CycleRow::Folded {
            workspace: "not-selected",
            items: items(9, 9, 9, 9),
            sessions: 99,
            problems: 99,
        });
        for index in [0, 1] {
            cycle.add(&CycleRow::Scope {
                workspace: "c",
                index,
                items: items(1, 0, 1, 0),
                folded: true,
            });
        }
        let results = cycle.finish();
        // "a" has rows; "b" and "d", without rows, are the first two of those by name (the
        // ceiling may choose them); "e" is folded with "c" and "other".
        let full: Vec<&str> = results.workspaces.keys().map(String::as_str).collect();
        assert_eq!(full, ["a", "b", "d"]);
        let folded = results.folded.expect("folded workspaces");
        assert_eq!(folded.workspaces, 3);
        let sum = &folded.result;
        assert_eq!(
            (
                sum.status.counts.completed,
                sum.status.counts.pending_stalled
            ),
            (2, Some(4))
        );
        assert!(sum.status.sessions.is_empty());
        assert_eq!(
            sum.status.capped_sessions, 2,
            "12 sessions over a cap of 10"
        );
        assert_eq!(sum.work_units.capped_detail, 3, "5 problem units, 2 kept");
        let stalled = sum
            .work_units
            .cell(TaskType::Representation, UnitState::Stalled);
        assert_eq!((stalled.units, stalled.items), (5, 10));
        assert_eq!(
            sum.work_units.tokens_until_threshold[TaskType::Representation.index()],
            Some(10)
        );
        assert!(sum.work_units.detail.is_empty());
        // "elsewhere" applies to "other" only: present (other is folded) but only the scope
        // row of a workspace it applies to counts.
        assert_eq!(sum.scopes["everywhere"].total, 2);
        assert_eq!(sum.scopes["elsewhere"].total, 0);
    }

    #[test]
    fn a_scope_applying_to_no_folded_workspace_is_absent_from_the_fold() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let mut cycle = CycleAccumulator::new(settings(false), &names, Some(1));
        cycle.add(&CycleRow::Folded {
            workspace: "c",
            items: items(0, 0, 1, 0),
            sessions: 1,
            problems: 1,
        });
        let results = cycle.finish();
        let folded = results.folded.expect("folded workspaces");
        // "a" is the first without rows and is kept; "b" and "d" fold with "c".
        assert_eq!(results.workspaces.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(folded.workspaces, 3);
        assert_eq!(
            folded.result.scopes.keys().collect::<Vec<_>>(),
            ["everywhere"]
        );
    }
}
