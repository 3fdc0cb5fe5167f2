//! [`summarize_status`]: one queue/status body → workspace counts plus capped per-session rows
//! (top N by pending + `__other__` + `__none__`), so that per state the session rows always sum
//! to the workspace counts. Pure.

use crate::honcho::types::{ItemCounts, QueueStatus};

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
