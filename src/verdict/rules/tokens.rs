//! The `waiting_for_tokens` rule: only stalled (sub-threshold) representation units pending,
//! none overdue, which is Honcho working as designed; the reason says how many tokens the
//! nearest unit still needs and when age claims the oldest. Pure: reads a [`Look`], pushes
//! findings; no other rule's business here.

use super::{Look, counted, numbers};
use crate::verdict::{Basis, Finding, Kind, NotJudged, in_words};

/// The rule of `waiting_for_tokens`.
pub(super) fn rule_waiting_for_tokens(
    look: &Look<'_>,
    findings: &mut Vec<Finding>,
    not_judged: &mut Vec<NotJudged>,
) {
    let Look {
        totals,
        criteria,
        split,
        ready,
        units,
        ..
    } = *look;
    let age = |timestamp: f64| look.age(timestamp);
    if let (Some(stalled), Some(units)) = (totals.stalled, units)
        && stalled > 0
        && ready == 0
        && units.overdue_units == 0
    {
        let oldest = units.oldest_stalled.map_or(0.0, age);
        let claimed_in = (criteria.overdue_after.as_secs_f64() - oldest).max(0.0);
        let needed = match (units.tokens_needed, units.batch_max_tokens) {
            (Some(needed), Some(threshold)) => {
                format!(
                    "; the nearest needs {needed} more tokens to reach the {threshold}-token threshold"
                )
            }
            (Some(needed), None) => format!("; the nearest needs {needed} more tokens"),
            _ => String::new(),
        };
        let mut numbers = numbers(&[
            ("stalled_items", stalled as f64),
            ("stalled_units", units.stalled_units as f64),
            ("oldest_stalled_age_seconds", oldest),
            ("claimed_by_age_in_seconds", claimed_in),
        ]);
        if let Some(needed) = units.tokens_needed {
            numbers.insert("tokens_needed", needed as f64);
        }
        findings.push(Finding {
            kind: Kind::WaitingForTokens,
            reason: format!(
                "{} in {} wait below the token threshold, by design{needed}; the oldest will be \
                 claimed by age within {}",
                counted(stalled, "item"),
                counted(units.stalled_units, "representation unit"),
                in_words(claimed_in)
            ),
            basis: Basis::State,
            numbers,
        });
    } else if !split && totals.pending > 0 {
        not_judged.push(NotJudged {
            kind: Kind::WaitingForTokens,
            reason: "without the ready/stalled split (API generation A/B) pending items waiting \
                     for tokens look like ready work"
                .to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::verdict::rules::fixtures::*;
    use crate::verdict::rules::judge;

    #[test]
    fn waiting_for_tokens_says_how_many_tokens_and_when_age_claims_it() {
        let (findings, _) = judge(
            &aged(c(0, 7, 0), 0.0, 0.0),
            &watched(0.0),
            &deriver(0.0, 0),
            &criteria(),
            NOW,
        );
        let reason = &findings[0].reason;
        assert!(reason.contains("needs 40 more tokens"), "{reason}");
        assert!(reason.contains("1024-token threshold"), "{reason}");
        // Overdue after 30 min + 15 s, the oldest is 5 min old.
        assert!(reason.contains("within 25 min"), "{reason}");
    }
}
