//! The `unknown` verdicts that come before any rule: a workspace without a fresh queue status
//! (which endpoint fails, since when) and an exporter that cannot see at all (no poll yet,
//! the database pass or discovery failing). Pure: reads the snapshot, says why in words; the
//! generation A/B `unknown` of one look belongs to the `deriver_idle` rule.

use crate::snapshot::{Snapshot, WorkspaceSnapshot};
use crate::verdict::in_words;

/// Why a workspace without a fresh status cannot be judged.
pub(super) fn blind_reason(workspace: &WorkspaceSnapshot, now: f64) -> String {
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
pub(super) fn exporter_blind(snapshot: &Snapshot, ready: bool) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::snapshot::{Snapshot, WorkspaceSnapshot};
    use crate::verdict::rules::evaluate;
    use crate::verdict::rules::fixtures::*;
    use crate::verdict::{History, Kind};

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
