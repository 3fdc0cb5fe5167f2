//! What both sources keep the same way: a health that logs only on change, the staleness stamp
//! of a stored success, and the error / cap / cycle counters behind the self-metrics.
//!
//! Pure: no I/O, no clock (every function takes `now`), no logging (a [`Transition`] tells the
//! caller whether its own log line is due). Must not know which source uses it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::snapshot::{EndpointHealth, ExporterStats};
use crate::upstream::Endpoint;

/// What one recorded result did to a health, so the caller logs once per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A success after a recorded failure: log "recovered".
    Recovered,
    /// A success while up or never recorded: nothing to log.
    StillUp,
    /// A failure while up or never recorded: log it (`warn`).
    Failed,
    /// A failure while already down: `debug` at most.
    StillFailing,
}

/// One upstream's health as a source records it: `None` until the first result.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health(Option<EndpointHealth>);

impl From<Option<EndpointHealth>> for Health {
    fn from(recorded: Option<EndpointHealth>) -> Self {
        Health(recorded)
    }
}

impl Health {
    /// The recorded health, if any result was recorded.
    pub fn get(self) -> Option<EndpointHealth> {
        self.0
    }

    /// The recorded health, or "down, never succeeded" before the first result.
    pub fn or_down(self) -> EndpointHealth {
        self.0.unwrap_or_default()
    }

    /// Records a success at `now`.
    pub fn succeeded(&mut self, now: f64) -> Transition {
        let transition = match self.0 {
            Some(health) if !health.up => Transition::Recovered,
            _ => Transition::StillUp,
        };
        self.0 = Some(EndpointHealth {
            up: true,
            last_success: Some(now),
        });
        transition
    }

    /// Records a failure (the last success is kept).
    pub fn failed(&mut self) -> Transition {
        let transition = match self.0 {
            Some(health) if !health.up => Transition::StillFailing,
            _ => Transition::Failed,
        };
        let last_success = self.0.and_then(|health| health.last_success);
        self.0 = Some(EndpointHealth {
            up: false,
            last_success,
        });
        transition
    }
}

/// When a stored success arrived and until when it may be served (Unix seconds): servable
/// while `now < until`, so at its bound a value is gone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    /// When the success arrived.
    pub at: f64,
    /// The first instant it may no longer be served.
    pub until: f64,
}

impl Stamp {
    /// A success arriving at `now`, served for `lifetime`.
    pub fn new(now: f64, lifetime: Duration) -> Self {
        Stamp {
            at: now,
            until: now + lifetime.as_secs_f64(),
        }
    }

    /// Whether the value may be served at `now`.
    pub fn servable(self, now: f64) -> bool {
        now < self.until
    }
}

/// The first bound after `now` among `bounds` (when the publication must re-render).
pub fn next_bound(bounds: impl IntoIterator<Item = f64>, now: f64) -> Option<f64> {
    bounds
        .into_iter()
        .filter(|until| *until > now)
        .min_by(f64::total_cmp)
}

/// The counters behind `poll_errors_total`, `series_capped_total`, `poll_cycles_total` and
/// `poll_duration_seconds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    errors: BTreeMap<(Endpoint, &'static str), u64>,
    capped: BTreeMap<&'static str, u64>,
    cycles: u64,
    last_duration: Option<Duration>,
}

impl Counters {
    /// One failed call of `endpoint`, by bounded reason.
    pub fn count_error(&mut self, endpoint: Endpoint, reason: &'static str) {
        *self.errors.entry((endpoint, reason)).or_insert(0) += 1;
    }

    /// `count` series of `family` left out by a cap (a zero still creates the counter).
    pub fn count_capped(&mut self, family: &'static str, count: u64) {
        *self.capped.entry(family).or_insert(0) += count;
    }

    /// A cycle ended after `duration`.
    pub fn cycle_done(&mut self, duration: Duration) {
        self.cycles += 1;
        self.last_duration = Some(duration);
    }

    /// The self-metrics these counters feed, over `poll_interval`.
    pub fn stats(&self, poll_interval: Duration) -> ExporterStats {
        ExporterStats {
            poll_duration: self.last_duration,
            poll_interval,
            poll_cycles: self.cycles,
            errors: self.errors.clone(),
            capped: self.capped.clone(),
            ..ExporterStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_a_change_and_the_next_ones_are_not() {
        let mut health = Health::default();
        assert_eq!(health.failed(), Transition::Failed);
        assert_eq!(health.failed(), Transition::StillFailing);
        assert_eq!(health.or_down(), EndpointHealth::default());
    }

    #[test]
    fn a_success_after_a_failure_is_a_recovery_and_keeps_its_time() {
        let mut health = Health::default();
        assert_eq!(health.succeeded(10.0), Transition::StillUp);
        assert_eq!(health.failed(), Transition::Failed);
        assert_eq!(health.get().and_then(|h| h.last_success), Some(10.0));
        assert_eq!(health.succeeded(20.0), Transition::Recovered);
        assert_eq!(health.succeeded(30.0), Transition::StillUp);
    }

    #[test]
    fn a_stamp_is_gone_at_its_bound() {
        let stamp = Stamp::new(100.0, Duration::from_secs(45));
        assert!(stamp.servable(144.999));
        assert!(!stamp.servable(145.0));
    }

    #[test]
    fn next_bound_skips_bounds_already_passed() {
        assert_eq!(next_bound([5.0, 12.0, 9.0], 6.0), Some(9.0));
        assert_eq!(next_bound([5.0], 5.0), None);
    }

    #[test]
    fn counters_feed_the_self_metrics() {
        let mut counters = Counters::default();
        counters.count_error(Endpoint::Postgres, "query");
        counters.count_error(Endpoint::Postgres, "query");
        counters.count_capped("session_items", 0);
        counters.cycle_done(Duration::from_millis(5));
        let stats = counters.stats(Duration::from_secs(15));
        assert_eq!(stats.errors.get(&(Endpoint::Postgres, "query")), Some(&2));
        assert_eq!(stats.capped.get("session_items"), Some(&0));
        assert_eq!(
            (stats.poll_cycles, stats.poll_duration),
            (1, Some(Duration::from_millis(5)))
        );
    }
}
