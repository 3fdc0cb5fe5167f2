//! The verdicts a publication carries: the criteria and the [`History`] handed from one
//! publication to the next, observed once per published snapshot and read to evaluate the
//! [`Report`] a rendering shows. Owns the lock around them and when a snapshot is observed;
//! the rules themselves are `verdict`'s, and nothing here renders or serves.

use std::sync::{Arc, Mutex};

use crate::snapshot::Snapshot;
use crate::verdict::{self, Criteria, History, Report};

/// What verdicts are judged with: the criteria and the history so far.
#[derive(Debug)]
pub(super) struct Verdicts {
    criteria: Criteria,
    history: History,
}

impl Verdicts {
    pub(super) fn new(criteria: Criteria) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Verdicts {
            criteria,
            history: History::new(criteria.thresholds.longest_window()),
        }))
    }

    /// Judges with `criteria` from now on (a reload may change them); a new longest window
    /// resizes the history it keeps.
    pub(super) fn adopt(verdicts: &Mutex<Self>, criteria: Criteria) {
        let mut state = verdicts
            .lock()
            .expect("the verdict lock is never poisoned: judging does not panic");
        if state.criteria != criteria {
            state.criteria = criteria;
            state
                .history
                .set_window(criteria.thresholds.longest_window());
        }
    }
}

/// Evaluates (after observing `snapshot`, when `observe`) the verdicts at `now`.
pub(super) fn judge(
    verdicts: &Mutex<Verdicts>,
    snapshot: &Snapshot,
    ready: bool,
    now: f64,
    observe: bool,
) -> Arc<Report> {
    let mut verdicts = verdicts
        .lock()
        .expect("the verdict lock is never poisoned: judging does not panic");
    if observe && ready {
        verdicts.history.observe(snapshot, now);
    }
    Arc::new(verdict::evaluate(
        snapshot,
        &verdicts.history,
        &verdicts.criteria,
        ready,
        now,
    ))
}
