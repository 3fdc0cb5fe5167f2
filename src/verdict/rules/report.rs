//! [`evaluate`]: the [`Report`] of a snapshot. Extracts each workspace's [`Totals`], what the
//! [`History`] has seen of it and of the deriver as a whole, judges each workspace
//! ([`judge`](super::judge)) and orders them worst first. Pure: no I/O, no clock (the caller
//! passes `now`); the rules themselves live in their own files.

use std::collections::BTreeMap;

use super::unknown::{blind_reason, exporter_blind};
use super::{DeriverSeen, Seen, Totals, judge};
use crate::snapshot::{Snapshot, WorkspaceSnapshot};
use crate::verdict::{Basis, Criteria, Finding, History, Kind, Report, WorkspaceVerdicts};

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
    use crate::verdict::rules::fixtures::*;

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
}
