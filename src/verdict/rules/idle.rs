//! The `deriver_idle` rule, and on API generations A/B the `unknown` it cannot rule out. In
//! order: the windowed judgement every generation has (pending, nothing in progress, nothing
//! completing for `idle_window`); then, with the ready/stalled split (generation C), ready work
//! unclaimed for `not_processing_after` over the window or, in one look, older than it; without
//! the split, pending work with nothing in progress is `unknown` until the history covers
//! `idle_window`. Pure: reads a [`Look`], pushes findings; no other rule's business here.

use super::{Look, numbers};
use crate::verdict::{Basis, Finding, Kind, NotJudged, in_words};

/// The rule of `deriver_idle` (and, without the split, the `unknown` it cannot rule out).
pub(super) fn rule_deriver_idle(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    if let Some(finding) = idle_over_window(look) {
        findings.push(finding);
    } else if look.split {
        findings.extend(unclaimed_over_window(look).or_else(|| unclaimed_in_one_look(look)));
    } else {
        without_split(look, findings, not_judged);
    }
}

/// Any generation: items pending, and nothing in progress and nothing completed in any
/// workspace for `idle_window` [`HonchoDeriverIdle`].
fn idle_over_window(look: &Look<'_>) -> Option<Finding> {
    let Look {
        totals,
        deriver,
        idle_window,
        ..
    } = *look;
    if totals.pending == 0 {
        return None;
    }
    let idle_for = deriver
        .idle_for
        .filter(|idle_for| *idle_for >= idle_window)?;
    Some(Finding {
        kind: Kind::DeriverIdle,
        reason: format!(
            "{} items pending, and for {} nothing was in progress and no item completed in \
             any workspace: the deriver is down or wedged",
            totals.pending,
            in_words(idle_for)
        ),
        basis: Basis::Window,
        numbers: numbers(&[
            ("pending_items", totals.pending as f64),
            ("idle_seconds", idle_for),
            ("idle_window_seconds", idle_window),
        ]),
    })
}

/// Generation C, over the window: ready items unclaimed with nothing in progress anywhere for
/// `not_processing_after` [`HonchoDeriverNotProcessing`].
fn unclaimed_over_window(look: &Look<'_>) -> Option<Finding> {
    let Look {
        deriver,
        ready,
        not_processing_after,
        ..
    } = *look;
    if ready == 0 {
        return None;
    }
    let unclaimed_for = deriver
        .unclaimed_for
        .filter(|unclaimed_for| *unclaimed_for >= not_processing_after)?;
    Some(Finding {
        kind: Kind::DeriverIdle,
        reason: format!(
            "{ready} ready items unclaimed, and nothing in progress in any workspace for {}: \
             the deriver is down or wedged",
            in_words(unclaimed_for)
        ),
        basis: Basis::Window,
        numbers: numbers(&[
            ("ready_items", ready as f64),
            ("unclaimed_seconds", unclaimed_for),
            ("not_processing_after_seconds", not_processing_after),
        ]),
    })
}

/// Generation C, in one look (the history shorter than `not_processing_after`): the oldest
/// ready item older than `not_processing_after` with nothing in progress anywhere.
fn unclaimed_in_one_look(look: &Look<'_>) -> Option<Finding> {
    let Look {
        deriver,
        ready,
        oldest_ready_age,
        not_processing_after,
        ..
    } = *look;
    if ready == 0 || deriver.in_progress != 0 || deriver.covered >= not_processing_after {
        return None;
    }
    let oldest = oldest_ready_age.filter(|oldest| *oldest >= not_processing_after)?;
    Some(Finding {
        kind: Kind::DeriverIdle,
        reason: format!(
            "{ready} ready items unclaimed, the oldest for {}, and nothing in progress in any \
             workspace: the deriver is down or wedged (one look: ready work older than {})",
            in_words(oldest),
            in_words(not_processing_after)
        ),
        basis: Basis::Instant,
        numbers: numbers(&[
            ("ready_items", ready as f64),
            ("oldest_ready_age_seconds", oldest),
            ("not_processing_after_seconds", not_processing_after),
        ]),
    })
}

/// Generations A/B (no ready/stalled split) while the history is shorter than `idle_window`:
/// pending work with nothing in progress is `unknown` (one look cannot tell a stopped deriver
/// from work waiting for tokens); with work in progress, `deriver_idle` is not judged yet.
fn without_split(look: &Look<'_>, findings: &mut Vec<Finding>, not_judged: &mut Vec<NotJudged>) {
    let Look {
        totals,
        deriver,
        idle_window,
        ..
    } = *look;
    if totals.pending == 0 || deriver.covered >= idle_window {
        return;
    }
    if deriver.in_progress == 0 {
        findings.push(Finding {
            kind: Kind::Unknown,
            reason: format!(
                "{} items pending and nothing in progress; without the ready/stalled split \
                 (API generation A/B) one look cannot tell a stopped deriver from work \
                 waiting for tokens: it takes {} of history ({} so far)",
                totals.pending,
                in_words(idle_window),
                in_words(deriver.covered)
            ),
            basis: Basis::Instant,
            numbers: numbers(&[
                ("pending_items", totals.pending as f64),
                ("history_seconds", deriver.covered),
                ("idle_window_seconds", idle_window),
            ]),
        });
    } else {
        not_judged.push(NotJudged {
            kind: Kind::DeriverIdle,
            reason: format!(
                "without the ready/stalled split (API generation A/B) it takes {} of history ({} \
                 so far)",
                in_words(idle_window),
                in_words(deriver.covered)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::verdict::Kind;
    use crate::verdict::rules::fixtures::*;
    use crate::verdict::rules::{DeriverSeen, judge};

    #[test]
    fn the_windowed_judgement_comes_before_the_one_look() {
        let deriver = DeriverSeen {
            idle_for: Some(36.0 * MIN),
            ..deriver(40.0, 0)
        };
        let (findings, _) = judge(
            &aged(c(5, 0, 0), 70.0, 0.0),
            &watched(40.0),
            &deriver,
            &criteria(),
            NOW,
        );
        assert_eq!(findings[0].kind, Kind::DeriverIdle);
        assert!(
            findings[0].numbers.contains_key("idle_seconds"),
            "{findings:#?}"
        );
    }

    #[test]
    fn without_the_split_a_full_history_with_nothing_idle_is_neither_unknown_nor_unjudged() {
        let (findings, not_judged) = judge(
            &ab(9, 0),
            &watched(40.0),
            &deriver(40.0, 0),
            &criteria(),
            NOW,
        );
        assert!(
            findings.iter().all(|finding| finding.kind != Kind::Unknown),
            "{findings:#?}"
        );
        assert!(
            not_judged.iter().all(|item| item.kind != Kind::DeriverIdle),
            "{not_judged:#?}"
        );
    }
}
