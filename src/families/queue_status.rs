//! The queue/status families: items by state per workspace, per session and per configured
//! scope, and the session id → name map. Pure: reads the snapshot part it is given, nothing else.

use crate::honcho::types::ItemCounts;
use crate::metric::{MetricFamily, MetricType};

use super::{Part, labels};

/// The queue/status families, in output order.
pub(super) fn queue_status_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    families.extend([
        items(part),
        session_items(part),
        session_info(part),
        scope_items(part),
    ]);
}

/// The item states of an [`ItemCounts`]: with the split when known, else plain `pending`.
fn item_states(counts: &ItemCounts) -> Vec<(&'static str, u64)> {
    let mut states = vec![
        ("completed", counts.completed),
        ("in_progress", counts.in_progress),
    ];
    match (counts.pending_ready, counts.pending_stalled) {
        (Some(ready), Some(stalled)) => {
            states.push(("pending_ready", ready));
            states.push(("pending_stalled", stalled));
        }
        _ => states.push(("pending", counts.pending)),
    }
    states
}

fn items(part: &Part<'_>) -> MetricFamily {
    let mut items = MetricFamily::new(
        "honcho_queue_items",
        "Queue items (rows) by state, from queue/status; pending splits into pending_ready and pending_stalled where the server reports the split. Polled every poll interval, not at scrape",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        let Some(status) = &data.status else {
            continue;
        };
        for (state, value) in item_states(&status.counts) {
            items.push(
                labels(&[("workspace", workspace), ("state", state)]),
                value as f64,
            );
        }
    }
    items
}

fn session_items(part: &Part<'_>) -> MetricFamily {
    let mut session_items = MetricFamily::new(
        "honcho_queue_session_items",
        "Queue items by session (internal id) and state: the top sessions by pending items, the rest summed under __other__, items of no session (dreams) under __none__",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        let Some(status) = &data.status else {
            continue;
        };
        for row in &status.sessions {
            for (state, value) in item_states(&row.counts) {
                session_items.push(
                    labels(&[
                        ("workspace", workspace),
                        ("session_id", &row.session_id),
                        ("state", state),
                    ]),
                    value as f64,
                );
            }
        }
    }
    session_items
}

fn session_info(part: &Part<'_>) -> MetricFamily {
    let mut session_info = MetricFamily::new(
        "honcho_queue_session",
        "Maps an internal session id to its name (known from the work-units walk)",
        MetricType::Info,
    );
    for &(workspace, data) in &part.workspaces {
        let Some(units) = &data.work_units else {
            continue;
        };
        for (session_id, session_name) in &units.session_names {
            session_info.push(
                labels(&[
                    ("workspace", workspace),
                    ("session_id", session_id),
                    ("session_name", session_name),
                ]),
                1.0,
            );
        }
    }
    session_info
}

fn scope_items(part: &Part<'_>) -> MetricFamily {
    let mut scope_items = MetricFamily::new(
        "honcho_queue_scope_items",
        "Queue items by state for each configured scope (a queue/status poll filtered by observer, sender and/or session name)",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        for (scope, counts) in &data.scopes {
            for (state, value) in item_states(counts) {
                scope_items.push(
                    labels(&[("workspace", workspace), ("scope", scope), ("state", state)]),
                    value as f64,
                );
            }
        }
    }
    scope_items
}
