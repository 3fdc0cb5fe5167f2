//! Pure mapping of the one-pass query's rows (one per work unit, processed rows included) onto
//! what the API path produces for the same rows: the queue/status counts with the
//! stalled/ready split, per-session counts, configured scopes and the work-units rows, fed
//! through the *same* [`summarize_status`] and [`WorkUnitAggregator`] the API path uses, so the
//! snapshot — and every metric family — is built by one code path whichever the source.
//!
//! The counting rules are those of `shared/honcho-api.md` (seed-002, generation C): an item is
//! completed when processed, in progress when its work unit is claimed, else pending; a pending
//! representation item is stalled when its unit's pending tokens are below the batch threshold
//! and flush is off. Only the tracked task types reach this module (the query filters them).
//!
//! Memory: per workspace, the counts, one entry per session with rows, and the aggregator's
//! bounded state; each unit goes to the aggregator as it arrives, borrowing the row's text.
//! No I/O, no clock: callers pass `now`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::config::Scope;
use crate::honcho::types::{ItemCounts, QueueStatus, SessionStatus, WorkUnitRow};
use crate::snapshot::{StatusSummary, WorkUnitAggregate, WorkUnitAggregator, summarize_status};

/// One row of the unit query: the rows of one (`work_unit_key`, `task_type`, `session_id`) in
/// one workspace, borrowed from the driver's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitGroup<'a> {
    /// `queue.workspace_name`.
    pub workspace: &'a str,
    /// `queue.work_unit_key`.
    pub work_unit_key: &'a str,
    /// `queue.task_type`.
    pub task_type: &'a str,
    /// `queue.session_id` (internal id); `None` for dreams.
    pub session_id: Option<&'a str>,
    /// `sessions.name` of that id, when the session still exists.
    pub session_name: Option<&'a str>,
    /// Processed rows (completed items, errored ones included).
    pub completed: u64,
    /// Unprocessed rows (the unit's pending items).
    pub unprocessed: u64,
    /// Sum of `messages.token_count` over the unprocessed rows (0 for rows without a message).
    pub tokens: u64,
    /// Microseconds since the epoch of the oldest unprocessed row; `None` without any.
    pub oldest_micros: Option<i64>,
    /// The unit's key has an `active_queue_sessions` row (claimed by a deriver worker).
    pub in_progress: bool,
}

/// What the mapping needs to know besides the rows.
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
pub fn key_peers(work_unit_key: &str) -> (Option<&str>, Option<&str>) {
    let parts: Vec<&str> = work_unit_key.split(':').collect();
    match parts.as_slice() {
        ["representation", _, _, observed] => (None, Some(observed)),
        ["representation", _, _, observer, observed] => (Some(observer), Some(observed)),
        ["dream", _, _, observer, observed] => (Some(observer), Some(observed)),
        _ => (None, None),
    }
}

/// Whether a scope's filter matches a unit: the session name must match when given; observer
/// and sender, when either is given, are OR-ed (the API's rule). Empty strings are absent.
fn scope_matches(scope: &Scope, group: &UnitGroup<'_>) -> bool {
    let given = |value: &Option<String>| value.clone().filter(|text| !text.is_empty());
    if let Some(session) = given(&scope.session_id)
        && group.session_name != Some(session.as_str())
    {
        return false;
    }
    let observer = given(&scope.observer_id);
    let sender = given(&scope.sender_id);
    if observer.is_none() && sender.is_none() {
        return true;
    }
    let (key_observer, key_observed) = key_peers(group.work_unit_key);
    let by_observer = observer.is_some_and(|o| key_observer == Some(o.as_str()));
    let by_sender = sender.is_some_and(|s| key_observed == Some(s.as_str()));
    by_observer || by_sender
}

/// Zero counts that carry the stalled/ready split (the database always knows it).
fn zero_with_split() -> ItemCounts {
    ItemCounts {
        pending_stalled: Some(0),
        pending_ready: Some(0),
        ..ItemCounts::default()
    }
}

/// Whether a unit's pending representation items are stalled (below the threshold, no flush).
fn is_gated(task_type: &str, settings: &MappingSettings) -> bool {
    task_type == "representation" && !settings.flush_enabled
}

/// The item counts of one unit group.
pub fn group_counts(group: &UnitGroup<'_>, settings: &MappingSettings) -> ItemCounts {
    let mut counts = zero_with_split();
    counts.completed = group.completed;
    counts.total = group.completed.saturating_add(group.unprocessed);
    if group.in_progress {
        counts.in_progress = group.unprocessed;
    } else {
        counts.pending = group.unprocessed;
        // All of a unit's unprocessed rows are pending here, so its pending tokens are `tokens`.
        let stalled =
            is_gated(group.task_type, settings) && group.tokens < settings.batch_max_tokens;
        if stalled {
            counts.pending_stalled = Some(group.unprocessed);
        } else {
            counts.pending_ready = Some(group.unprocessed);
        }
    }
    counts
}

/// Microseconds since the epoch as Unix seconds, computed exactly as the API path reads Honcho's
/// `oldest_item_at` (whole seconds plus the microseconds / 1e6), so both sources give the same
/// values to the last bit.
fn unix_seconds(micros: i64) -> f64 {
    micros.div_euclid(1_000_000) as f64 + micros.rem_euclid(1_000_000) as f64 / 1e6
}

/// The work-units row the API would list for a unit group (one with unprocessed rows), borrowing
/// the group's text. Its `oldest_item_at` is left empty: the aggregator takes the time as a
/// number ([`WorkUnitAggregator::add_row_at`]), with no text formatted and parsed back.
pub fn unit_row<'a>(group: &UnitGroup<'a>, settings: &MappingSettings) -> WorkUnitRow<'a> {
    let (tokens_until_threshold, hit_threshold) = if is_gated(group.task_type, settings) {
        (
            settings.batch_max_tokens.saturating_sub(group.tokens),
            group.tokens >= settings.batch_max_tokens,
        )
    } else {
        (0, true)
    };
    WorkUnitRow {
        work_unit_key: Cow::Borrowed(group.work_unit_key),
        task_type: Cow::Borrowed(group.task_type),
        session_id: group.session_id.map(Cow::Borrowed),
        session_name: group.session_name.map(Cow::Borrowed),
        observed: key_peers(group.work_unit_key).1.map(Cow::Borrowed),
        pending_items: group.unprocessed,
        pending_tokens: group.tokens,
        tokens_until_threshold,
        hit_threshold,
        in_progress: group.in_progress,
        oldest_item_at: Cow::Borrowed(""),
    }
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
    aggregator: WorkUnitAggregator,
}

/// Folds the rows of one cycle, in any order, into per-workspace results.
pub struct CycleAccumulator {
    settings: MappingSettings,
    workspaces: BTreeMap<String, WorkspaceAccumulator>,
}

impl CycleAccumulator {
    /// A cycle at `now` (Unix seconds) over the selected `workspaces`: each gets a result, with
    /// zeros when it has no rows (the API answers zeros for a workspace without rows); rows of
    /// other workspaces are ignored.
    pub fn new(settings: MappingSettings, workspaces: &[String], now: f64) -> Self {
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
                let mut accumulator = WorkspaceAccumulator {
                    counts: zero_with_split(),
                    sessions: BTreeMap::new(),
                    session_names: BTreeMap::new(),
                    scopes,
                    aggregator: WorkUnitAggregator::new(
                        now,
                        settings.overdue_after,
                        settings.detail_limit,
                        HashSet::new(),
                    ),
                };
                // The envelope tells the aggregator the deriver settings, even with no rows.
                accumulator.aggregator.add_envelope(
                    Some(settings.batch_max_tokens),
                    Some(settings.flush_enabled),
                    0,
                );
                (name.clone(), accumulator)
            })
            .collect();
        CycleAccumulator {
            settings,
            workspaces: accumulators,
        }
    }

    /// Adds one unit group.
    pub fn add(&mut self, group: &UnitGroup<'_>) {
        let Some(workspace) = self.workspaces.get_mut(group.workspace) else {
            return;
        };
        let settings = &self.settings;
        let counts = group_counts(group, settings);
        workspace.counts.add(&counts);
        if let Some(session_id) = group.session_id {
            match workspace.sessions.get_mut(session_id) {
                Some(session) => session.add(&counts),
                None => {
                    let mut session = zero_with_split();
                    session.add(&counts);
                    workspace.sessions.insert(session_id.to_string(), session);
                }
            }
            if let Some(name) = group.session_name
                && !workspace.session_names.contains_key(session_id)
            {
                workspace
                    .session_names
                    .insert(session_id.to_string(), name.to_string());
            }
        }
        for (index, scope_counts) in &mut workspace.scopes {
            if scope_matches(&settings.scopes[*index], group) {
                scope_counts.add(&counts);
            }
        }
        if group.unprocessed > 0 {
            let oldest = unix_seconds(group.oldest_micros.unwrap_or(0));
            workspace
                .aggregator
                .add_row_at(&unit_row(group, settings), oldest);
        }
    }

    /// Ends the cycle.
    pub fn finish(self) -> BTreeMap<String, WorkspaceResult> {
        let settings = self.settings;
        self.workspaces
            .into_iter()
            .map(|(name, workspace)| {
                let sessions = if workspace.sessions.is_empty() {
                    None
                } else {
                    Some(
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
                            .collect(),
                    )
                };
                let status = summarize_status(
                    QueueStatus {
                        counts: workspace.counts,
                        sessions,
                    },
                    settings.max_sessions,
                );
                let mut work_units = workspace.aggregator.finish();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{TaskType, UnitState};

    fn settings(flush: bool) -> MappingSettings {
        MappingSettings {
            batch_max_tokens: 100,
            flush_enabled: flush,
            overdue_after: Duration::from_secs(1800),
            detail_limit: 10,
            max_sessions: 10,
            scopes: vec![
                Scope {
                    name: "dream-observer".into(),
                    workspaces: Vec::new(),
                    observer_id: Some("alice".into()),
                    sender_id: None,
                    session_id: None,
                },
                Scope {
                    name: "bob-or-alice".into(),
                    workspaces: Vec::new(),
                    observer_id: Some("alice".into()),
                    sender_id: Some("bob".into()),
                    session_id: None,
                },
            ],
        }
    }

    fn group<'a>(key: &'a str, task: &'a str, session: Option<&'a str>) -> UnitGroup<'a> {
        UnitGroup {
            workspace: "ws",
            work_unit_key: key,
            task_type: task,
            session_id: session,
            session_name: session.map(|_| "chat-1"),
            completed: 0,
            unprocessed: 3,
            tokens: 99,
            oldest_micros: Some(1_000_000_000_000_000),
            in_progress: false,
        }
    }

    const NOW: f64 = 1_000_000_100.0;

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
    fn a_pending_representation_unit_below_the_threshold_is_stalled_and_exactly_at_it_is_ready() {
        let below = group("representation:ws:s1:bob", "representation", Some("s1"));
        assert_eq!(
            group_counts(&below, &settings(false)).pending_stalled,
            Some(3)
        );
        let at = UnitGroup {
            tokens: 100,
            ..below.clone()
        };
        assert_eq!(group_counts(&at, &settings(false)).pending_ready, Some(3));
        let row = unit_row(&at, &settings(false));
        assert!(row.hit_threshold);
        assert_eq!(row.tokens_until_threshold, 0);
        assert_eq!(unit_row(&below, &settings(false)).tokens_until_threshold, 1);
    }

    #[test]
    fn flush_stalls_nothing_and_in_progress_rows_are_never_pending() {
        let below = group("representation:ws:s1:bob", "representation", Some("s1"));
        assert_eq!(group_counts(&below, &settings(true)).pending_ready, Some(3));
        let claimed = UnitGroup {
            in_progress: true,
            ..below
        };
        let counts = group_counts(&claimed, &settings(false));
        assert_eq!((counts.in_progress, counts.pending), (3, 0));
        assert_eq!(counts.pending_stalled, Some(0));
    }

    #[test]
    fn a_cycle_gives_status_sessions_names_scopes_and_units_per_workspace() {
        let names = vec!["ws".to_string(), "empty".to_string()];
        let mut cycle = CycleAccumulator::new(settings(false), &names, NOW);
        cycle.add(&group(
            "representation:ws:s1:bob",
            "representation",
            Some("s1"),
        ));
        cycle.add(&UnitGroup {
            completed: 4,
            unprocessed: 0,
            oldest_micros: None,
            ..group("summary:ws:s2:None:None", "summary", Some("s2"))
        });
        cycle.add(&group("dream:omni:ws:alice:carol", "dream", None));
        cycle.add(&UnitGroup {
            workspace: "not-selected",
            ..group("dream:omni:x:alice:carol", "dream", None)
        });
        let results = cycle.finish();
        assert_eq!(results.len(), 2);
        let ws = &results["ws"];
        assert_eq!(ws.status.counts.total, 10);
        assert_eq!(ws.status.counts.completed, 4);
        assert_eq!(ws.status.counts.pending_stalled, Some(3));
        assert_eq!(ws.status.counts.pending_ready, Some(3));
        let session_ids: Vec<&str> = ws
            .status
            .sessions
            .iter()
            .map(|row| row.session_id.as_str())
            .collect();
        assert_eq!(session_ids, ["s1", "s2", crate::snapshot::NO_SESSION]);
        // Names for every exported session, the completed-only one included.
        assert_eq!(ws.work_units.session_names.len(), 2);
        assert_eq!(ws.scopes["dream-observer"].total, 3);
        assert_eq!(ws.scopes["bob-or-alice"].total, 6, "observer OR sender");
        let stalled = ws
            .work_units
            .cell(TaskType::Representation, UnitState::Stalled);
        assert_eq!((stalled.units, stalled.items, stalled.tokens), (1, 3, 99));
        assert_eq!(
            ws.work_units.tokens_until_threshold[TaskType::Representation.index()],
            Some(1)
        );
        assert_eq!(ws.work_units.batch_max_tokens, Some(100));
        let empty = &results["empty"];
        assert_eq!(empty.status.counts.total, 0);
        assert_eq!(
            empty.status.counts.pending_stalled,
            Some(0),
            "the split is known, zero"
        );
        assert!(empty.status.sessions.is_empty());
    }
}
