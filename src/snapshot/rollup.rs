//! The ceiling on cardinality: which workspaces are exported in full ([`select_exported`]: the
//! top N by pending backlog, then by oldest ready item, with hysteresis), the fold of all the
//! others into one `workspace="__other__"` ([`roll_up`]), and the per-family switches that strip
//! detail data before families render ([`strip_detail`]). Pure, no clock; the same for both
//! sources (applied in their one publish path, `crate::source::publish`).
//!
//! The fold keeps every queue gauge exact under `sum by (state)`: items, work units, work-unit
//! items and pending tokens are summed; oldest timestamps and tokens-until-threshold take the
//! minimum. Detail (per session, per work unit, the session id → name map) is not rolled up:
//! only the exported workspaces have it. Per-workspace self-metrics of `__other__`: `up` is 1
//! only if every rolled-up workspace's endpoint is up, the last success is the stalest one, the
//! walk is truncated if any one is, its age is the stalest walk's and its duration the longest.
//!
//! Must not: know any source, read settings, or touch the exporter-wide numbers other than
//! those of the ceiling itself ([`RollupStats`]).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::classify::UnitState;

use super::{EndpointHealth, Snapshot, StatusSummary, WorkUnitAggregate, WorkspaceSnapshot};

/// `workspace` label of the workspaces beyond `workspaces.max_exported`, folded together. Over
/// the ceiling, a real workspace of that name is never exported in full but folded into it
/// (a duplicate series otherwise).
pub const OTHER_WORKSPACES: &str = "__other__";

/// The `family` label of `honcho_exporter_series_capped_total` counting rolled-up workspaces.
pub const CAPPED_WORKSPACES: &str = "workspaces";

/// Which detail families are exported (`metrics.*`; all on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailSwitches {
    /// `honcho_queue_session_items` (per-session rows of queue/status).
    pub session_items: bool,
    /// `honcho_queue_session_info` (the session id → name map).
    pub session_info: bool,
    /// The per-work-unit detail families (`honcho_queue_work_unit_*` of the top problem units).
    pub work_unit_detail: bool,
}

impl Default for DetailSwitches {
    fn default() -> Self {
        DetailSwitches {
            session_items: true,
            session_info: true,
            work_unit_detail: true,
        }
    }
}

/// The ceiling's own numbers, exported once it first rolled something up (so at defaults,
/// below the ceiling, the output is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupStats {
    /// Workspaces in the snapshot before the fold (`honcho_exporter_workspaces`).
    pub polled: u64,
    /// Workspaces folded into `__other__` now.
    pub rolled_up: u64,
}

/// What the ceiling remembers from one publication to the next: the workspaces exported in
/// full (for the hysteresis) and its counter. Bounded by `workspaces.max_exported` names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupMemory {
    /// The workspaces exported in full by the last publication (all of them while under the
    /// ceiling; empty without a ceiling).
    pub exported: Arc<BTreeSet<String>>,
    /// The ceiling rolled something up since start: its numbers are exported from then on.
    pub engaged: bool,
    /// Rolled-up workspaces summed over poll cycles (`series_capped_total{family="workspaces"}`).
    pub capped_total: u64,
    /// The poll cycle last counted into `capped_total` (a cycle may publish several times).
    pub counted_cycle: Option<u64>,
}

/// A workspace's pending backlog: queue/status's pending items, else (no status) the pending
/// items of its walked work units, else 0.
fn backlog(data: &WorkspaceSnapshot) -> u64 {
    if let Some(status) = &data.status {
        return status.counts.pending;
    }
    match &data.work_units {
        Some(units) if !data.head_only => units
            .cells
            .iter()
            .flat_map(|states| {
                UnitState::ALL
                    .into_iter()
                    .filter(|state| *state != UnitState::InProgress)
                    .map(|state| states[state.index()].items)
            })
            .sum(),
        _ => 0,
    }
}

/// The oldest pending item among a workspace's ready work units (Unix seconds), if any.
fn oldest_ready(data: &WorkspaceSnapshot) -> Option<f64> {
    data.work_units.as_ref().and_then(|units| {
        units
            .cells
            .iter()
            .filter_map(|states| states[UnitState::Ready.index()].oldest_item_timestamp)
            .min_by(f64::total_cmp)
    })
}

/// Export order: larger backlog first, then the older oldest ready item (none last), then name.
fn export_order(a: (&str, &WorkspaceSnapshot), b: (&str, &WorkspaceSnapshot)) -> Ordering {
    let ready = |data| oldest_ready(data).unwrap_or(f64::INFINITY);
    backlog(b.1)
        .cmp(&backlog(a.1))
        .then(ready(a.1).total_cmp(&ready(b.1)))
        .then_with(|| a.0.cmp(b.0))
}

/// The workspaces of `snapshot` best first (the reserved name [`OTHER_WORKSPACES`] left out).
pub fn rank(snapshot: &Snapshot) -> Vec<&str> {
    let mut ranked: Vec<(&str, &WorkspaceSnapshot)> = snapshot
        .workspaces
        .iter()
        .map(|(name, data)| (name.as_str(), data))
        .filter(|(name, _)| *name != OTHER_WORKSPACES)
        .collect();
    ranked.sort_by(|a, b| export_order(*a, *b));
    ranked.into_iter().map(|(name, _)| name).collect()
}

/// How far below the top `max_exported` a workspace exported last time may fall and stay:
/// a tenth of the ceiling, at least one rank.
pub fn hysteresis_margin(max_exported: usize) -> usize {
    (max_exported / 10).max(1)
}

/// The workspaces to export in full, at most `max_exported` (0: no ceiling, `None`: all of
/// them). Over the ceiling, a workspace of `previous` (exported last time) keeps its place while
/// it ranks within `max_exported +` [`hysteresis_margin`]; the places left go to the best-ranked
/// others. So a workspace near the boundary does not enter and leave every cycle: a newcomer
/// displaces one only once that one has fallen past the margin.
pub fn select_exported(
    snapshot: &Snapshot,
    max_exported: usize,
    previous: &BTreeSet<String>,
) -> Option<BTreeSet<String>> {
    if max_exported == 0 {
        return None;
    }
    if snapshot.polled_workspaces() <= max_exported as u64 {
        return Some(snapshot.workspaces.keys().cloned().collect());
    }
    let ranked = rank(snapshot);
    let window = max_exported + hysteresis_margin(max_exported);
    let mut exported: BTreeSet<String> = ranked
        .iter()
        .take(window)
        .filter(|name| previous.contains(**name))
        .take(max_exported)
        .map(|name| name.to_string())
        .collect();
    for name in &ranked {
        if exported.len() >= max_exported {
            break;
        }
        if !exported.contains(*name) {
            exported.insert(name.to_string());
        }
    }
    Some(exported)
}

/// Folds every workspace not in `exported`, and those the source folded already
/// ([`Snapshot::folded`]), into one [`OTHER_WORKSPACES`] entry; returns how many were folded.
/// Nothing folded: the snapshot is unchanged (no `__other__`).
pub fn roll_up(snapshot: &mut Snapshot, exported: &BTreeSet<String>) -> u64 {
    let rolled: Vec<String> = snapshot
        .workspaces
        .keys()
        .filter(|name| !exported.contains(*name))
        .cloned()
        .collect();
    let folded = snapshot.folded.take();
    if rolled.is_empty() && folded.is_none() {
        return 0;
    }
    let mut fold = Fold::default();
    for name in &rolled {
        if let Some(data) = snapshot.workspaces.remove(name) {
            fold.add(data);
        }
    }
    let mut count = rolled.len() as u64;
    if let Some(folded) = folded {
        fold.add(folded.data);
        count += folded.workspaces;
    }
    snapshot
        .workspaces
        .insert(OTHER_WORKSPACES.to_string(), fold.finish());
    count
}

/// Strips the data of the detail families switched off, in every workspace.
pub fn strip_detail(snapshot: &mut Snapshot, switches: DetailSwitches) {
    if switches == DetailSwitches::default() {
        return;
    }
    for data in snapshot.workspaces.values_mut() {
        if let (false, Some(status)) = (switches.session_items, data.status.as_mut()) {
            status.sessions.clear();
        }
        if let Some(units) = data.work_units.as_mut() {
            if !switches.session_info {
                units.session_names.clear();
            }
            if !switches.work_unit_detail {
                units.detail.clear();
            }
        }
    }
}

/// The `__other__` workspace being built, one rolled-up workspace at a time.
#[derive(Debug, Default)]
struct Fold {
    data: WorkspaceSnapshot,
    /// Some workspace had a walk whose per-state counts are known (not head only).
    counted_walk: bool,
}

impl Fold {
    fn add(&mut self, data: WorkspaceSnapshot) {
        if let Some(status) = data.status {
            match &mut self.data.status {
                Some(sum) => sum.counts.add(&status.counts),
                None => {
                    self.data.status = Some(StatusSummary {
                        counts: status.counts,
                        sessions: Vec::new(),
                        capped_sessions: 0,
                    });
                }
            }
        }
        if let Some(units) = &data.work_units {
            let sum = self
                .data
                .work_units
                .get_or_insert_with(WorkUnitAggregate::default);
            add_walk(sum, units, !data.head_only);
            self.counted_walk |= !data.head_only;
        }
        self.data.walk_truncated |= data.walk_truncated;
        for (scope, counts) in data.scopes {
            match self.data.scopes.get_mut(&scope) {
                Some(sum) => sum.add(&counts),
                None => {
                    self.data.scopes.insert(scope, counts);
                }
            }
        }
        for (endpoint, health) in data.health {
            let sum = self.data.health.entry(endpoint).or_insert(EndpointHealth {
                up: true,
                last_success: None,
            });
            sum.up &= health.up;
            sum.last_success = min_option(sum.last_success, health.last_success);
        }
        if let Some(listed) = data.units_listed {
            *self.data.units_listed.get_or_insert(0) += listed;
        }
        if let Some((ended, took)) = data.last_complete_walk {
            let sum = self.data.last_complete_walk.get_or_insert((ended, took));
            *sum = (sum.0.min(ended), sum.1.max(took));
        }
    }

    fn finish(mut self) -> WorkspaceSnapshot {
        // Per-state counts are exported only if some folded walk had them.
        self.data.head_only = self.data.work_units.is_some() && !self.counted_walk;
        self.data
    }
}

/// Adds one workspace's walk to `sum`: counts only when `counted` (a head-only walk's counts
/// are not exported, so they must not be summed either); the oldest timestamps always.
fn add_walk(sum: &mut WorkUnitAggregate, units: &WorkUnitAggregate, counted: bool) {
    for (sum_states, states) in sum.cells.iter_mut().zip(&units.cells) {
        for (sum_cell, cell) in sum_states.iter_mut().zip(states) {
            if counted {
                sum_cell.units += cell.units;
                sum_cell.items += cell.items;
                sum_cell.tokens += cell.tokens;
            }
            sum_cell.oldest_item_timestamp =
                min_option(sum_cell.oldest_item_timestamp, cell.oldest_item_timestamp);
        }
    }
    if counted {
        for (sum_value, value) in sum
            .tokens_until_threshold
            .iter_mut()
            .zip(units.tokens_until_threshold)
        {
            *sum_value = min_option(*sum_value, value);
        }
    }
    sum.duplicates += units.duplicates;
    sum.invalid_timestamps += units.invalid_timestamps;
    if sum.first_invalid_timestamp.is_none() {
        sum.first_invalid_timestamp = units.first_invalid_timestamp.clone();
    }
    if let Some(listed) = units.listed {
        *sum.listed.get_or_insert(0) += listed;
    }
    sum.batch_max_tokens = sum.batch_max_tokens.or(units.batch_max_tokens);
    sum.flush_enabled = sum.flush_enabled.or(units.flush_enabled);
}

fn min_option<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::classify::TaskType;
    use crate::honcho::Endpoint;
    use crate::honcho::types::ItemCounts;
    use crate::snapshot::FoldedWorkspaces;
    use crate::snapshot::{SessionRow, UnitDetail};

    /// A workspace: `pending` items (of which `stalled` stalled), `in_progress` items, one
    /// representation ready cell whose oldest item is at `ready_at`, a stalled cell at
    /// `stalled_at` with tokens-until-threshold `until`, one session row and one detail unit.
    struct Spec {
        pending: u64,
        stalled: u64,
        in_progress: u64,
        ready_at: Option<f64>,
        stalled_at: f64,
        until: u64,
        up: bool,
    }

    impl Spec {
        fn pending(pending: u64) -> Self {
            Spec {
                pending,
                stalled: 0,
                in_progress: 0,
                ready_at: Some(1000.0),
                stalled_at: 500.0,
                until: 50,
                up: true,
            }
        }
    }

    fn workspace(spec: Spec) -> WorkspaceSnapshot {
        let counts = ItemCounts {
            total: spec.pending + spec.in_progress,
            completed: 0,
            in_progress: spec.in_progress,
            pending: spec.pending,
            pending_stalled: Some(spec.stalled),
            pending_ready: Some(spec.pending - spec.stalled),
        };
        let mut units = WorkUnitAggregate::default();
        let representation = TaskType::Representation.index();
        let ready = &mut units.cells[representation][UnitState::Ready.index()];
        ready.units = 1;
        ready.items = spec.pending - spec.stalled;
        ready.tokens = 10 * ready.items;
        ready.oldest_item_timestamp = spec.ready_at;
        let stalled = &mut units.cells[representation][UnitState::Stalled.index()];
        stalled.units = 1;
        stalled.items = spec.stalled;
        stalled.tokens = 10 * spec.stalled;
        stalled.oldest_item_timestamp = Some(spec.stalled_at);
        units.tokens_until_threshold[representation] = Some(spec.until);
        units.detail.push(UnitDetail {
            work_unit_key: "representation:w:s:alice".to_string(),
            task_type: TaskType::Representation,
            state: UnitState::Stalled,
            session_name: "s".to_string(),
            observed: "alice".to_string(),
            oldest_item_timestamp: spec.stalled_at,
            tokens_until_threshold: spec.until,
            pending_tokens: 10 * spec.stalled,
        });
        units
            .session_names
            .insert("id-s".to_string(), "s".to_string());
        let health = EndpointHealth {
            up: spec.up,
            last_success: Some(if spec.up { 2000.0 } else { 1500.0 }),
        };
        WorkspaceSnapshot {
            status: Some(StatusSummary {
                counts,
                sessions: vec![SessionRow {
                    session_id: "id-s".to_string(),
                    counts,
                }],
                capped_sessions: 0,
            }),
            work_units: Some(units),
            health: BTreeMap::from([(Endpoint::Status, health), (Endpoint::WorkUnits, health)]),
            units_listed: Some(2),
            last_complete_walk: Some((spec.stalled_at, Duration::from_secs(spec.until))),
            ..WorkspaceSnapshot::default()
        }
    }

    fn snapshot(workspaces: Vec<(&str, Spec)>) -> Snapshot {
        Snapshot {
            workspaces: workspaces
                .into_iter()
                .map(|(name, spec)| (name.to_string(), workspace(spec)))
                .collect(),
            ..Snapshot::default()
        }
    }

    /// Named workspace specs, as a table row gives them.
    type Workspaces = Vec<(&'static str, Spec)>;

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    fn exported(snapshot: &Snapshot, max: usize, previous: &[&str]) -> Vec<String> {
        let previous: BTreeSet<String> = previous.iter().map(|name| name.to_string()).collect();
        let chosen = select_exported(snapshot, max, &previous).expect("a ceiling");
        names(&chosen).into_iter().map(str::to_string).collect()
    }

    /// Per workspace × state sums of items, work units, work-unit items and tokens.
    fn state_sums(snapshot: &Snapshot) -> [u64; 8] {
        let mut sums = [0; 8];
        for data in snapshot.workspaces.values() {
            let status = data.status.as_ref().expect("status");
            sums[0] += status.counts.pending;
            sums[1] += status.counts.in_progress;
            sums[2] += status.counts.pending_stalled.expect("split");
            sums[3] += status.counts.pending_ready.expect("split");
            let units = data.work_units.as_ref().expect("walk");
            for states in &units.cells {
                for cell in states {
                    sums[4] += cell.units;
                    sums[5] += cell.items;
                    sums[6] += cell.tokens;
                }
            }
            sums[7] += data.units_listed.unwrap_or(0);
        }
        sums
    }

    #[test]
    fn the_order_is_backlog_then_oldest_ready_then_name() {
        let older = Spec {
            ready_at: Some(10.0),
            ..Spec::pending(5)
        };
        let no_ready = Spec {
            ready_at: None,
            ..Spec::pending(5)
        };
        let cases: Vec<(Workspaces, Vec<&str>)> = vec![
            (
                vec![("a", Spec::pending(1)), ("b", Spec::pending(9))],
                vec!["b", "a"],
            ),
            (vec![("a", Spec::pending(5)), ("b", older)], vec!["b", "a"]),
            (
                vec![("a", no_ready), ("b", Spec::pending(5))],
                vec!["b", "a"],
            ),
            (
                vec![("b", Spec::pending(5)), ("a", Spec::pending(5))],
                vec!["a", "b"],
            ),
        ];
        for (workspaces, expected) in cases {
            let snapshot = snapshot(workspaces);
            assert_eq!(rank(&snapshot), expected);
        }
    }

    #[test]
    fn the_top_n_are_exported_and_the_rest_fold_into_other_with_exact_sums() {
        let mut snapshot = snapshot(vec![
            ("a", Spec::pending(1)),
            (
                "b",
                Spec {
                    stalled: 3,
                    in_progress: 2,
                    ..Spec::pending(7)
                },
            ),
            (
                "c",
                Spec {
                    stalled: 1,
                    in_progress: 4,
                    ..Spec::pending(3)
                },
            ),
            ("d", Spec::pending(2)),
        ]);
        let before = state_sums(&snapshot);
        let exported = select_exported(&snapshot, 2, &BTreeSet::new()).expect("a ceiling");
        assert_eq!(names(&exported), ["b", "c"]);
        assert_eq!(roll_up(&mut snapshot, &exported), 2);
        let workspaces: Vec<&str> = snapshot.workspaces.keys().map(String::as_str).collect();
        assert_eq!(workspaces, [OTHER_WORKSPACES, "b", "c"]);
        assert_eq!(state_sums(&snapshot), before, "sums per state are exact");
    }

    #[test]
    fn workspaces_a_source_folded_join_other_and_count_as_polled_and_rolled_up() {
        let whole = snapshot(vec![
            ("a", Spec::pending(1)),
            ("b", Spec::pending(7)),
            ("d", Spec::pending(2)),
        ]);
        let mut folding = whole.clone();
        // A source that folded "a" and "d" itself hands them over as one part.
        let mut sum = snapshot(vec![("a", Spec::pending(1)), ("d", Spec::pending(2))]);
        roll_up(&mut sum, &BTreeSet::new());
        folding.workspaces.remove("a");
        folding.workspaces.remove("d");
        folding.folded = Some(FoldedWorkspaces {
            workspaces: 2,
            data: sum.workspaces.remove(OTHER_WORKSPACES).expect("folded"),
        });
        assert_eq!(folding.polled_workspaces(), 3);
        let exported = select_exported(&folding, 1, &BTreeSet::new()).expect("a ceiling");
        assert_eq!(names(&exported), ["b"]);
        assert_eq!(roll_up(&mut folding, &exported), 2);
        assert!(folding.folded.is_none(), "the folded part is consumed");
        let mut expected = whole;
        roll_up(&mut expected, &exported);
        assert_eq!(
            folding, expected,
            "the same __other__ as folding every workspace here"
        );
    }

    #[test]
    fn oldest_timestamps_and_tokens_until_threshold_take_the_minimum() {
        let mut snapshot = snapshot(vec![
            ("top", Spec::pending(100)),
            (
                "x",
                Spec {
                    ready_at: Some(300.0),
                    stalled_at: 40.0,
                    until: 70,
                    ..Spec::pending(2)
                },
            ),
            (
                "y",
                Spec {
                    ready_at: None,
                    stalled_at: 90.0,
                    until: 20,
                    ..Spec::pending(1)
                },
            ),
        ]);
        let exported = select_exported(&snapshot, 1, &BTreeSet::new()).expect("a ceiling");
        roll_up(&mut snapshot, &exported);
        let other = &snapshot.workspaces[OTHER_WORKSPACES];
        let units = other.work_units.as_ref().expect("walk");
        let representation = TaskType::Representation.index();
        let cell = |state: UnitState| units.cells[representation][state.index()];
        assert_eq!(cell(UnitState::Ready).oldest_item_timestamp, Some(300.0));
        assert_eq!(cell(UnitState::Stalled).oldest_item_timestamp, Some(40.0));
        assert_eq!(cell(UnitState::Overdue).oldest_item_timestamp, None);
        assert_eq!(units.tokens_until_threshold[representation], Some(20));
        assert_eq!(
            other.last_complete_walk,
            Some((40.0, Duration::from_secs(70)))
        );
    }

    #[test]
    fn other_carries_no_detail_and_is_up_only_if_every_folded_workspace_is() {
        for (x_up, other_up) in [(true, true), (false, false)] {
            let mut snapshot = snapshot(vec![
                ("top", Spec::pending(100)),
                (
                    "x",
                    Spec {
                        up: x_up,
                        ..Spec::pending(2)
                    },
                ),
                ("y", Spec::pending(1)),
            ]);
            let exported = select_exported(&snapshot, 1, &BTreeSet::new()).expect("a ceiling");
            roll_up(&mut snapshot, &exported);
            let other = &snapshot.workspaces[OTHER_WORKSPACES];
            let status = other.status.as_ref().expect("status");
            assert!(status.sessions.is_empty(), "no session rows");
            let units = other.work_units.as_ref().expect("walk");
            assert!(units.detail.is_empty() && units.session_names.is_empty());
            let health = other.health[&Endpoint::Status];
            assert_eq!(health.up, other_up);
            let stalest = if x_up { 2000.0 } else { 1500.0 };
            assert_eq!(health.last_success, Some(stalest));
            // The exported workspace keeps its detail.
            assert_eq!(
                snapshot.workspaces["top"]
                    .work_units
                    .as_ref()
                    .expect("walk")
                    .detail
                    .len(),
                1
            );
        }
    }

    #[test]
    fn nothing_is_folded_under_the_ceiling_or_without_one() {
        let original = snapshot(vec![
            ("a", Spec::pending(1)),
            (OTHER_WORKSPACES, Spec::pending(2)),
        ]);
        for max in [2, 5] {
            let mut copy = original.clone();
            let exported = select_exported(&copy, max, &BTreeSet::new()).expect("a ceiling");
            assert_eq!(roll_up(&mut copy, &exported), 0);
            assert_eq!(
                copy, original,
                "max {max}: unchanged, a real __other__ included"
            );
        }
        assert_eq!(select_exported(&original, 0, &BTreeSet::new()), None);
    }

    #[test]
    fn over_the_ceiling_a_real_workspace_named_other_is_folded_not_exported() {
        let mut snapshot = snapshot(vec![
            ("a", Spec::pending(1)),
            ("b", Spec::pending(1)),
            (OTHER_WORKSPACES, Spec::pending(50)),
        ]);
        let exported = select_exported(&snapshot, 2, &BTreeSet::new()).expect("a ceiling");
        assert_eq!(names(&exported), ["a", "b"]);
        assert_eq!(roll_up(&mut snapshot, &exported), 1);
        let other = &snapshot.workspaces[OTHER_WORKSPACES];
        assert_eq!(other.status.as_ref().expect("status").counts.pending, 50);
    }

    #[test]
    fn an_exported_workspace_keeps_its_place_within_the_margin_and_loses_it_past_it() {
        // Ceiling 10: margin 1, so rank 11 (index 10) still keeps a previous place.
        let ranked = |backlogs: &[(&'static str, u64)]| {
            snapshot(
                backlogs
                    .iter()
                    .map(|(name, pending)| (*name, Spec::pending(*pending)))
                    .collect(),
            )
        };
        let mut backlogs: Vec<(&'static str, u64)> = vec![
            ("w00", 100),
            ("w01", 99),
            ("w02", 98),
            ("w03", 97),
            ("w04", 96),
            ("w05", 95),
            ("w06", 94),
            ("w07", 93),
            ("w08", 92),
            ("new", 91),
            ("old", 90),
            ("w11", 1),
        ];
        let previous: Vec<&str> = vec![
            "w00", "w01", "w02", "w03", "w04", "w05", "w06", "w07", "w08", "old",
        ];
        let cases = [
            // `old` ranks 11th, within the margin: it stays, `new` (10th) waits.
            (91, 90, true),
            // Equal backlog, `old` still within the margin.
            (90, 90, true),
        ];
        for (new_backlog, old_backlog, old_stays) in cases {
            backlogs[9].1 = new_backlog;
            backlogs[10].1 = old_backlog;
            let chosen = exported(&ranked(&backlogs), 10, &previous);
            assert_eq!(chosen.len(), 10);
            assert_eq!(chosen.contains(&"old".to_string()), old_stays);
            assert_eq!(chosen.contains(&"new".to_string()), !old_stays);
        }
        // `old` falls to 12th (past the margin): `new` takes its place.
        backlogs[10].1 = 0;
        let chosen = exported(&ranked(&backlogs), 10, &previous);
        assert!(chosen.contains(&"new".to_string()) && !chosen.contains(&"old".to_string()));
        // Without a previous choice it is the plain top 10.
        backlogs[10].1 = 90;
        let chosen = exported(&ranked(&backlogs), 10, &[]);
        assert!(chosen.contains(&"new".to_string()) && !chosen.contains(&"old".to_string()));
    }

    #[test]
    fn a_lower_ceiling_than_last_time_keeps_the_best_of_the_previous_places() {
        let snapshot = snapshot(vec![
            ("a", Spec::pending(4)),
            ("b", Spec::pending(3)),
            ("c", Spec::pending(2)),
            ("d", Spec::pending(1)),
        ]);
        assert_eq!(exported(&snapshot, 2, &["a", "b", "c", "d"]), ["a", "b"]);
    }

    #[test]
    fn switched_off_detail_is_stripped_and_the_rest_kept() {
        let original = snapshot(vec![("a", Spec::pending(3))]);
        let cases = [
            (DetailSwitches::default(), (1, 1, 1)),
            (
                DetailSwitches {
                    session_items: false,
                    ..DetailSwitches::default()
                },
                (0, 1, 1),
            ),
            (
                DetailSwitches {
                    session_info: false,
                    ..DetailSwitches::default()
                },
                (1, 0, 1),
            ),
            (
                DetailSwitches {
                    work_unit_detail: false,
                    ..DetailSwitches::default()
                },
                (1, 1, 0),
            ),
        ];
        for (switches, expected) in cases {
            let mut copy = original.clone();
            strip_detail(&mut copy, switches);
            let data = &copy.workspaces["a"];
            let status = data.status.as_ref().expect("status");
            let units = data.work_units.as_ref().expect("walk");
            let kept = (
                status.sessions.len(),
                units.session_names.len(),
                units.detail.len(),
            );
            assert_eq!(kept, expected, "{switches:?}");
            assert_eq!(
                status.counts,
                original.workspaces["a"]
                    .status
                    .as_ref()
                    .expect("status")
                    .counts
            );
        }
    }

    #[test]
    fn a_head_only_walk_gives_its_oldest_item_but_no_counts_to_other() {
        let mut snapshot = snapshot(vec![
            ("top", Spec::pending(100)),
            ("x", Spec::pending(2)),
            (
                "y",
                Spec {
                    stalled_at: 5.0,
                    ..Spec::pending(1)
                },
            ),
        ]);
        snapshot.workspaces.get_mut("y").expect("y").head_only = true;
        let exported = select_exported(&snapshot, 1, &BTreeSet::new()).expect("a ceiling");
        roll_up(&mut snapshot, &exported);
        let other = &snapshot.workspaces[OTHER_WORKSPACES];
        assert!(!other.head_only, "x's counts are known");
        let units = other.work_units.as_ref().expect("walk");
        let stalled = units.cells[TaskType::Representation.index()][UnitState::Stalled.index()];
        assert_eq!(stalled.oldest_item_timestamp, Some(5.0));
        let ready = units.cells[TaskType::Representation.index()][UnitState::Ready.index()];
        assert_eq!(ready.items, 2, "only x's counts: y's are not exported");
    }
}
