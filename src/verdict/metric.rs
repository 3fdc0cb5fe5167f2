//! The `honcho_queue_verdict{workspace,verdict}` family: 1 for each verdict active for a
//! workspace (no sample for the others), so a Grafana state timeline shows *why* over time.
//! Built from the publication's [`Report`], not from a snapshot, so it always agrees with `/`
//! and `/status`. Pure.

use super::Report;
use crate::metric::{MetricFamily, MetricType};

/// The family name.
pub const VERDICT_FAMILY: &str = "honcho_queue_verdict";

/// The verdict family of `report`: workspaces in the report's order (worst first), each
/// workspace's verdicts worst first.
pub fn verdict_family(report: &Report) -> MetricFamily {
    let mut family = MetricFamily::new(
        VERDICT_FAMILY,
        "1 for each verdict active for a workspace (see /status for the reasons)",
        MetricType::Gauge,
    );
    for workspace in &report.workspaces {
        for finding in &workspace.findings {
            family.push(
                vec![
                    ("workspace", workspace.workspace.clone()),
                    ("verdict", finding.kind.as_str().to_string()),
                ],
                1.0,
            );
        }
    }
    family
}
