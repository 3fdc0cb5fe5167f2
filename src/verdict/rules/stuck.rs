//! The `stuck_in_progress` rule: the same oldest in-progress item for `stuck_after` over the
//! window [`HonchoWorkUnitInProgressTooLong`], or in one look that item older than
//! `stuck_after`. Pure: reads a [`Look`], pushes findings; no other rule's business here.

use super::{Look, in_session, no_units_reason, numbers};
use crate::verdict::{Basis, Finding, Kind, NotJudged, in_words};

/// The rule of `stuck_in_progress`.
pub(super) fn rule_stuck_in_progress(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    let Look {
        totals,
        seen,
        split,
        units,
        stuck_after,
        ..
    } = *look;
    let age = |timestamp: f64| look.age(timestamp);
    match (units, totals.oldest_in_progress) {
        (Some(units), Some(oldest)) if totals.in_progress > 0 => {
            let same_for = seen.in_progress_same_for.unwrap_or(0.0);
            let session = in_session(units.in_progress_session.as_ref());
            if same_for >= stuck_after {
                findings.push(Finding {
                    kind: Kind::StuckInProgress,
                    reason: format!(
                        "the same oldest item has been in progress for {}{session} (queued {} \
                         ago): an LLM call or the deriver hangs on it",
                        in_words(same_for),
                        in_words(age(oldest))
                    ),
                    basis: Basis::Window,
                    numbers: numbers(&[
                        ("in_progress_same_seconds", same_for),
                        ("oldest_in_progress_age_seconds", age(oldest)),
                        ("stuck_after_seconds", stuck_after),
                    ]),
                });
            } else if seen.covered < stuck_after
                && same_for + 1e-6 >= seen.covered
                && age(oldest) >= stuck_after
            {
                findings.push(Finding {
                    kind: Kind::StuckInProgress,
                    reason: format!(
                        "an item queued {} ago is in progress{session}: an LLM call or the \
                         deriver may hang on it (one look: in progress and older than {})",
                        in_words(age(oldest)),
                        in_words(stuck_after)
                    ),
                    basis: Basis::Instant,
                    numbers: numbers(&[
                        ("oldest_in_progress_age_seconds", age(oldest)),
                        ("stuck_after_seconds", stuck_after),
                    ]),
                });
            }
        }
        (None, _) if totals.in_progress > 0 => not_judged.push(NotJudged {
            kind: Kind::StuckInProgress,
            reason: no_units_reason(split),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::verdict::rules::fixtures::*;
    use crate::verdict::rules::judge;

    #[test]
    fn the_stuck_reason_names_the_session() {
        let (findings, _) = judge(
            &aged(c(0, 0, 1), 0.0, 31.0),
            &watched(0.0),
            &deriver(0.0, 1),
            &criteria(),
            NOW,
        );
        assert!(
            findings[0].reason.contains("session \"chat <1>\""),
            "{findings:?}"
        );
    }
}
