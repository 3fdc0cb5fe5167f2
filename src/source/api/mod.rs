//! The poll loop, on its own timer (never per scrape). Every interval tick it starts each
//! workspace's jobs that are due: queue/status (+ scopes), the head of the work-units walk (its
//! first page: the oldest units and `total`) and, when the duty rule allows, the full walk.
//! Every job runs on its own and reports when it ends; its result is merged and published at
//! once (re-rendering coalesced), so a slow workspace never delays another's numbers.
//!
//! Load on Honcho is bounded twice: at most `poll.concurrency` requests in flight (a FIFO slot
//! per request, in the client), and the duty rule of [`schedule`] per workspace and job.
//!
//! Rooms, one job each:
//! - this file: the loop: ticks, starting due jobs, taking their reports, readiness;
//! - [`job`]: the per-job I/O (what each job asks Honcho) and the reports jobs send;
//! - [`queue`]: due jobs waiting for a task, and the task budget per job class (pure);
//! - [`round`]: the rounds `poll_cycles_total` counts and `poll_duration_seconds` times (pure);
//! - [`schedule`]: when each job may start (the duty rule; pure);
//! - [`crate::source::selection`]: which workspaces this replica polls (pure, shared);
//! - [`generation`]: the one generation-detection type (version, split, work-units), judged
//!   from several workspaces' answers, never one;
//! - [`state`]: the pure merge of outcomes, health, counters and staleness bounds, and (its
//!   `view`) the servable snapshot built from it;
//! - publication lives in [`crate::publication`], so the server never imports the poller.
//!
//! Failures never end the loop: they become `honcho_exporter_up 0`, an error counter with a
//! bounded reason and a log line on the transition. Only successes are stored, so a failed
//! result is never served as good, and a stored success expires at its bound (checked at
//! scrape time).

pub mod generation;
pub mod job;
pub mod queue;
pub mod round;
pub mod schedule;
pub mod state;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::honcho::{ApiVersion, Client, UpstreamError};
use crate::publication::{SharedPublished, unix_now};

use crate::source::selection::select_workspaces;
use job::{Ended, Outcome, Report};
use queue::{JobClass, JobQueue, QueuedJob};
use round::{Membership, Rounds};
use schedule::{JobKind, Schedule};
use state::{PollState, Servable};

/// Shortest time between two publications (re-renders); longer when rendering is slow, so that
/// rendering takes at most a tenth of the poller's time.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(250);

/// The gap before the next publication after one that took `rendering`: at least
/// [`MIN_PUBLISH_GAP`], and ten times the rendering, so rendering takes at most a tenth of the
/// poller's time.
fn publish_gap_after(rendering: Duration) -> Duration {
    MIN_PUBLISH_GAP.max(rendering * 10)
}

/// The poll loop.
pub struct Poller {
    settings: Arc<Settings>,
    client: Client,
    state: PollState,
    /// When each job may start; it also holds the current tick, the instant jobs start at.
    schedule: Schedule,
    published: SharedPublished,
    /// Workspaces walked this round (for readiness).
    walk_plan: HashSet<String>,
    /// The running discovery's round membership; `None`: no discovery running.
    discovery: Option<Membership>,
    ready: bool,
    started: Instant,
    /// The open round of status and head polls.
    rounds: Rounds,
    /// Due jobs waiting for a task.
    queue: JobQueue,
    /// Workspaces before this index in the polled list have had their first outcomes
    /// (readiness is checked from here on, not from the start at every report).
    ready_cursor: usize,
}

impl Poller {
    /// A poller publishing into `published`.
    pub fn new(settings: Arc<Settings>, client: Client, published: SharedPublished) -> Self {
        let state = PollState::new(
            settings.honcho.api_generation,
            settings.poll.interval,
            settings.poll.max_staleness,
            settings.work_units.detail_limit,
        );
        let schedule = Schedule::new(settings.poll.interval, settings.poll.duty_factor);
        let queue = JobQueue::new(settings.poll.concurrency);
        Poller {
            settings,
            client,
            state,
            schedule,
            published,
            walk_plan: HashSet::new(),
            discovery: None,
            ready: false,
            started: Instant::now(),
            rounds: Rounds::default(),
            queue,
            ready_cursor: 0,
        }
    }

    /// Polls until `shutdown` resolves; jobs in flight are abandoned then.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let (reports, mut inbox) = mpsc::unbounded_channel();
        let mut jobs = JoinSet::new();
        let mut ticker = tokio::time::interval(self.settings.poll.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut publish_at: Option<tokio::time::Instant> = None;
        let mut publish_gap = MIN_PUBLISH_GAP;
        let mut last_publish = tokio::time::Instant::now();
        let mut expiry_at: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let publish_wait = async {
                match publish_at.or(expiry_at) {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => {
                    jobs.abort_all();
                    return;
                }
                tick = ticker.tick() => {
                    self.tick(tick.into_std(), &reports, &mut jobs);
                }
                Some(report) = inbox.recv() => {
                    self.handle(report, &reports, &mut jobs);
                    // Take every report already waiting before publishing.
                    while let Ok(report) = inbox.try_recv() {
                        self.handle(report, &reports, &mut jobs);
                    }
                    if publish_at.is_none() {
                        publish_at = Some((last_publish + publish_gap).max(tokio::time::Instant::now()));
                    }
                }
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                _ = publish_wait => {
                    let rendering = Instant::now();
                    let next_expiry = self.publish();
                    publish_gap = publish_gap_after(rendering.elapsed());
                    last_publish = tokio::time::Instant::now();
                    publish_at = None;
                    // Re-render when a value passes its bound (scrapes check it themselves too).
                    expiry_at = next_expiry.map(|at| {
                        let wait = Duration::from_secs_f64((at - unix_now()).max(0.0));
                        tokio::time::Instant::now() + wait
                    });
                }
            }
        }
    }

    /// Publishes the state as it is now; returns when the next value passes its bound.
    fn publish(&mut self) -> Option<f64> {
        let now = unix_now();
        let source = Arc::new(Servable {
            state: self.state.clone(),
            requests: self.client.request_counts(),
            token_reload_errors: self.client.token_reload_errors(),
        });
        let next_expiry = self.state.next_expiry(now);
        crate::source::publish(&self.published, &self.settings, source, now, self.ready);
        next_expiry
    }

    /// One interval tick: discovery, then every due job. The tick opens a round unless one is
    /// still open; its jobs join that round or, if another is open, none.
    fn tick(
        &mut self,
        now: Instant,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        self.schedule.tick(now);
        let membership = self.rounds.tick(now);
        let settings = Arc::clone(&self.settings);
        if settings.workspaces.static_list.is_empty() {
            if self.discovery.is_none() {
                self.discovery = Some(membership);
                self.rounds.joined(membership);
                let client = self.client.clone();
                let preferred = self.state.generation().version();
                let detects = self.state.generation().detects();
                jobs.spawn(job::run_discovery(
                    client,
                    preferred,
                    detects,
                    reports.clone(),
                ));
            }
            if self.state.workspaces().is_empty() {
                // Nothing known yet: the jobs start when discovery answers (the round ends
                // with it if it fails).
                self.rounds.settle();
                return;
            }
        } else {
            let selected = select_workspaces(
                settings.workspaces.static_list.clone(),
                &settings.workspaces,
                settings.shard,
            );
            self.set_workspaces(selected);
        }
        self.start_due(membership, reports, jobs);
        self.rounds.settle();
    }

    fn set_workspaces(&mut self, selected: Vec<String>) {
        self.ready_cursor = 0;
        self.schedule.retain(&selected);
        self.state.set_workspaces(selected);
    }

    /// Starts every job that is due on the current tick; status and head jobs join
    /// `membership`'s round.
    fn start_due(
        &mut self,
        membership: Membership,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        let workspaces = self.state.workspaces().to_vec();
        let version = self.state.generation().version();
        self.ready_cursor = 0;
        self.walk_plan = self
            .state
            .generation_mut()
            .walk_plan(&workspaces, self.settings.work_units.enabled)
            .into_iter()
            .collect();
        // Every status first: requests queue for in-flight slots in the order they are sent,
        // so the cheap status polls are not queued behind the walks' pages.
        for workspace in &workspaces {
            if self.schedule.is_due(workspace, JobKind::Status) {
                self.spawn(
                    workspace,
                    JobKind::Status,
                    version,
                    membership,
                    reports,
                    jobs,
                );
            }
        }
        for workspace in &workspaces {
            self.start_work_units(workspace, version, membership, reports, jobs);
        }
    }

    /// Starts the full walk of `workspace`, or its head, when due. Not before the workspace's
    /// first status outcome: the walk keeps the names of the sessions that status exports, so a
    /// walk started without it would publish no `session_info` until the next walk, which the
    /// duty rule may put far away. The status outcome starts it ([`Self::handle_ended`]).
    fn start_work_units(
        &mut self,
        workspace: &str,
        version: ApiVersion,
        membership: Membership,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        if !self.walk_plan.contains(workspace)
            || version != ApiVersion::V3
            || !self.state.has_outcomes(workspace, false)
        {
            return;
        }
        // The full walk's first page is the head: a separate head only while the walk is
        // running from an earlier tick or waiting for its duty period (the schedule's rule).
        if self.schedule.is_due(workspace, JobKind::Walk) {
            self.spawn(
                workspace,
                JobKind::Walk,
                version,
                Membership::Outside,
                reports,
                jobs,
            );
        } else if self.schedule.is_due(workspace, JobKind::Head) {
            self.spawn(workspace, JobKind::Head, version, membership, reports, jobs);
        }
    }

    /// Marks the job started and queues it for a task. Full walks never join a round: they
    /// may span many.
    fn spawn(
        &mut self,
        workspace: &str,
        kind: JobKind,
        version: ApiVersion,
        membership: Membership,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        self.schedule.started(workspace, kind);
        let membership = match JobClass::of(kind) {
            JobClass::Short => membership,
            JobClass::Walk => Membership::Outside,
        };
        self.rounds.joined(membership);
        self.queue.push(QueuedJob {
            workspace: workspace.to_string(),
            kind,
            version,
            membership,
        });
        self.launch_queued(reports, jobs);
    }

    /// Starts queued jobs while their class has room, short polls first.
    fn launch_queued(&mut self, reports: &mpsc::UnboundedSender<Report>, jobs: &mut JoinSet<()>) {
        while let Some(queued) = self.queue.next_launch() {
            let wanted = self.state.wanted_sessions(&queued.workspace);
            jobs.spawn(job::run_job(
                self.client.clone(),
                Arc::clone(&self.settings),
                queued,
                wanted,
                reports.clone(),
            ));
        }
    }

    fn handle(
        &mut self,
        report: Report,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        match report {
            Report::Discovered(result) => self.handle_discovered(result, reports, jobs),
            Report::Head(workspace, head) => {
                if self.state.is_polled(&workspace) {
                    let stretch = self.schedule.stretch(&workspace, JobKind::Head);
                    let duration = self.schedule.last_duration(&workspace, JobKind::Head);
                    self.state
                        .merge_head(&workspace, *head, unix_now(), duration, stretch);
                }
            }
            Report::Ended(ended) => self.handle_ended(ended, reports, jobs),
        }
        if !self.ready {
            self.ready = self.is_ready();
        }
    }

    /// Discovery ended: new workspaces (or the very first list) are polled at once, on the
    /// tick that started the discovery and in its round.
    fn handle_discovered(
        &mut self,
        result: Result<(Vec<String>, ApiVersion), UpstreamError>,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        let membership = self.discovery.take().unwrap_or(Membership::Outside);
        match result {
            Ok((names, version)) => {
                self.state.discovery_succeeded(version, unix_now());
                let selected =
                    select_workspaces(names, &self.settings.workspaces, self.settings.shard);
                self.set_workspaces(selected);
                self.start_due(membership, reports, jobs);
            }
            Err(error) => self.state.discovery_failed(&error),
        }
        self.left_round(membership);
    }

    /// A job ended: its outcome is merged, its class has room for the next, and a first status
    /// outcome starts the workspace's work units (in the status job's round).
    fn handle_ended(
        &mut self,
        ended: Ended,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        let now = unix_now();
        let Ended {
            job,
            busy,
            duration,
            outcome,
        } = ended;
        let (workspace, kind) = (job.workspace.as_str(), job.kind);
        self.queue.ended(kind);
        // The period starts now and follows this run's busy time.
        self.schedule.finished(workspace, kind, busy, duration);
        let stretch = self.schedule.stretch(workspace, kind);
        if self.state.is_polled(workspace) {
            match outcome {
                Some(Outcome::Status(outcome)) => {
                    let first = !self.state.has_outcomes(workspace, false);
                    self.state.merge_status(outcome, now, stretch);
                    if first {
                        let version = self.state.generation().version();
                        self.start_work_units(workspace, version, job.membership, reports, jobs);
                    }
                }
                Some(Outcome::Head(head)) => self
                    .state
                    .merge_head(workspace, *head, now, duration, stretch),
                Some(Outcome::Walk(walk)) => self
                    .state
                    .merge_walk(workspace, walk, now, duration, stretch),
                None => {}
            }
        }
        self.left_round(job.membership);
        self.launch_queued(reports, jobs);
    }

    /// A job or discovery of `membership` reported: when it was the open round's last, the
    /// round's duration is the poll duration.
    fn left_round(&mut self, membership: Membership) {
        if let Some(duration) = self.rounds.left(membership, Instant::now()) {
            self.state.cycle_done(duration);
        }
    }

    /// Ready once every workspace has had its first status outcome and, when walked, its
    /// first complete walk (or failure) — or max staleness after start, whichever comes first,
    /// so a huge first walk does not keep the exporter unready.
    /// Runs at every report until ready, so it resumes where the last call stopped: outcomes
    /// only accumulate (the cursor restarts when the workspaces or the walk plan change).
    fn is_ready(&mut self) -> bool {
        let workspaces = self.state.workspaces();
        if workspaces.is_empty() {
            return self.started.elapsed() >= self.settings.poll.max_staleness;
        }
        let walks = self.state.generation().work_units_available() != Some(false);
        while let Some(workspace) = workspaces.get(self.ready_cursor) {
            if !self
                .state
                .has_outcomes(workspace, walks && self.walk_plan.contains(workspace))
            {
                return self.started.elapsed() >= self.settings.poll.max_staleness;
            }
            self.ready_cursor += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_renderings_publish_at_most_every_250_ms() {
        assert_eq!(publish_gap_after(Duration::ZERO), MIN_PUBLISH_GAP);
        assert_eq!(
            publish_gap_after(Duration::from_millis(20)),
            MIN_PUBLISH_GAP
        );
    }

    #[test]
    fn slow_renderings_take_at_most_a_tenth_of_the_time() {
        assert_eq!(
            publish_gap_after(Duration::from_millis(80)),
            Duration::from_millis(800)
        );
    }
}
