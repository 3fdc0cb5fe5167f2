//! The verdict rules: what one workspace's totals (and the history of them) say, in words.
//! [`judge`] applies every rule to one workspace given plain numbers, so each rule is tested
//! from a table; [`evaluate`] (`report.rs`) extracts those numbers from a snapshot and the
//! history and builds the [`Report`](super::Report). Pure: no I/O, no clock.
//!
//! Owns the numbers the rules read ([`Totals`], [`Seen`], [`DeriverSeen`]), one workspace as
//! the rules look at it (`Look`), the order the rules run in and the `ok` that remains when none
//! finds anything. Each rule is a room of its own and must not judge another's verdict.
//!
//! Rule by rule (thresholds in [`Thresholds`]; the alert each mirrors in brackets):
//! - `deriver_idle` (`idle.rs`): pending items, nothing in progress in any workspace and
//!   `completed` unchanged for `idle_window` [`HonchoDeriverIdle`], or (generation C) ready items
//!   unclaimed with nothing in progress for `not_processing_after` [`HonchoDeriverNotProcessing`];
//!   in one look (generation C): the oldest ready item older than `not_processing_after` with
//!   nothing in progress anywhere.
//! - `stuck_in_progress` (`stuck.rs`): the same oldest in-progress item for `stuck_after`
//!   [`HonchoWorkUnitInProgressTooLong`]; in one look: that item older than `stuck_after`.
//! - `overdue` (`overdue.rs`): overdue work units (stalled past `classify.overdue_after`)
//!   [`HonchoWorkUnitsOverdue`].
//! - `backlog` (`backlog.rs`): ready work whose oldest item is older than `backlog_after`
//!   [`HonchoOldestPendingItemTooOld`], or ready work that never cleared and did not shrink over
//!   `backlog_after` [`HonchoBacklogLagging`], while the deriver is not idle.
//! - `waiting_for_tokens` (`tokens.rs`): only stalled (sub-threshold) items pending, none
//!   overdue: by design.
//! - `unknown` (`unknown.rs`): no fresh queue status; or (`idle.rs`), on generations A/B, pending
//!   work with nothing in progress while the history is shorter than `idle_window` (without the
//!   split, one look cannot tell a stopped deriver from work waiting for tokens).
//! - `ok`: none of the above.

use std::collections::BTreeMap;

use super::{Basis, Criteria, Finding, Kind, NotJudged, Thresholds, in_words};
use crate::classify::{TaskType, UnitState};
use crate::snapshot::WorkspaceSnapshot;

mod backlog;
mod idle;
mod overdue;
mod report;
mod stuck;
mod tokens;
mod unknown;

pub use report::evaluate;

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
    idle::rule_deriver_idle(&look, &mut findings, &mut not_judged);
    let idle = findings.iter().any(|f| f.kind == Kind::DeriverIdle);
    stuck::rule_stuck_in_progress(&look, &mut findings, &mut not_judged);
    overdue::rule_overdue(&look, &mut findings, &mut not_judged);
    backlog::rule_backlog(&look, idle, &mut findings);
    tokens::rule_waiting_for_tokens(&look, &mut findings, &mut not_judged);
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

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

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
}
