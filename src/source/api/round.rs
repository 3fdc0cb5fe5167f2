//! Rounds: what `honcho_exporter_poll_cycles_total` counts and
//! `honcho_exporter_poll_duration_seconds` times. Pure: no I/O, no clock (callers pass the
//! instants).
//!
//! A round is a tick's discovery and the status and head jobs started on it (plus those its
//! discovery answer and its status answers start); it ends when every one of them has
//! reported. Full walks are not waited for: they may span many rounds. Rounds never overlap: a
//! tick while a round is open starts its due jobs outside any round, and the next round opens at
//! the first tick after the open one ended, so a round that outlasts the interval is still
//! counted and timed (each tick replacing the open round meant none ever ended).

use std::time::{Duration, Instant};

/// Whether a job belongs to the open round (its end counts towards the round's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Started on the open round: the round waits for it.
    InRound,
    /// Started on a tick while another round was open, or a full walk: not waited for.
    Outside,
}

/// The open round, if any.
#[derive(Debug, Default)]
pub struct Rounds {
    open: Option<OpenRound>,
}

#[derive(Debug)]
struct OpenRound {
    /// The tick that opened it.
    started: Instant,
    /// Its jobs (and discovery) started and not yet reported.
    pending: usize,
}

impl Rounds {
    /// A tick at `now`: opens a round unless one is open. Returns the membership of the jobs
    /// the tick starts.
    pub fn tick(&mut self, now: Instant) -> Membership {
        if self.open.is_some() {
            return Membership::Outside;
        }
        self.open = Some(OpenRound {
            started: now,
            pending: 0,
        });
        Membership::InRound
    }

    /// A job (or discovery) of `membership` started.
    pub fn joined(&mut self, membership: Membership) {
        if let (Membership::InRound, Some(round)) = (membership, self.open.as_mut()) {
            round.pending += 1;
        }
    }

    /// A job (or discovery) of `membership` reported at `now`. Returns the round's duration when
    /// this was its last one: the round is complete.
    pub fn left(&mut self, membership: Membership, now: Instant) -> Option<Duration> {
        if membership == Membership::Outside {
            return None;
        }
        let round = self.open.as_mut()?;
        round.pending = round.pending.saturating_sub(1);
        if round.pending > 0 {
            return None;
        }
        let duration = now.saturating_duration_since(round.started);
        self.open = None;
        Some(duration)
    }

    /// The tick that opened a round is done starting jobs: a round that started none is
    /// dropped, not counted (nothing was polled on it).
    pub fn settle(&mut self) {
        if self.open.as_ref().is_some_and(|round| round.pending == 0) {
            self.open = None;
        }
    }

    /// Whether a round is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(2);

    #[test]
    fn a_round_ends_when_its_last_job_reports() {
        let mut rounds = Rounds::default();
        let start = Instant::now();
        let membership = rounds.tick(start);
        assert_eq!(membership, Membership::InRound);
        rounds.joined(membership);
        rounds.joined(membership);
        rounds.settle();
        assert_eq!(rounds.left(membership, start + INTERVAL / 4), None);
        assert_eq!(
            rounds.left(membership, start + INTERVAL / 2),
            Some(INTERVAL / 2)
        );
        assert!(!rounds.is_open());
    }

    #[test]
    fn a_tick_while_a_round_is_open_neither_replaces_it_nor_holds_it_open() {
        let mut rounds = Rounds::default();
        let start = Instant::now();
        let first = rounds.tick(start);
        rounds.joined(first);
        rounds.settle();
        // The round outlasts the interval: the next tick's jobs are outside it.
        let second = rounds.tick(start + INTERVAL);
        assert_eq!(second, Membership::Outside);
        rounds.joined(second);
        rounds.settle();
        assert!(rounds.is_open(), "the open round stays open");
        // The outside job ending does not end the round; the round's own job does.
        assert_eq!(rounds.left(second, start + INTERVAL * 3 / 2), None);
        assert_eq!(rounds.left(first, start + INTERVAL * 2), Some(INTERVAL * 2));
        // The next tick opens the next round.
        assert_eq!(rounds.tick(start + INTERVAL * 3), Membership::InRound);
    }

    #[test]
    fn a_tick_that_starts_nothing_opens_no_round() {
        let mut rounds = Rounds::default();
        let start = Instant::now();
        rounds.tick(start);
        rounds.settle();
        assert!(!rounds.is_open());
        assert_eq!(rounds.left(Membership::Outside, start + INTERVAL), None);
    }

    #[test]
    fn jobs_started_by_a_rounds_answers_join_it() {
        // The discovery answer and first status answers start more jobs of the same round
        // before the answering job leaves it.
        let mut rounds = Rounds::default();
        let start = Instant::now();
        let membership = rounds.tick(start);
        rounds.joined(membership); // discovery
        rounds.settle();
        rounds.joined(membership); // a status job its answer starts
        assert_eq!(rounds.left(membership, start + INTERVAL / 8), None);
        assert_eq!(
            rounds.left(membership, start + INTERVAL / 4),
            Some(INTERVAL / 4)
        );
    }
}
