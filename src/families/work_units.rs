//! The work-units families: per task type × state cells of the walk, the per-unit detail of the
//! top problem units, and the walk's own bookkeeping (truncation, listed units, duration,
//! invalid timestamps). Pure: reads the snapshot part it is given, nothing else.

use crate::classify::{TaskType, UnitState};
use crate::metric::{MetricFamily, MetricType};
use crate::snapshot::{UnitDetail, WorkUnitAggregate};

use super::{Labels, Part, labels};

/// The work-units families, in output order.
pub(super) fn work_unit_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    families.extend(CellFamilies::of(part).into_families());
    families.extend(detail_families(part));
    families.extend(walk_families(part));
}

/// The labels of one problem unit's detail series (also its age series).
pub(super) fn detail_labels(workspace: &str, unit: &UnitDetail) -> Labels {
    labels(&[
        ("workspace", workspace),
        ("task_type", unit.task_type.as_str()),
        ("state", unit.state.as_str()),
        ("session_name", &unit.session_name),
        ("observed", &unit.observed),
        ("work_unit_key", &unit.work_unit_key),
    ])
}

/// The families built from the task type × state cells of each workspace's walk.
struct CellFamilies {
    units: MetricFamily,
    items: MetricFamily,
    tokens: MetricFamily,
    oldest: MetricFamily,
    until_threshold: MetricFamily,
}

impl CellFamilies {
    fn of(part: &Part<'_>) -> Self {
        let mut families = CellFamilies::new();
        for &(workspace, data) in &part.workspaces {
            if let Some(aggregate) = &data.work_units {
                // Only the head of the walk known: ages and detail, but no per-state counts yet.
                families.add(workspace, aggregate, !data.head_only);
            }
        }
        families
    }

    fn new() -> Self {
        CellFamilies {
            units: MetricFamily::new(
                "honcho_queue_work_units",
                "Work units by task type and state (in_progress, ready, stalled, overdue = stalled past the batch max age + grace; a partition), from the work-units walk",
                MetricType::Gauge,
            ),
            items: MetricFamily::new(
                "honcho_queue_work_unit_items",
                "Pending items of the work units in each task type and state",
                MetricType::Gauge,
            ),
            tokens: MetricFamily::new(
                "honcho_queue_pending_tokens",
                "Pending tokens of the work units in each task type and state",
                MetricType::Gauge,
            ),
            oldest: MetricFamily::new(
                "honcho_queue_oldest_item_timestamp_seconds",
                "Unix time of the oldest pending item among the work units in each task type and state (absent when there are none)",
                MetricType::Gauge,
            )
            .with_unit("seconds"),
            until_threshold: MetricFamily::new(
                "honcho_queue_tokens_until_threshold",
                "Smallest number of tokens a stalled work unit still needs to reach the batch threshold (how close the nearest batch is to firing)",
                MetricType::Gauge,
            ),
        }
    }

    /// One workspace's cells; `counts` false: only the oldest timestamps are known.
    fn add(&mut self, workspace: &str, aggregate: &WorkUnitAggregate, counts: bool) {
        for task_type in TaskType::ALL {
            // `other` exists only while a unit of an unknown task type does.
            if task_type == TaskType::Other && !aggregate.has_units(TaskType::Other) {
                continue;
            }
            for state in UnitState::ALL {
                let cell = aggregate.cell(task_type, state);
                let label_set = labels(&[
                    ("workspace", workspace),
                    ("task_type", task_type.as_str()),
                    ("state", state.as_str()),
                ]);
                if counts {
                    self.units.push(label_set.clone(), cell.units as f64);
                    self.items.push(label_set.clone(), cell.items as f64);
                    self.tokens.push(label_set.clone(), cell.tokens as f64);
                }
                if let Some(timestamp) = cell.oldest_item_timestamp {
                    self.oldest.push(label_set, timestamp);
                }
            }
            if let Some(value) = aggregate.tokens_until_threshold[task_type.index()]
                && counts
            {
                self.until_threshold.push(
                    labels(&[("workspace", workspace), ("task_type", task_type.as_str())]),
                    value as f64,
                );
            }
        }
    }

    fn into_families(self) -> [MetricFamily; 5] {
        [
            self.units,
            self.items,
            self.tokens,
            self.oldest,
            self.until_threshold,
        ]
    }
}

/// The per-unit series of the top problem units.
fn detail_families(part: &Part<'_>) -> [MetricFamily; 2] {
    let mut unit_until_threshold = MetricFamily::new(
        "honcho_queue_work_unit_tokens_until_threshold",
        "Tokens this problem work unit still needs to reach the batch threshold (top problem units only)",
        MetricType::Gauge,
    );
    let mut unit_tokens = MetricFamily::new(
        "honcho_queue_work_unit_pending_tokens",
        "Pending tokens of this problem work unit (top problem units only)",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        let Some(aggregate) = &data.work_units else {
            continue;
        };
        for unit in &aggregate.detail {
            let label_set = detail_labels(workspace, unit);
            unit_until_threshold.push(label_set.clone(), unit.tokens_until_threshold as f64);
            unit_tokens.push(label_set, unit.pending_tokens as f64);
        }
    }
    [unit_until_threshold, unit_tokens]
}

/// The walk's own numbers per workspace: truncated, units listed, duration, invalid timestamps.
fn walk_families(part: &Part<'_>) -> [MetricFamily; 4] {
    let mut truncated = MetricFamily::new(
        "honcho_exporter_walk_truncated",
        "1 if the last work-units walk of the workspace stopped at the page cap, so the work-unit numbers cover only the oldest units",
        MetricType::Gauge,
    );
    let mut listed_units = MetricFamily::new(
        "honcho_queue_work_units_listed",
        "Work units Honcho lists for the workspace (the total of the work-units walk's first page), refreshed every poll interval even while a full walk takes longer",
        MetricType::Gauge,
    );
    let mut walk_duration = MetricFamily::new(
        "honcho_exporter_walk_duration_seconds",
        "Duration of the last complete work-units walk of the workspace (the next one starts no sooner than poll.duty_factor times it)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut invalid_timestamps = MetricFamily::new(
        "honcho_exporter_work_units_invalid_timestamp",
        "Work units of the last walk of the workspace whose oldest_item_at is not a timestamp: their age is unknown, so they are counted in no state",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        let workspace_label = || labels(&[("workspace", workspace)]);
        if data
            .health
            .contains_key(&crate::honcho::Endpoint::WorkUnits)
        {
            truncated.push(workspace_label(), f64::from(u8::from(data.walk_truncated)));
        }
        if let Some(listed) = data.units_listed {
            listed_units.push(workspace_label(), listed as f64);
        }
        if let Some((_, duration)) = data.last_complete_walk {
            walk_duration.push(workspace_label(), duration.as_secs_f64());
        }
        if let Some(aggregate) = &data.work_units {
            invalid_timestamps.push(workspace_label(), aggregate.invalid_timestamps as f64);
        }
    }
    [truncated, listed_units, walk_duration, invalid_timestamps]
}
