//! Test fixtures shared by the rules' unit tests: totals of generation C (ready, stalled, in
//! progress, aged in minutes) and of generations A/B, and the history around them. Compiled for
//! tests only; no rule is judged here.

use super::{DeriverSeen, Seen, Totals, Units};
use crate::verdict::Criteria;

pub(super) const NOW: f64 = 100_000.0;
pub(super) const MIN: f64 = 60.0;

pub(super) fn criteria() -> Criteria {
    Criteria::of(&crate::config::Settings::defaults())
}

/// Generation C totals: `ready`, `stalled`, `in_progress` items, with a work-units view
/// whose ready/stalled/in-progress oldest items are that many minutes old.
pub(super) fn c(ready: u64, stalled: u64, in_progress: u64) -> Totals {
    Totals {
        pending: ready + stalled,
        ready: Some(ready),
        stalled: Some(stalled),
        in_progress,
        completed: 10,
        units: Some(Units {
            stalled_units: u64::from(stalled > 0),
            tokens_needed: (stalled > 0).then_some(40),
            batch_max_tokens: Some(1024),
            ..Units::default()
        }),
        oldest_in_progress: None,
    }
}

pub(super) fn aged(mut totals: Totals, ready_minutes: f64, in_progress_minutes: f64) -> Totals {
    let units = totals.units.as_mut().expect("generation C");
    if totals.ready.unwrap_or(0) > 0 {
        units.oldest_ready = Some(NOW - ready_minutes * MIN);
    }
    if totals.stalled.unwrap_or(0) > 0 {
        units.oldest_stalled = Some(NOW - 5.0 * MIN);
    }
    if totals.in_progress > 0 {
        totals.oldest_in_progress = Some(NOW - in_progress_minutes * MIN);
        units.in_progress_session = Some("chat <1>".to_string());
    }
    totals
}

pub(super) fn overdue(mut totals: Totals, units: u64) -> Totals {
    let view = totals.units.as_mut().expect("generation C");
    view.overdue_units = units;
    view.oldest_overdue = Some(NOW - 45.0 * MIN);
    totals
}

/// Generation A/B totals: no split, no work units.
pub(super) fn ab(pending: u64, in_progress: u64) -> Totals {
    Totals {
        pending,
        ready: None,
        stalled: None,
        in_progress,
        completed: 10,
        units: None,
        oldest_in_progress: None,
    }
}

pub(super) fn watched(minutes: f64) -> Seen {
    Seen {
        covered: minutes * MIN,
        ..Seen::default()
    }
}

pub(super) fn deriver(covered_minutes: f64, in_progress: u64) -> DeriverSeen {
    DeriverSeen {
        covered: covered_minutes * MIN,
        in_progress,
        ..DeriverSeen::default()
    }
}
