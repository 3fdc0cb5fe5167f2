//! What is computed at scrape time: ages. [`age_families`] carries the Unix times ages are
//! measured from; [`age`] turns one into an age at `now`. Pure, no clock: callers pass `now`.

use crate::classify::{TaskType, UnitState};
use crate::metric::{MetricFamily, MetricType};
use crate::snapshot::{Snapshot, WorkspaceSnapshot};

use super::work_units::detail_labels;
use super::{Part, labels};

/// What is computed at scrape time: ages. Each sample's value is the Unix time its age is
/// measured from; a scrape at `now` writes [`age`]`(now, value)` instead.
pub fn age_families(part: &Part<'_>) -> Vec<MetricFamily> {
    let mut oldest_age = MetricFamily::new(
        "honcho_queue_oldest_item_age_seconds",
        "Age at scrape time of the oldest pending item among the work units in each task type and state",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut unit_age = MetricFamily::new(
        "honcho_queue_work_unit_age_seconds",
        "Age at scrape time of the oldest pending item of this problem work unit (top problem units: overdue, stalled, in progress; oldest first)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut walk_age = MetricFamily::new(
        "honcho_exporter_walk_age_seconds",
        "Age at scrape time of the last complete work-units walk of the workspace, whose per-state counts are served (a large backlog is walked less often, see poll.duty_factor)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    for &(workspace, data) in &part.workspaces {
        add_ages(workspace, data, &mut oldest_age, &mut unit_age);
        if let Some((finished_at, _)) = data.last_complete_walk {
            walk_age.push(labels(&[("workspace", workspace)]), finished_at);
        }
    }
    vec![oldest_age, unit_age, walk_age]
}

/// [`age_families`] of a whole snapshot with the ages at `now` filled in.
pub fn scrape_families(snapshot: &Snapshot, now: f64) -> Vec<MetricFamily> {
    let mut families = age_families(&Part::whole(snapshot));
    for family in &mut families {
        for sample in &mut family.samples {
            sample.value = age(now, sample.value);
        }
    }
    families
}

fn add_ages(
    workspace: &str,
    data: &WorkspaceSnapshot,
    oldest_age: &mut MetricFamily,
    unit_age: &mut MetricFamily,
) {
    let Some(aggregate) = &data.work_units else {
        return;
    };
    for task_type in TaskType::ALL {
        for state in UnitState::ALL {
            if let Some(timestamp) = aggregate.cell(task_type, state).oldest_item_timestamp {
                oldest_age.push(
                    labels(&[
                        ("workspace", workspace),
                        ("task_type", task_type.as_str()),
                        ("state", state.as_str()),
                    ]),
                    timestamp,
                );
            }
        }
    }
    for unit in &aggregate.detail {
        unit_age.push(detail_labels(workspace, unit), unit.oldest_item_timestamp);
    }
}

/// Seconds from `timestamp` to `now`, never negative (clock skew), to the millisecond.
pub fn age(now: f64, timestamp: f64) -> f64 {
    age_millis(now, timestamp) / 1000.0
}

/// [`age`] in whole milliseconds (an integral f64).
pub fn age_millis(now: f64, timestamp: f64) -> f64 {
    ((now - timestamp).max(0.0) * 1000.0).round()
}
