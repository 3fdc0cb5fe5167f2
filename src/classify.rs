//! Classification of one work unit into the exporter's states. Pure; no I/O, no clock (the
//! caller passes the age).
//!
//! The states partition the units: `in_progress` (claimed), `ready` (unclaimed, at or over the
//! batch threshold, or not gated), `stalled` (unclaimed representation unit below the
//! threshold), `overdue` (stalled AND its oldest item older than `overdue_after`; NOT also
//! counted as stalled). Honcho's own API still calls overdue units stalled; the deriver should
//! have age-flushed them after `DERIVER_REPRESENTATION_BATCH_MAX_AGE_SECONDS`.

use std::time::Duration;

/// The state of a work unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitState {
    /// Claimed by a deriver.
    InProgress,
    /// Waiting for a deriver, nothing holds it back.
    Ready,
    /// Waiting for more tokens (below the batch threshold).
    Stalled,
    /// Stalled for longer than the deriver's batch max age (+ grace): it should have run.
    Overdue,
}

impl UnitState {
    /// Every state, in label order.
    pub const ALL: [UnitState; 4] = [
        UnitState::InProgress,
        UnitState::Ready,
        UnitState::Stalled,
        UnitState::Overdue,
    ];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::InProgress => "in_progress",
            UnitState::Ready => "ready",
            UnitState::Stalled => "stalled",
            UnitState::Overdue => "overdue",
        }
    }

    /// Index into per-state arrays (the order of [`UnitState::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// How much of a problem a unit in this state is, for choosing the per-unit detail series:
    /// overdue first, then stalled, then in progress; ready units are not problems (`None`).
    pub fn problem_rank(self) -> Option<u8> {
        match self {
            UnitState::Overdue => Some(0),
            UnitState::Stalled => Some(1),
            UnitState::InProgress => Some(2),
            UnitState::Ready => None,
        }
    }
}

/// The deriver task type of a work unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskType {
    /// `representation`: gated by the batch token threshold.
    Representation,
    /// `summary`.
    Summary,
    /// `dream`: belongs to no session.
    Dream,
    /// Anything else a future Honcho may add (kept bounded as one label value).
    Other,
}

impl TaskType {
    /// Every task type, in label order.
    pub const ALL: [TaskType; 4] = [
        TaskType::Representation,
        TaskType::Summary,
        TaskType::Dream,
        TaskType::Other,
    ];

    /// Parses the API's `task_type`.
    pub fn parse(text: &str) -> TaskType {
        match text {
            "representation" => TaskType::Representation,
            "summary" => TaskType::Summary,
            "dream" => TaskType::Dream,
            _ => TaskType::Other,
        }
    }

    /// The `task_type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Representation => "representation",
            TaskType::Summary => "summary",
            TaskType::Dream => "dream",
            TaskType::Other => "other",
        }
    }

    /// Index into per-task-type arrays (the order of [`TaskType::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Classifies a work unit from the API's `in_progress` and `hit_threshold` and the age of its
/// oldest item.
pub fn classify(
    in_progress: bool,
    hit_threshold: bool,
    oldest_age: Duration,
    overdue_after: Duration,
) -> UnitState {
    if in_progress {
        UnitState::InProgress
    } else if hit_threshold {
        UnitState::Ready
    } else if oldest_age > overdue_after {
        UnitState::Overdue
    } else {
        UnitState::Stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVERDUE_AFTER: Duration = Duration::from_secs(1815);

    #[test]
    fn claimed_unit_is_in_progress_whatever_its_threshold_or_age() {
        assert_eq!(
            classify(true, false, Duration::from_secs(99_999), OVERDUE_AFTER),
            UnitState::InProgress
        );
    }

    #[test]
    fn unclaimed_unit_over_threshold_is_ready_even_when_old() {
        assert_eq!(
            classify(false, true, Duration::from_secs(99_999), OVERDUE_AFTER),
            UnitState::Ready
        );
    }

    #[test]
    fn unclaimed_unit_under_threshold_is_stalled_until_overdue_after() {
        assert_eq!(
            classify(false, false, OVERDUE_AFTER, OVERDUE_AFTER),
            UnitState::Stalled
        );
        assert_eq!(
            classify(
                false,
                false,
                OVERDUE_AFTER + Duration::from_millis(1),
                OVERDUE_AFTER
            ),
            UnitState::Overdue
        );
    }

    #[test]
    fn unknown_task_types_fold_into_other() {
        assert_eq!(TaskType::parse("webhook"), TaskType::Other);
        assert_eq!(TaskType::parse("dream"), TaskType::Dream);
    }
}
