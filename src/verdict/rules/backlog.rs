//! The `backlog` rule: ready work whose oldest item is older than `backlog_after`
//! [`HonchoOldestPendingItemTooOld`], or ready work that never cleared and did not shrink over
//! `backlog_after` [`HonchoBacklogLagging`], while the deriver is not idle. Pure: reads a
//! [`Look`], pushes findings; whether the deriver is idle is the `deriver_idle` rule's to say.

use super::{Look, numbers};
use crate::verdict::{Basis, Finding, Kind, in_words};

/// The rule of `backlog`, unless the deriver is idle.
pub(super) fn rule_backlog(look: &Look<'_>, idle: bool, findings: &mut Vec<Finding>) {
    let Look {
        seen,
        deriver,
        ready,
        oldest_ready_age,
        backlog_after,
        ..
    } = *look;
    if ready > 0 && !idle {
        let trend = seen.ready_window_ago.map(|then| ready as f64 - then as f64);
        let trend_words = match trend {
            Some(change) => format!(
                "; {change:+} ready items over the last {}",
                in_words(backlog_after)
            ),
            None => String::new(),
        };
        if let Some(oldest) = oldest_ready_age.filter(|oldest| *oldest >= backlog_after) {
            let mut numbers = numbers(&[
                ("ready_items", ready as f64),
                ("oldest_ready_age_seconds", oldest),
                ("in_progress_items", deriver.in_progress as f64),
                ("backlog_after_seconds", backlog_after),
            ]);
            if let Some(change) = trend {
                numbers.insert("ready_items_change", change);
            }
            findings.push(Finding {
                kind: Kind::Backlog,
                reason: format!(
                    "{ready} ready items wait, the oldest for {} (over {}), while the deriver \
                     works ({} in progress){trend_words}",
                    in_words(oldest),
                    in_words(backlog_after),
                    deriver.in_progress
                ),
                basis: Basis::State,
                numbers,
            });
        } else if seen
            .ready_for
            .is_some_and(|ready_for| ready_for >= backlog_after)
            && let Some(then) = seen.ready_window_ago.filter(|then| ready >= *then)
        {
            findings.push(Finding {
                kind: Kind::Backlog,
                reason: format!(
                    "ready work never cleared in {} and did not shrink ({then} then, {ready} \
                     now) while the deriver works ({} in progress): it falls behind arrivals",
                    in_words(backlog_after),
                    deriver.in_progress
                ),
                basis: Basis::Window,
                numbers: numbers(&[
                    ("ready_items", ready as f64),
                    ("ready_items_window_ago", then as f64),
                    ("in_progress_items", deriver.in_progress as f64),
                    ("backlog_after_seconds", backlog_after),
                ]),
            });
        }
    }
}
