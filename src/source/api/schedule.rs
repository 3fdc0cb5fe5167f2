//! Scheduling: when each workspace's jobs (queue/status, the head of the walk, the full walk)
//! may start. Pure: no I/O, no clock (callers pass the tick's instant).
//!
//! The duty rule: a job starts no sooner than max(interval, k × its last busy time) after its
//! last start, and never while its previous run is still going. Busy time is the time its
//! requests' attempts took (waits for a slot, the rate bound or a backoff excluded), i.e. how
//! long Honcho worked for it, so one job keeps Honcho busy at most 1/k of the time however large
//! the workspace grows (k = `poll.duty_factor`).
//! Jobs start on interval ticks, so a stretched period rounds up to whole intervals (which only
//! lowers the share). A job started between two ticks (by the discovery answer, or a walk by its
//! workspace's first status answer) counts as started at the tick before it: otherwise it would
//! miss the next tick by the answer's latency and run one full interval late.
//!
//! The head and the walk are one request for a workspace whose units fit in one page, and the
//! walk's first page is the head of its tick: the head is never due on a tick a walk started on
//! (a separate head would fetch the same page again — the discovery answer re-checks due jobs
//! later on the same tick). A walk still running from an earlier tick has the head fetched
//! beside it, every interval.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a job of a workspace asks Honcho.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    /// queue/status and the configured scopes.
    Status,
    /// The first page of queue/work-units: the oldest units and `total`.
    Head,
    /// Every page of queue/work-units.
    Walk,
}

impl JobKind {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Status => "status",
            JobKind::Head => "head",
            JobKind::Walk => "walk",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    last_start: Option<Instant>,
    running: bool,
    last_busy: Duration,
    last_duration: Duration,
}

/// The timing of every job.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    duty_factor: f64,
    /// The current tick: jobs start on it, and due-ness is judged at it.
    tick: Option<Instant>,
    jobs: BTreeMap<(String, JobKind), Timing>,
}

impl Schedule {
    /// Jobs every `interval`, stretched by the duty rule with factor `duty_factor` (≥ 1).
    pub fn new(interval: Duration, duty_factor: f64) -> Self {
        Schedule {
            interval,
            duty_factor: duty_factor.max(1.0),
            tick: None,
            jobs: BTreeMap::new(),
        }
    }

    /// An interval tick at `now`: the instant jobs start at until the next tick.
    pub fn tick(&mut self, now: Instant) {
        self.tick = Some(now);
    }

    /// The period of a job: max(interval, k × its last busy time).
    pub fn period(&self, workspace: &str, kind: JobKind) -> Duration {
        let busy = self
            .jobs
            .get(&(workspace.to_string(), kind))
            .map_or(Duration::ZERO, |timing| timing.last_busy);
        self.interval.max(busy.mul_f64(self.duty_factor))
    }

    /// How much longer than the interval the duty rule makes this job's period: its values may
    /// be that much older before a new one replaces them, so their staleness bound grows by it.
    pub fn stretch(&self, workspace: &str, kind: JobKind) -> Duration {
        self.period(workspace, kind).saturating_sub(self.interval)
    }

    /// Whether the job is running.
    pub fn is_running(&self, workspace: &str, kind: JobKind) -> bool {
        self.jobs
            .get(&(workspace.to_string(), kind))
            .is_some_and(|timing| timing.running)
    }

    /// Whether the job may start on the current tick.
    pub fn is_due(&self, workspace: &str, kind: JobKind) -> bool {
        if kind == JobKind::Head && self.walk_serves_as_head(workspace) {
            return false;
        }
        match self.jobs.get(&(workspace.to_string(), kind)) {
            None => true,
            Some(timing) if timing.running => false,
            Some(timing) => match (timing.last_start, self.tick) {
                (Some(start), Some(tick)) => {
                    tick.saturating_duration_since(start) >= self.period(workspace, kind)
                }
                _ => true,
            },
        }
    }

    /// Whether a walk started on the current tick: its first page is this tick's head.
    fn walk_serves_as_head(&self, workspace: &str) -> bool {
        self.tick.is_some()
            && self
                .jobs
                .get(&(workspace.to_string(), JobKind::Walk))
                .is_some_and(|timing| timing.last_start == self.tick)
    }

    /// The job started on the current tick.
    pub fn started(&mut self, workspace: &str, kind: JobKind) {
        let tick = self.tick;
        let timing = self.jobs.entry((workspace.to_string(), kind)).or_default();
        timing.last_start = tick;
        timing.running = true;
    }

    /// The job ended after `duration`, of which Honcho was busy `busy`.
    pub fn finished(&mut self, workspace: &str, kind: JobKind, busy: Duration, duration: Duration) {
        let timing = self.jobs.entry((workspace.to_string(), kind)).or_default();
        timing.running = false;
        timing.last_busy = busy;
        timing.last_duration = duration;
    }

    /// The last run's duration (wall time), if one ended.
    pub fn last_duration(&self, workspace: &str, kind: JobKind) -> Duration {
        self.jobs
            .get(&(workspace.to_string(), kind))
            .map_or(Duration::ZERO, |timing| timing.last_duration)
    }

    /// Forgets the jobs of workspaces not in `workspaces` (sorted) that are not running.
    pub fn retain(&mut self, workspaces: &[String]) {
        self.jobs.retain(|(workspace, _), timing| {
            timing.running || workspaces.binary_search(workspace).is_ok()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(15);

    /// Whether the job is due on a tick at `at`.
    fn due_at(schedule: &mut Schedule, workspace: &str, kind: JobKind, at: Instant) -> bool {
        schedule.tick(at);
        schedule.is_due(workspace, kind)
    }

    /// Starts the job on a tick at `at`.
    fn start_at(schedule: &mut Schedule, workspace: &str, kind: JobKind, at: Instant) {
        schedule.tick(at);
        schedule.started(workspace, kind);
    }

    #[test]
    fn a_quick_job_runs_every_interval() {
        let mut schedule = Schedule::new(INTERVAL, 4.0);
        let start = Instant::now();
        assert!(due_at(&mut schedule, "w", JobKind::Status, start));
        start_at(&mut schedule, "w", JobKind::Status, start);
        assert!(
            !due_at(&mut schedule, "w", JobKind::Status, start + INTERVAL),
            "running"
        );
        schedule.finished(
            "w",
            JobKind::Status,
            Duration::from_millis(50),
            Duration::from_millis(60),
        );
        assert!(schedule.is_due("w", JobKind::Status));
        assert_eq!(schedule.stretch("w", JobKind::Status), Duration::ZERO);
    }

    #[test]
    fn a_job_started_between_ticks_is_due_again_one_interval_after_the_tick_before_it() {
        // The discovery answer starts the first status polls 400 ms after the first tick.
        let mut schedule = Schedule::new(INTERVAL, 4.0);
        let start = Instant::now();
        schedule.tick(start);
        schedule.started("w", JobKind::Status);
        let quick = Duration::from_millis(5);
        schedule.finished("w", JobKind::Status, quick, quick);
        assert!(
            due_at(&mut schedule, "w", JobKind::Status, start + INTERVAL),
            "due on the next tick, not one interval later"
        );
    }

    #[test]
    fn a_slow_job_waits_k_times_its_busy_time_so_it_keeps_honcho_busy_at_most_one_kth() {
        let mut schedule = Schedule::new(INTERVAL, 4.0);
        let start = Instant::now();
        start_at(&mut schedule, "big", JobKind::Walk, start);
        let busy = Duration::from_secs(350);
        schedule.finished("big", JobKind::Walk, busy, busy);
        assert_eq!(schedule.period("big", JobKind::Walk), busy * 4);
        assert!(!due_at(
            &mut schedule,
            "big",
            JobKind::Walk,
            start + busy * 4 - INTERVAL
        ));
        assert!(due_at(
            &mut schedule,
            "big",
            JobKind::Walk,
            start + busy * 4
        ));
        assert_eq!(
            schedule.stretch("big", JobKind::Walk),
            busy * 4 - INTERVAL,
            "its values may be that much older"
        );
        // Another job of the same workspace is not held back.
        assert!(due_at(
            &mut schedule,
            "big",
            JobKind::Head,
            start + INTERVAL
        ));
    }

    #[test]
    fn a_job_never_overlaps_itself() {
        let mut schedule = Schedule::new(INTERVAL, 1.0);
        let start = Instant::now();
        start_at(&mut schedule, "w", JobKind::Walk, start);
        assert!(!due_at(
            &mut schedule,
            "w",
            JobKind::Walk,
            start + INTERVAL * 100
        ));
    }

    #[test]
    fn the_head_is_not_due_on_a_tick_a_walk_started_on() {
        // A one-page workspace: the walk is this tick's head; the discovery answer that
        // re-checks due jobs later on the same tick must not start a second fetch of the page,
        // whether the walk is still running or already done.
        let mut schedule = Schedule::new(INTERVAL, 4.0);
        let start = Instant::now();
        start_at(&mut schedule, "w", JobKind::Head, start - INTERVAL);
        schedule.finished("w", JobKind::Head, Duration::ZERO, Duration::ZERO);
        start_at(&mut schedule, "w", JobKind::Walk, start);
        assert!(!schedule.is_due("w", JobKind::Head), "walk running");
        let page = Duration::from_millis(40);
        schedule.finished("w", JobKind::Walk, page, page);
        assert!(!schedule.is_due("w", JobKind::Head), "walk done");
    }

    #[test]
    fn a_walk_running_from_an_earlier_tick_has_the_head_fetched_beside_it() {
        let mut schedule = Schedule::new(INTERVAL, 4.0);
        let start = Instant::now();
        start_at(&mut schedule, "big", JobKind::Walk, start);
        assert!(due_at(
            &mut schedule,
            "big",
            JobKind::Head,
            start + INTERVAL
        ));
    }

    #[test]
    fn forgotten_workspaces_keep_their_running_jobs_until_they_end() {
        let mut schedule = Schedule::new(INTERVAL, 4.0);
        let start = Instant::now();
        start_at(&mut schedule, "gone", JobKind::Walk, start);
        schedule.started("idle", JobKind::Status);
        schedule.finished("idle", JobKind::Status, Duration::ZERO, Duration::ZERO);
        schedule.retain(&[]);
        assert!(schedule.is_running("gone", JobKind::Walk));
        assert!(due_at(&mut schedule, "idle", JobKind::Status, start));
    }
}
