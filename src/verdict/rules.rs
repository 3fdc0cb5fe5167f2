//! The verdict rules: what one workspace's totals (and the history of them) say, in words.
//! [`judge`] applies every rule to one workspace given plain numbers, so each rule is tested
//! from a table; [`evaluate`] extracts those numbers from a snapshot and the history and builds
//! the [`Report`]. Pure: no I/O, no clock.
//!
//! Rule by rule (thresholds in [`Thresholds`]; the alert each mirrors in brackets):
//! - `deriver_idle`: pending items, nothing in progress in any workspace and `completed` unchanged
//!   for `idle_window` [`HonchoDeriverIdle`], or (generation C) ready items unclaimed with nothing
//!   in progress for `not_processing_after` [`HonchoDeriverNotProcessing`]; in one look
//!   (generation C): the oldest ready item older than `not_processing_after` with nothing in
//!   progress anywhere.
//! - `stuck_in_progress`: the same oldest in-progress item for `stuck_after`
//!   [`HonchoWorkUnitInProgressTooLong`]; in one look: that item older than `stuck_after`.
//! - `overdue`: overdue work units (stalled past `classify.overdue_after`)
//!   [`HonchoWorkUnitsOverdue`].
//! - `backlog`: ready work whose oldest item is older than `backlog_after`
//!   [`HonchoOldestPendingItemTooOld`], or ready work that never cleared and did not shrink over
//!   `backlog_after` [`HonchoBacklogLagging`], while the deriver is not idle.
//! - `waiting_for_tokens`: only stalled (sub-threshold) items pending, none overdue: by design.
//! - `unknown`: no fresh queue status; or, on generations A/B, pending work with nothing in
//!   progress while the history is shorter than `idle_window` (without the split, one look cannot
//!   tell a stopped deriver from work waiting for tokens).
//! - `ok`: none of the above.

use std::collections::BTreeMap;

use super::{
    Basis, Criteria, Finding, History, Kind, NotJudged, Report, Thresholds, WorkspaceVerdicts,
    in_words,
};
use crate::classify::{TaskType, UnitState};
use crate::snapshot::{Snapshot, WorkspaceSnapshot};

/// One workspace's numbers, as the rules read them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Pending items (ready + stalled on generation C).
    pub pending: u64,
    /// Ready items (generation C only: `None` without the split).
    pub ready: Option<u64>,
    /// Stalled items (generation C only).
    pub stalled: Option<u64>,
    /// Items in progress.
    pub in_progress: u64,
    /// Completed items still counted by Honcho.
    pub completed: u64,
    /// What the work-units walk says, when there is one.
    pub units: Option<Units>,
    /// Unix seconds of the oldest in-progress item (from `units`), for the history.
    pub oldest_in_progress: Option<f64>,
}

/// The work-unit view of a workspace (generation C).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Units {
    /// Unix seconds of the oldest item of a ready unit.
    pub oldest_ready: Option<f64>,
    /// Unix seconds of the oldest item of a stalled unit.
    pub oldest_stalled: Option<f64>,
    /// Stalled units.
    pub stalled_units: u64,
    /// Overdue units (at least this many when only the head of the walk is known).
    pub overdue_units: u64,
    /// Unix seconds of the oldest item of an overdue unit.
    pub oldest_overdue: Option<f64>,
    /// The fewest tokens a stalled or overdue representation unit still needs.
    pub tokens_needed: Option<u64>,
    /// Honcho's batch threshold (`DERIVER_REPRESENTATION_BATCH_MAX_TOKENS`), when reported.
    pub batch_max_tokens: Option<u64>,
    /// The session of the oldest in-progress unit (empty for dreams), from the detail.
    pub in_progress_session: Option<String>,
    /// The session of the oldest overdue unit, from the detail.
    pub overdue_session: Option<String>,
    /// Only the walk's first page is known: counts are lower bounds.
    pub head_only: bool,
}

impl Totals {
    /// The numbers of `workspace`, or `None` when it has no fresh queue status.
    pub fn of(workspace: &WorkspaceSnapshot) -> Option<Totals> {
        let counts = workspace.status.as_ref()?.counts;
        let units = workspace.work_units.as_ref().map(|aggregate| {
            let oldest = |state: UnitState| {
                TaskType::ALL
                    .iter()
                    .filter_map(|&task| aggregate.cell(task, state).oldest_item_timestamp)
                    .reduce(f64::min)
            };
            let units_in = |state: UnitState| {
                TaskType::ALL
                    .iter()
                    .map(|&task| aggregate.cell(task, state).units)
                    .sum::<u64>()
            };
            let session_of = |state: UnitState| {
                aggregate
                    .detail
                    .iter()
                    .find(|unit| unit.state == state)
                    .map(|unit| unit.session_name.clone())
            };
            Units {
                oldest_ready: oldest(UnitState::Ready),
                oldest_stalled: oldest(UnitState::Stalled),
                stalled_units: units_in(UnitState::Stalled),
                overdue_units: units_in(UnitState::Overdue),
                oldest_overdue: oldest(UnitState::Overdue),
                tokens_needed: aggregate.tokens_until_threshold[TaskType::Representation.index()],
                batch_max_tokens: aggregate.batch_max_tokens,
                in_progress_session: session_of(UnitState::InProgress),
                overdue_session: session_of(UnitState::Overdue),
                head_only: workspace.head_only,
            }
        });
        let oldest_in_progress = workspace.work_units.as_ref().and_then(|aggregate| {
            TaskType::ALL
                .iter()
                .filter_map(|&task| {
                    aggregate
                        .cell(task, UnitState::InProgress)
                        .oldest_item_timestamp
                })
                .reduce(f64::min)
        });
        Some(Totals {
            pending: counts.pending,
            ready: counts.pending_ready,
            stalled: counts.pending_stalled,
            in_progress: counts.in_progress,
            completed: counts.completed,
            units,
            oldest_in_progress,
        })
    }

    /// Ready work: `pending_ready` with the split, every pending item without it (as the
    /// recording rule `workspace:honcho_queue_ready_items:sum` counts).
    pub fn ready_items(&self) -> u64 {
        self.ready.unwrap_or(self.pending)
    }
}

/// What the history says about one workspace at the time of judging.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seen {
    /// Seconds this workspace has been watched without a break.
    pub covered: f64,
    /// Seconds the same oldest item has been in progress.
    pub in_progress_same_for: Option<f64>,
    /// Seconds the workspace has had ready work at every look.
    pub ready_for: Option<f64>,
    /// Ready items one `backlog_after` ago, if the history reaches back that far.
    pub ready_window_ago: Option<u64>,
}

/// What is known about the deriver as a whole at the time of judging.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeriverSeen {
    /// Seconds of history.
    pub covered: f64,
    /// Items in progress now, summed over every workspace.
    pub in_progress: u64,
    /// Seconds items have been pending with nothing in progress and nothing completing.
    pub idle_for: Option<f64>,
    /// Seconds ready items (generation C) have waited with nothing in progress.
    pub unclaimed_for: Option<f64>,
}

fn numbers(pairs: &[(&'static str, f64)]) -> BTreeMap<&'static str, f64> {
    pairs.iter().copied().collect()
}

/// `count` and `noun`, plural unless 1: `1 work unit`, `3 items`.
fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn in_session(session: Option<&String>) -> String {
    match session {
        Some(name) if !name.is_empty() => format!(" (session \"{name}\")"),
        _ => String::new(),
    }
}

/// Every rule applied to one workspace with a fresh status: its findings (worst first, never
/// empty) and the rules it could not judge.
pub fn judge(
    totals: &Totals,
    seen: &Seen,
    deriver: &DeriverSeen,
    criteria: &Criteria,
    now: f64,
) -> (Vec<Finding>, Vec<NotJudged>) {
    let Thresholds {
        idle_window,
        not_processing_after,
        stuck_after,
        backlog_after,
    } = criteria.thresholds;
    let (idle_window, not_processing_after, stuck_after, backlog_after) = (
        idle_window.as_secs_f64(),
        not_processing_after.as_secs_f64(),
        stuck_after.as_secs_f64(),
        backlog_after.as_secs_f64(),
    );
    let units = totals.units.as_ref();
    let look = Look {
        totals,
        seen,
        deriver,
        criteria,
        now,
        split: totals.ready.is_some(),
        ready: totals.ready_items(),
        units,
        oldest_ready_age: units
            .and_then(|units| units.oldest_ready)
            .map(|timestamp| (now - timestamp).max(0.0)),
        idle_window,
        not_processing_after,
        stuck_after,
        backlog_after,
    };
    let mut findings = Vec::new();
    let mut not_judged = Vec::new();
    rule_deriver_idle(&look, &mut findings, &mut not_judged);
    let idle = findings.iter().any(|f| f.kind == Kind::DeriverIdle);
    rule_stuck_in_progress(&look, &mut findings, &mut not_judged);
    rule_overdue(&look, &mut findings, &mut not_judged);
    rule_backlog(&look, idle, &mut findings);
    rule_waiting_for_tokens(&look, &mut findings, &mut not_judged);
    if findings.is_empty() {
        findings.push(ok_finding(&look));
    }
    findings.sort_by_key(|finding| finding.kind);
    (findings, not_judged)
}

/// One workspace as the rules look at it: its numbers, its history, the criteria (thresholds
/// in seconds) and the derived values every rule needs.
#[derive(Clone, Copy)]
struct Look<'a> {
    totals: &'a Totals,
    seen: &'a Seen,
    deriver: &'a DeriverSeen,
    criteria: &'a Criteria,
    now: f64,
    /// The ready/stalled split is known (generation C).
    split: bool,
    /// Ready items ([`Totals::ready_items`]).
    ready: u64,
    units: Option<&'a Units>,
    /// Age of the oldest ready item, when the walk knows it.
    oldest_ready_age: Option<f64>,
    idle_window: f64,
    not_processing_after: f64,
    stuck_after: f64,
    backlog_after: f64,
}

impl Look<'_> {
    /// Seconds since `timestamp` (never negative).
    fn age(&self, timestamp: f64) -> f64 {
        (self.now - timestamp).max(0.0)
    }
}

/// The rule of `deriver_idle` (and, without the split, the `unknown` it cannot rule out).
fn rule_deriver_idle(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    let Look {
        totals,
        deriver,
        split,
        ready,
        oldest_ready_age,
        idle_window,
        not_processing_after,
        ..
    } = *look;
    if totals.pending > 0
        && let Some(idle_for) = deriver.idle_for.filter(|idle_for| *idle_for >= idle_window)
    {
        findings.push(Finding {
            kind: Kind::DeriverIdle,
            reason: format!(
                "{} items pending, and for {} nothing was in progress and no item completed in \
                 any workspace: the deriver is down or wedged",
                totals.pending,
                in_words(idle_for)
            ),
            basis: Basis::Window,
            numbers: numbers(&[
                ("pending_items", totals.pending as f64),
                ("idle_seconds", idle_for),
                ("idle_window_seconds", idle_window),
            ]),
        });
    } else if split
        && ready > 0
        && let Some(unclaimed_for) = deriver
            .unclaimed_for
            .filter(|unclaimed_for| *unclaimed_for >= not_processing_after)
    {
        findings.push(Finding {
            kind: Kind::DeriverIdle,
            reason: format!(
                "{ready} ready items unclaimed, and nothing in progress in any workspace for {}: \
                 the deriver is down or wedged",
                in_words(unclaimed_for)
            ),
            basis: Basis::Window,
            numbers: numbers(&[
                ("ready_items", ready as f64),
                ("unclaimed_seconds", unclaimed_for),
                ("not_processing_after_seconds", not_processing_after),
            ]),
        });
    } else if split
        && ready > 0
        && deriver.in_progress == 0
        && deriver.covered < not_processing_after
        && let Some(oldest) = oldest_ready_age.filter(|oldest| *oldest >= not_processing_after)
    {
        findings.push(Finding {
            kind: Kind::DeriverIdle,
            reason: format!(
                "{ready} ready items unclaimed, the oldest for {}, and nothing in progress in any \
                 workspace: the deriver is down or wedged (one look: ready work older than {})",
                in_words(oldest),
                in_words(not_processing_after)
            ),
            basis: Basis::Instant,
            numbers: numbers(&[
                ("ready_items", ready as f64),
                ("oldest_ready_age_seconds", oldest),
                ("not_processing_after_seconds", not_processing_after),
            ]),
        });
    } else if !split && totals.pending > 0 && deriver.in_progress == 0 {
        if deriver.covered < idle_window {
            findings.push(Finding {
                kind: Kind::Unknown,
                reason: format!(
                    "{} items pending and nothing in progress; without the ready/stalled split \
                     (API generation A/B) one look cannot tell a stopped deriver from work \
                     waiting for tokens: it takes {} of history ({} so far)",
                    totals.pending,
                    in_words(idle_window),
                    in_words(deriver.covered)
                ),
                basis: Basis::Instant,
                numbers: numbers(&[
                    ("pending_items", totals.pending as f64),
                    ("history_seconds", deriver.covered),
                    ("idle_window_seconds", idle_window),
                ]),
            });
        }
    } else if !split && totals.pending > 0 && deriver.covered < idle_window {
        not_judged.push(NotJudged {
            kind: Kind::DeriverIdle,
            reason: format!(
                "without the ready/stalled split (API generation A/B) it takes {} of history ({} \
                 so far)",
                in_words(idle_window),
                in_words(deriver.covered)
            ),
        });
    }
}

/// The rule of `stuck_in_progress`.
fn rule_stuck_in_progress(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    let Look {
        totals,
        seen,
        split,
        units,
        stuck_after,
        ..
    } = *look;
    let age = |timestamp: f64| look.age(timestamp);
    match (units, totals.oldest_in_progress) {
        (Some(units), Some(oldest)) if totals.in_progress > 0 => {
            let same_for = seen.in_progress_same_for.unwrap_or(0.0);
            let session = in_session(units.in_progress_session.as_ref());
            if same_for >= stuck_after {
                findings.push(Finding {
                    kind: Kind::StuckInProgress,
                    reason: format!(
                        "the same oldest item has been in progress for {}{session} (queued {} \
                         ago): an LLM call or the deriver hangs on it",
                        in_words(same_for),
                        in_words(age(oldest))
                    ),
                    basis: Basis::Window,
                    numbers: numbers(&[
                        ("in_progress_same_seconds", same_for),
                        ("oldest_in_progress_age_seconds", age(oldest)),
                        ("stuck_after_seconds", stuck_after),
                    ]),
                });
            } else if seen.covered < stuck_after
                && same_for + 1e-6 >= seen.covered
                && age(oldest) >= stuck_after
            {
                findings.push(Finding {
                    kind: Kind::StuckInProgress,
                    reason: format!(
                        "an item queued {} ago is in progress{session}: an LLM call or the \
                         deriver may hang on it (one look: in progress and older than {})",
                        in_words(age(oldest)),
                        in_words(stuck_after)
                    ),
                    basis: Basis::Instant,
                    numbers: numbers(&[
                        ("oldest_in_progress_age_seconds", age(oldest)),
                        ("stuck_after_seconds", stuck_after),
                    ]),
                });
            }
        }
        (None, _) if totals.in_progress > 0 => not_judged.push(NotJudged {
            kind: Kind::StuckInProgress,
            reason: no_units_reason(split),
        }),
        _ => {}
    }
}

/// The rule of `overdue`.
fn rule_overdue(look: &Look<'_>, findings: &mut Vec<Finding>, not_judged: &mut Vec<NotJudged>) {
    let Look {
        totals,
        criteria,
        split,
        units,
        ..
    } = *look;
    let age = |timestamp: f64| look.age(timestamp);
    match units {
        Some(units) if units.overdue_units > 0 => {
            let oldest = units.oldest_overdue.map_or(0.0, age);
            findings.push(Finding {
                kind: Kind::Overdue,
                reason: format!(
                    "{}{} stayed below the token threshold for longer than {} (the oldest for \
                     {}){}: Honcho should have flushed them by age and has not",
                    if units.head_only { "at least " } else { "" },
                    counted(units.overdue_units, "work unit"),
                    in_words(criteria.overdue_after.as_secs_f64()),
                    in_words(oldest),
                    in_session(units.overdue_session.as_ref())
                ),
                basis: Basis::State,
                numbers: numbers(&[
                    ("overdue_units", units.overdue_units as f64),
                    ("oldest_overdue_age_seconds", oldest),
                    (
                        "overdue_after_seconds",
                        criteria.overdue_after.as_secs_f64(),
                    ),
                ]),
            });
        }
        Some(_) => {}
        None if totals.pending > 0 => not_judged.push(NotJudged {
            kind: Kind::Overdue,
            reason: no_units_reason(split),
        }),
        None => {}
    }
}

/// The rule of `backlog`, unless the deriver is idle.
fn rule_backlog(look: &Look<'_>, idle: bool, findings: &mut Vec<Finding>) {
    let Look {
        seen,
        deriver,
        ready,
        oldest_ready_age,
        backlog_after,
        ..
    } = *look;
    if ready > 0 && !idle {
        let trend = seen.ready_window_ago.map(|then| ready as f64 - then as f64);
        let trend_words = match trend {
            Some(change) => format!(
                "; {change:+} ready items over the last {}",
                in_words(backlog_after)
            ),
            None => String::new(),
        };
        if let Some(oldest) = oldest_ready_age.filter(|oldest| *oldest >= backlog_after) {
            let mut numbers = numbers(&[
                ("ready_items", ready as f64),
                ("oldest_ready_age_seconds", oldest),
                ("in_progress_items", deriver.in_progress as f64),
                ("backlog_after_seconds", backlog_after),
            ]);
            if let Some(change) = trend {
                numbers.insert("ready_items_change", change);
            }
            findings.push(Finding {
                kind: Kind::Backlog,
                reason: format!(
                    "{ready} ready items wait, the oldest for {} (over {}), while the deriver \
                     works ({} in progress){trend_words}",
                    in_words(oldest),
                    in_words(backlog_after),
                    deriver.in_progress
                ),
                basis: Basis::State,
                numbers,
            });
        } else if seen
            .ready_for
            .is_some_and(|ready_for| ready_for >= backlog_after)
            && let Some(then) = seen.ready_window_ago.filter(|then| ready >= *then)
        {
            findings.push(Finding {
                kind: Kind::Backlog,
                reason: format!(
                    "ready work never cleared in {} and did not shrink ({then} then, {ready} \
                     now) while the deriver works ({} in progress): it falls behind arrivals",
                    in_words(backlog_after),
                    deriver.in_progress
                ),
                basis: Basis::Window,
                numbers: numbers(&[
                    ("ready_items", ready as f64),
                    ("ready_items_window_ago", then as f64),
                    ("in_progress_items", deriver.in_progress as f64),
                    ("backlog_after_seconds", backlog_after),
                ]),
            });
        }
    }
}

/// The rule of `waiting_for_tokens`.
fn rule_waiting_for_tokens(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    let Look {
        totals,
        criteria,
        split,
        ready,
        units,
        ..
    } = *look;
    let age = |timestamp: f64| look.age(timestamp);
    if let (Some(stalled), Some(units)) = (totals.stalled, units)
        && stalled > 0
        && ready == 0
        && units.overdue_units == 0
    {
        let oldest = units.oldest_stalled.map_or(0.0, age);
        let claimed_in = (criteria.overdue_after.as_secs_f64() - oldest).max(0.0);
        let needed = match (units.tokens_needed, units.batch_max_tokens) {
            (Some(needed), Some(threshold)) => {
                format!(
                    "; the nearest needs {needed} more tokens to reach the {threshold}-token threshold"
                )
            }
            (Some(needed), None) => format!("; the nearest needs {needed} more tokens"),
            _ => String::new(),
        };
        let mut numbers = numbers(&[
            ("stalled_items", stalled as f64),
            ("stalled_units", units.stalled_units as f64),
            ("oldest_stalled_age_seconds", oldest),
            ("claimed_by_age_in_seconds", claimed_in),
        ]);
        if let Some(needed) = units.tokens_needed {
            numbers.insert("tokens_needed", needed as f64);
        }
        findings.push(Finding {
            kind: Kind::WaitingForTokens,
            reason: format!(
                "{} in {} wait below the token threshold, by design{needed}; the oldest will be \
                 claimed by age within {}",
                counted(stalled, "item"),
                counted(units.stalled_units, "representation unit"),
                in_words(claimed_in)
            ),
            basis: Basis::State,
            numbers,
        });
    } else if !split && totals.pending > 0 {
        not_judged.push(NotJudged {
            kind: Kind::WaitingForTokens,
            reason: "without the ready/stalled split (API generation A/B) pending items waiting \
                     for tokens look like ready work"
                .to_string(),
        });
    }
}

/// The `ok` finding, when no other rule found anything.
fn ok_finding(look: &Look<'_>) -> Finding {
    let Look {
        totals,
        ready,
        oldest_ready_age,
        ..
    } = *look;
    let reason = if totals.pending == 0 && totals.in_progress == 0 {
        "nothing pending".to_string()
    } else {
        let oldest = oldest_ready_age
            .filter(|_| ready > 0)
            .map(|oldest| format!(" (the oldest for {})", in_words(oldest)))
            .unwrap_or_default();
        match totals.ready {
            Some(ready) => format!(
                "work moving: {} in progress, {ready} ready{oldest}",
                totals.in_progress
            ),
            None => format!(
                "work moving: {} in progress, {} pending",
                totals.in_progress, totals.pending
            ),
        }
    };
    Finding {
        kind: Kind::Ok,
        reason,
        basis: Basis::State,
        numbers: numbers(&[
            ("pending_items", totals.pending as f64),
            ("in_progress_items", totals.in_progress as f64),
        ]),
    }
}

fn no_units_reason(split: bool) -> String {
    if split {
        "the work-units walk is not available (work_units.enabled off, or failing)".to_string()
    } else {
        "needs the work-units breakdown (API generation C)".to_string()
    }
}

/// Why a workspace without a fresh status cannot be judged.
fn blind_reason(workspace: &WorkspaceSnapshot, now: f64) -> String {
    let failing =
        workspace
            .health
            .iter()
            .find(|(_, health)| !health.up)
            .map(|(endpoint, health)| {
                let since = health
                    .last_success
                    .map_or("never succeeded".to_string(), |at| {
                        format!("last success {} ago", in_words(now - at))
                    });
                format!(
                    "polls of {} fail ({since}; see honcho_exporter_poll_errors_total)",
                    endpoint.as_str()
                )
            });
    failing.unwrap_or_else(|| {
        "no fresh queue status (not polled yet, or older than poll.max_staleness)".to_string()
    })
}

/// Why the exporter as a whole cannot see, if so.
fn exporter_blind(snapshot: &Snapshot, ready: bool) -> Option<String> {
    if !ready {
        return Some("the first poll has not completed yet".to_string());
    }
    if let Some(postgres) = &snapshot.exporter.postgres
        && !postgres.health.up
    {
        return Some(
            "the database pass fails (see honcho_exporter_poll_errors_total{upstream=\"postgres\"})"
                .to_string(),
        );
    }
    if let Some(discovery) = &snapshot.exporter.discovery
        && !discovery.up
    {
        return Some(
            "workspace discovery fails (see honcho_exporter_poll_errors_total{upstream=\"discovery\"})"
                .to_string(),
        );
    }
    None
}

/// Every workspace's verdicts at `now` from `snapshot` and `history` (already observed up to the
/// snapshot, or not at all for a single look). `ready`: whether a poll has completed.
pub fn evaluate(
    snapshot: &Snapshot,
    history: &History,
    criteria: &Criteria,
    ready: bool,
    now: f64,
) -> Report {
    let totals: Vec<(&String, &WorkspaceSnapshot, Option<Totals>)> = snapshot
        .workspaces
        .iter()
        .map(|(name, workspace)| (name, workspace, Totals::of(workspace)))
        .collect();
    let since = |start: Option<f64>| start.map(|start| (now - start).max(0.0));
    let deriver = DeriverSeen {
        covered: history.covered(now),
        in_progress: totals
            .iter()
            .filter_map(|(_, _, totals)| totals.as_ref())
            .map(|totals| totals.in_progress)
            .sum(),
        idle_for: since(history.deriver.idle_since),
        unclaimed_for: since(history.deriver.unclaimed_since),
    };
    let mut workspaces: Vec<WorkspaceVerdicts> = totals
        .iter()
        .map(|(name, workspace, totals)| {
            let Some(totals) = totals else {
                return WorkspaceVerdicts {
                    workspace: (*name).clone(),
                    findings: vec![Finding {
                        kind: Kind::Unknown,
                        reason: blind_reason(workspace, now),
                        basis: Basis::State,
                        numbers: BTreeMap::new(),
                    }],
                    not_judged: Vec::new(),
                };
            };
            let seen = history
                .workspaces
                .get(name.as_str())
                .map(|track| Seen {
                    covered: (now - track.first_seen).max(0.0),
                    in_progress_same_for: since(track.in_progress_oldest.map(|(_, since)| since)),
                    ready_for: since(track.ready_since),
                    ready_window_ago: track.ready_at(now, criteria.thresholds.backlog_after),
                })
                .unwrap_or_default();
            let (findings, not_judged) = judge(totals, &seen, &deriver, criteria, now);
            WorkspaceVerdicts {
                workspace: (*name).clone(),
                findings,
                not_judged,
            }
        })
        .collect();
    workspaces.sort_by(|a, b| {
        a.worst()
            .cmp(&b.worst())
            .then_with(|| a.workspace.cmp(&b.workspace))
    });
    Report {
        evaluated_at: now,
        history_seconds: deriver.covered,
        generation: snapshot.exporter.generation,
        ready,
        blind: exporter_blind(snapshot, ready),
        workspaces,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: f64 = 100_000.0;
    const MIN: f64 = 60.0;

    fn criteria() -> Criteria {
        Criteria::of(&crate::config::Settings::defaults())
    }

    /// Generation C totals: `ready`, `stalled`, `in_progress` items, with a work-units view
    /// whose ready/stalled/in-progress oldest items are that many minutes old.
    fn c(ready: u64, stalled: u64, in_progress: u64) -> Totals {
        Totals {
            pending: ready + stalled,
            ready: Some(ready),
            stalled: Some(stalled),
            in_progress,
            completed: 10,
            units: Some(Units {
                stalled_units: u64::from(stalled > 0),
                tokens_needed: (stalled > 0).then_some(40),
                batch_max_tokens: Some(1024),
                ..Units::default()
            }),
            oldest_in_progress: None,
        }
    }

    fn aged(mut totals: Totals, ready_minutes: f64, in_progress_minutes: f64) -> Totals {
        let units = totals.units.as_mut().expect("generation C");
        if totals.ready.unwrap_or(0) > 0 {
            units.oldest_ready = Some(NOW - ready_minutes * MIN);
        }
        if totals.stalled.unwrap_or(0) > 0 {
            units.oldest_stalled = Some(NOW - 5.0 * MIN);
        }
        if totals.in_progress > 0 {
            totals.oldest_in_progress = Some(NOW - in_progress_minutes * MIN);
            units.in_progress_session = Some("chat <1>".to_string());
        }
        totals
    }

    fn overdue(mut totals: Totals, units: u64) -> Totals {
        let view = totals.units.as_mut().expect("generation C");
        view.overdue_units = units;
        view.oldest_overdue = Some(NOW - 45.0 * MIN);
        totals
    }

    /// Generation A/B totals: no split, no work units.
    fn ab(pending: u64, in_progress: u64) -> Totals {
        Totals {
            pending,
            ready: None,
            stalled: None,
            in_progress,
            completed: 10,
            units: None,
            oldest_in_progress: None,
        }
    }

    fn watched(minutes: f64) -> Seen {
        Seen {
            covered: minutes * MIN,
            ..Seen::default()
        }
    }

    fn deriver(covered_minutes: f64, in_progress: u64) -> DeriverSeen {
        DeriverSeen {
            covered: covered_minutes * MIN,
            in_progress,
            ..DeriverSeen::default()
        }
    }

    struct Case {
        behaviour: &'static str,
        totals: Totals,
        seen: Seen,
        deriver: DeriverSeen,
        expected: &'static [(Kind, Basis)],
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                behaviour: "an empty queue is ok",
                totals: c(0, 0, 0),
                seen: watched(0.0),
                deriver: deriver(0.0, 0),
                expected: &[(Kind::Ok, Basis::State)],
            },
            Case {
                behaviour: "young ready work with the deriver working is ok",
                totals: aged(c(5, 0, 2), 3.0, 1.0),
                seen: watched(0.0),
                deriver: deriver(0.0, 2),
                expected: &[(Kind::Ok, Basis::State)],
            },
            Case {
                behaviour: "only stalled units, none overdue, are waiting for tokens",
                totals: aged(c(0, 7, 0), 0.0, 0.0),
                seen: watched(0.0),
                deriver: deriver(0.0, 0),
                expected: &[(Kind::WaitingForTokens, Basis::State)],
            },
            Case {
                behaviour: "overdue units are overdue, not waiting for tokens",
                totals: overdue(aged(c(0, 7, 0), 0.0, 0.0), 2),
                seen: watched(0.0),
                deriver: deriver(0.0, 0),
                expected: &[(Kind::Overdue, Basis::State)],
            },
            Case {
                behaviour: "in one look, ready work older than not_processing_after with nothing in progress anywhere is deriver_idle",
                totals: aged(c(5, 0, 0), 11.0, 0.0),
                seen: watched(0.0),
                deriver: deriver(0.0, 0),
                expected: &[(Kind::DeriverIdle, Basis::Instant)],
            },
            Case {
                behaviour: "in one look, ready work younger than not_processing_after is ok",
                totals: aged(c(5, 0, 0), 9.0, 0.0),
                seen: watched(0.0),
                deriver: deriver(0.0, 0),
                expected: &[(Kind::Ok, Basis::State)],
            },
            Case {
                behaviour: "ready work unclaimed for not_processing_after of history is deriver_idle over the window",
                totals: aged(c(5, 0, 0), 3.0, 0.0),
                seen: watched(20.0),
                deriver: DeriverSeen {
                    unclaimed_for: Some(10.0 * MIN),
                    ..deriver(20.0, 0)
                },
                expected: &[(Kind::DeriverIdle, Basis::Window)],
            },
            Case {
                behaviour: "pending work, nothing in progress and nothing completing for idle_window is deriver_idle on any generation",
                totals: ab(9, 0),
                seen: watched(40.0),
                deriver: DeriverSeen {
                    idle_for: Some(36.0 * MIN),
                    ..deriver(40.0, 0)
                },
                expected: &[(Kind::DeriverIdle, Basis::Window)],
            },
            Case {
                behaviour: "without the split, pending work and nothing in progress in a short history is unknown",
                totals: ab(9, 0),
                seen: watched(1.0),
                deriver: deriver(1.0, 0),
                expected: &[(Kind::Unknown, Basis::Instant)],
            },
            Case {
                behaviour: "without the split, pending work while the deriver works is ok",
                totals: ab(9, 2),
                seen: watched(1.0),
                deriver: deriver(1.0, 2),
                expected: &[(Kind::Ok, Basis::State)],
            },
            Case {
                behaviour: "the deriver working in another workspace is not deriver_idle here, but old ready work is a backlog",
                totals: aged(c(5, 0, 0), 61.0, 0.0),
                seen: watched(0.0),
                deriver: deriver(0.0, 3),
                expected: &[(Kind::Backlog, Basis::State)],
            },
            Case {
                behaviour: "ready work that never cleared and did not shrink over backlog_after is a backlog",
                totals: aged(c(50, 0, 2), 20.0, 1.0),
                seen: Seen {
                    ready_for: Some(61.0 * MIN),
                    ready_window_ago: Some(40),
                    ..watched(61.0)
                },
                deriver: deriver(61.0, 2),
                expected: &[(Kind::Backlog, Basis::Window)],
            },
            Case {
                behaviour: "ready work that shrank over backlog_after is not a backlog",
                totals: aged(c(30, 0, 2), 20.0, 1.0),
                seen: Seen {
                    ready_for: Some(61.0 * MIN),
                    ready_window_ago: Some(40),
                    ..watched(61.0)
                },
                deriver: deriver(61.0, 2),
                expected: &[(Kind::Ok, Basis::State)],
            },
            Case {
                behaviour: "the same oldest item in progress for stuck_after is stuck_in_progress over the window",
                totals: aged(c(0, 0, 1), 0.0, 80.0),
                seen: Seen {
                    in_progress_same_for: Some(31.0 * MIN),
                    ..watched(40.0)
                },
                deriver: deriver(40.0, 1),
                expected: &[(Kind::StuckInProgress, Basis::Window)],
            },
            Case {
                behaviour: "in one look, an in-progress item older than stuck_after is stuck_in_progress",
                totals: aged(c(0, 0, 1), 0.0, 31.0),
                seen: watched(0.0),
                deriver: deriver(0.0, 1),
                expected: &[(Kind::StuckInProgress, Basis::Instant)],
            },
            Case {
                behaviour: "an old in-progress item that changed within a full window is a catch-up, not stuck",
                totals: aged(c(0, 0, 1), 0.0, 80.0),
                seen: Seen {
                    in_progress_same_for: Some(2.0 * MIN),
                    ..watched(40.0)
                },
                deriver: deriver(40.0, 1),
                expected: &[(Kind::Ok, Basis::State)],
            },
            Case {
                behaviour: "several verdicts at once lead with the worst",
                totals: overdue(aged(c(5, 3, 0), 70.0, 0.0), 1),
                seen: watched(0.0),
                deriver: deriver(0.0, 0),
                expected: &[
                    (Kind::DeriverIdle, Basis::Instant),
                    (Kind::Overdue, Basis::State),
                ],
            },
        ]
    }

    #[test]
    fn every_rule_gives_its_verdict() {
        let criteria = criteria();
        for case in cases() {
            let (findings, _) = judge(&case.totals, &case.seen, &case.deriver, &criteria, NOW);
            let got: Vec<(Kind, Basis)> = findings.iter().map(|f| (f.kind, f.basis)).collect();
            assert_eq!(got, case.expected, "{}: {findings:#?}", case.behaviour);
            assert!(
                findings.iter().all(|finding| !finding.reason.is_empty()),
                "{}",
                case.behaviour
            );
        }
    }

    #[test]
    fn without_the_split_the_rules_that_need_it_say_they_were_not_judged() {
        let (_, not_judged) = judge(&ab(9, 2), &watched(1.0), &deriver(1.0, 2), &criteria(), NOW);
        let kinds: Vec<Kind> = not_judged.iter().map(|item| item.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::DeriverIdle,
                Kind::StuckInProgress,
                Kind::Overdue,
                Kind::WaitingForTokens
            ]
        );
        assert!(
            not_judged[2].reason.contains("generation C"),
            "{not_judged:?}"
        );
    }

    #[test]
    fn waiting_for_tokens_says_how_many_tokens_and_when_age_claims_it() {
        let (findings, _) = judge(
            &aged(c(0, 7, 0), 0.0, 0.0),
            &watched(0.0),
            &deriver(0.0, 0),
            &criteria(),
            NOW,
        );
        let reason = &findings[0].reason;
        assert!(reason.contains("needs 40 more tokens"), "{reason}");
        assert!(reason.contains("1024-token threshold"), "{reason}");
        // Overdue after 30 min + 15 s, the oldest is 5 min old.
        assert!(reason.contains("within 25 min"), "{reason}");
    }

    #[test]
    fn the_stuck_reason_names_the_session() {
        let (findings, _) = judge(
            &aged(c(0, 0, 1), 0.0, 31.0),
            &watched(0.0),
            &deriver(0.0, 1),
            &criteria(),
            NOW,
        );
        assert!(
            findings[0].reason.contains("session \"chat <1>\""),
            "{findings:?}"
        );
    }

    #[test]
    fn a_workspace_without_status_is_unknown_with_the_failing_endpoint() {
        let mut snapshot = Snapshot::default();
        let mut workspace = WorkspaceSnapshot::default();
        workspace.health.insert(
            crate::honcho::Endpoint::Status,
            crate::snapshot::EndpointHealth {
                up: false,
                last_success: Some(NOW - 120.0),
            },
        );
        snapshot.workspaces.insert("w".to_string(), workspace);
        let report = evaluate(
            &snapshot,
            &History::new(Duration::from_secs(60)),
            &criteria(),
            true,
            NOW,
        );
        let finding = &report.workspaces[0].findings[0];
        assert_eq!(finding.kind, Kind::Unknown);
        assert!(
            finding
                .reason
                .contains("polls of status fail (last success 2 min ago"),
            "{}",
            finding.reason
        );
    }

    #[test]
    fn workspaces_are_ordered_worst_first_then_by_name() {
        let mut snapshot = Snapshot::default();
        for name in ["b-unknown", "a-unknown"] {
            snapshot
                .workspaces
                .insert(name.to_string(), WorkspaceSnapshot::default());
        }
        snapshot.workspaces.insert(
            "0-ok".to_string(),
            WorkspaceSnapshot {
                status: Some(crate::snapshot::StatusSummary {
                    counts: crate::honcho::types::ItemCounts::default(),
                    sessions: Vec::new(),
                    capped_sessions: 0,
                }),
                ..WorkspaceSnapshot::default()
            },
        );
        let report = evaluate(
            &snapshot,
            &History::new(Duration::from_secs(60)),
            &criteria(),
            true,
            NOW,
        );
        let order: Vec<&str> = report
            .workspaces
            .iter()
            .map(|workspace| workspace.workspace.as_str())
            .collect();
        assert_eq!(order, ["a-unknown", "b-unknown", "0-ok"]);
        assert_eq!(report.worst(), Kind::Unknown);
        assert!(!report.is_fine());
    }

    #[test]
    fn before_the_first_poll_the_exporter_is_blind() {
        let report = evaluate(
            &Snapshot::default(),
            &History::new(Duration::from_secs(60)),
            &criteria(),
            false,
            NOW,
        );
        assert_eq!(report.worst(), Kind::Unknown);
        assert!(report.blind.is_some());
    }
}
