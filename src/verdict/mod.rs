//! Verdicts: *why* work is or is not moving, in words, per workspace. From a [`Snapshot`] and a
//! short, bounded [`History`] of each workspace's totals, [`evaluate`] gives every workspace one
//! or more [`Finding`]s (worst first), each with a one-line reason and the numbers behind it,
//! plus what could not be judged and why (API generations A and B have no ready/stalled split
//! and no work-unit ages).
//!
//! Owns the rules ([`rules`]), the history they read ([`history`]), the `/status` JSON schema
//! ([`status`]), the `doctor` text table ([`table`]), the landing page's verdict section
//! ([`page`]) and the `honcho_queue_verdict` family ([`metric`]). Pure: no I/O, no clock (callers
//! pass `now`), no knowledge of how the snapshot was polled. The publication observes the history
//! and carries the evaluated [`Report`], so `/`, `/status`, `doctor` and the metric all show the
//! same verdicts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub mod history;
pub mod metric;
pub mod page;
pub mod rules;
pub mod status;
pub mod table;

pub use history::History;
pub use rules::evaluate;

pub use crate::config::VerdictThresholds as Thresholds;

/// Everything the rules are judged against: the verdict thresholds and the classification's
/// overdue age (which already decided what is `overdue`; the rules only name it in words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Criteria {
    /// The `verdict.*` thresholds.
    pub thresholds: Thresholds,
    /// `classify.overdue_after`.
    pub overdue_after: Duration,
}

impl Criteria {
    /// The criteria of `settings`.
    pub fn of(settings: &crate::config::Settings) -> Self {
        Criteria {
            thresholds: settings.verdict,
            overdue_after: settings.classify.overdue_after,
        }
    }
}

/// A verdict. The order of the variants is the order of severity, worst first: a workspace's
/// findings and the page's rows are sorted by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Ready work is not claimed, nothing is in progress, nothing completes: the deriver is down
    /// or wedged.
    DeriverIdle,
    /// The same unit has stayed in progress too long: a hung LLM call or deriver.
    StuckInProgress,
    /// Units stalled past Honcho's batch max age: Honcho should have flushed them (a fault).
    Overdue,
    /// The exporter cannot see this workspace (upstream down, stale data).
    Unknown,
    /// Ready work waits while the deriver works: it falls behind.
    Backlog,
    /// Only sub-threshold representation units wait, none overdue: by design.
    WaitingForTokens,
    /// Nothing pending, or work moving.
    Ok,
}

impl Kind {
    /// Every verdict, worst first.
    pub const ALL: [Kind; 7] = [
        Kind::DeriverIdle,
        Kind::StuckInProgress,
        Kind::Overdue,
        Kind::Unknown,
        Kind::Backlog,
        Kind::WaitingForTokens,
        Kind::Ok,
    ];

    /// The `verdict` label value and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeriverIdle => "deriver_idle",
            Kind::StuckInProgress => "stuck_in_progress",
            Kind::Overdue => "overdue",
            Kind::Unknown => "unknown",
            Kind::Backlog => "backlog",
            Kind::WaitingForTokens => "waiting_for_tokens",
            Kind::Ok => "ok",
        }
    }

    /// Whether nothing needs doing (`doctor` exits 0 when every workspace's verdicts are fine).
    pub fn is_fine(self) -> bool {
        matches!(self, Kind::Ok | Kind::WaitingForTokens)
    }
}

/// How a finding was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// From the current state alone (counts and ages of one poll); no window is involved.
    State,
    /// Over the rule's window of history, like the alert it matches.
    Window,
    /// A one-look stand-in for a windowed rule (the history is shorter than the window, as in a
    /// single `doctor` run): an age in one poll instead of a window of polls.
    Instant,
}

impl Basis {
    /// The JSON and table name.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::State => "state",
            Basis::Window => "window",
            Basis::Instant => "instant",
        }
    }
}

/// One verdict of one workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The verdict.
    #[serde(rename = "verdict")]
    pub kind: Kind,
    /// Why, in one line of words.
    pub reason: String,
    /// How it was judged.
    pub basis: Basis,
    /// The numbers behind it (items, ages in seconds, thresholds in seconds), by name.
    pub numbers: BTreeMap<&'static str, f64>,
}

/// A rule that could not be applied to a workspace, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotJudged {
    /// The verdict that could not be judged.
    #[serde(rename = "verdict")]
    pub kind: Kind,
    /// Why not (a missing feature, not enough history).
    pub reason: String,
}

/// The verdicts of one workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceVerdicts {
    /// The workspace name (raw: escaping is the renderer's job).
    pub workspace: String,
    /// At least one finding, worst first.
    #[serde(rename = "verdicts")]
    pub findings: Vec<Finding>,
    /// Rules that could not be judged here.
    pub not_judged: Vec<NotJudged>,
}

impl WorkspaceVerdicts {
    /// The leading (worst) verdict.
    pub fn worst(&self) -> Kind {
        self.findings
            .first()
            .map_or(Kind::Unknown, |finding| finding.kind)
    }
}

/// Every workspace's verdicts at one time: what `/`, `/status`, `doctor` and the metric show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Unix seconds of the evaluation.
    pub evaluated_at: f64,
    /// Seconds of history behind the windowed rules (0 for a single look).
    pub history_seconds: f64,
    /// The API generation, when known (`None` for the database source or before detection).
    pub generation: Option<crate::snapshot::Generation>,
    /// Whether the exporter has completed a poll.
    pub ready: bool,
    /// Why the exporter as a whole cannot see (discovery or the database failing, no poll yet),
    /// if so.
    pub blind: Option<String>,
    /// Per workspace, worst first, then by name.
    pub workspaces: Vec<WorkspaceVerdicts>,
}

impl Report {
    /// The worst verdict of all (`unknown` when the exporter is blind, `ok` with no workspace).
    pub fn worst(&self) -> Kind {
        let worst = self
            .workspaces
            .iter()
            .map(WorkspaceVerdicts::worst)
            .min()
            .unwrap_or(Kind::Ok);
        if self.blind.is_some() {
            worst.min(Kind::Unknown)
        } else {
            worst
        }
    }

    /// Whether nothing needs doing: no blindness and every workspace fine.
    pub fn is_fine(&self) -> bool {
        self.blind.is_none()
            && self
                .workspaces
                .iter()
                .all(|workspace| workspace.findings.iter().all(|f| f.kind.is_fine()))
    }
}

/// A duration in words for a reason: `45 s`, `12 min`, `1 h 5 min`, `2 d 3 h`.
pub fn in_words(seconds: f64) -> String {
    let total = if seconds.is_finite() {
        seconds.max(0.0).round() as u64
    } else {
        0
    };
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, _) => format!("{minutes} min"),
        (0, _, 0) => format!("{hours} h"),
        (0, _, _) => format!("{hours} h {minutes} min"),
        (_, 0, _) => format!("{days} d"),
        _ => format!("{days} d {hours} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_ordered_worst_first() {
        let mut sorted = Kind::ALL;
        sorted.sort();
        assert_eq!(sorted, Kind::ALL);
    }

    #[test]
    fn only_ok_and_waiting_for_tokens_are_fine() {
        let fine: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|kind| kind.is_fine())
            .collect();
        assert_eq!(fine, [Kind::WaitingForTokens, Kind::Ok]);
    }

    #[test]
    fn durations_read_as_words() {
        for (seconds, words) in [
            (0.4, "0 s"),
            (45.0, "45 s"),
            (720.0, "12 min"),
            (3600.0, "1 h"),
            (3900.0, "1 h 5 min"),
            (2.0 * 86_400.0 + 3.0 * 3600.0, "2 d 3 h"),
            (-5.0, "0 s"),
        ] {
            assert_eq!(in_words(seconds), words, "{seconds}");
        }
    }
}
