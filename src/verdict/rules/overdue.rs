//! The `overdue` rule: work units stalled past `classify.overdue_after`
//! [`HonchoWorkUnitsOverdue`] (the classification decided which; this rule names them in
//! words). Pure: reads a [`Look`], pushes findings; no other rule's business here.

use super::{Look, counted, in_session, no_units_reason, numbers};
use crate::verdict::{Basis, Finding, Kind, NotJudged, in_words};

/// The rule of `overdue`.
pub(super) fn rule_overdue(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    let Look {
        totals,
        criteria,
        split,
        units,
        ..
    } = *look;
    let age = |timestamp: f64| look.age(timestamp);
    match units {
        Some(units) if units.overdue_units > 0 => {
            let oldest = units.oldest_overdue.map_or(0.0, age);
            findings.push(Finding {
                kind: Kind::Overdue,
                reason: format!(
                    "{}{} stayed below the token threshold for longer than {} (the oldest for \
                     {}){}: Honcho should have flushed them by age and has not",
                    if units.head_only { "at least " } else { "" },
                    counted(units.overdue_units, "work unit"),
                    in_words(criteria.overdue_after.as_secs_f64()),
                    in_words(oldest),
                    in_session(units.overdue_session.as_ref())
                ),
                basis: Basis::State,
                numbers: numbers(&[
                    ("overdue_units", units.overdue_units as f64),
                    ("oldest_overdue_age_seconds", oldest),
                    (
                        "overdue_after_seconds",
                        criteria.overdue_after.as_secs_f64(),
                    ),
                ]),
            });
        }
        Some(_) => {}
        None if totals.pending > 0 => not_judged.push(NotJudged {
            kind: Kind::Overdue,
            reason: no_units_reason(split),
        }),
        None => {}
    }
}
