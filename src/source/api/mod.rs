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
//! - this file: the loop, spawning jobs and the per-job I/O (what to ask Honcho);
//! - [`schedule`]: when each job may start (the duty rule; pure);
//! - [`selection`]: which workspaces this replica polls (pure);
//! - [`generation`]: the one generation-detection type (version, split, work-units), judged
//!   from several workspaces' answers, never one;
//! - [`state`]: the pure merge of outcomes, health, counters, staleness bounds and the
//!   servable snapshot;
//! - publication lives in [`crate::publication`], so the server never imports the poller.
//!
//! Failures never end the loop: they become `honcho_exporter_up 0`, an error counter with a
//! bounded reason and a log line on the transition. Only successes are stored, so a failed
//! result is never served as good, and a stored success expires at its bound (checked at
//! scrape time).

pub mod generation;
pub mod schedule;
pub mod state;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{GenerationOverride, Settings};
use crate::honcho::types::parse_timestamp;
use crate::honcho::{ApiVersion, Client, Endpoint, StatusFilter, UpstreamError, measure_busy};
use crate::publication::{SharedPublished, unix_now};
use crate::snapshot::{WorkUnitAggregator, summarize_status};

use crate::source::selection::select_workspaces;
use schedule::{JobKind, Schedule};
use state::{Head, PollState, Servable, StatusOutcome, WalkResult};

/// Shortest time between two publications (re-renders); longer when rendering is slow, so that
/// rendering takes at most a tenth of the poller's time.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(250);

/// What a job reports.
enum Report {
    /// Discovery ended: the names, on the version that answered.
    Discovered(Result<(Vec<String>, ApiVersion), UpstreamError>),
    /// The head of one workspace's walk, sent by a full walk after its first page.
    Head(String, Box<Result<Head, UpstreamError>>),
    /// A job ended after `duration`, Honcho busy `busy` for it; `None`: it panicked.
    Ended {
        workspace: String,
        kind: JobKind,
        busy: Duration,
        duration: Duration,
        outcome: Option<Outcome>,
    },
}

/// What a job found.
enum Outcome {
    /// queue/status (+ scopes).
    Status(StatusOutcome),
    /// The head of the walk.
    Head(Box<Result<Head, UpstreamError>>),
    /// A full walk.
    Walk(WalkResult),
}

/// The poll loop.
pub struct Poller {
    settings: Arc<Settings>,
    client: Client,
    state: PollState,
    schedule: Schedule,
    published: SharedPublished,
    /// Workspaces walked this round (for readiness).
    walk_plan: HashSet<String>,
    discovery_running: bool,
    ready: bool,
    started: Instant,
    /// When the current round of status and head polls started.
    round: Option<Instant>,
    /// Jobs waiting for a task, per [`JobClass`]: a job is queued when due and becomes a task
    /// when its class has room, so 10,000 due workspaces are 10,000 small queue entries, not
    /// 10,000 tasks each holding a walk's buffers while waiting for an in-flight slot.
    queued: [VecDeque<(String, JobKind, ApiVersion)>; 2],
    /// Tasks running per [`JobClass`].
    launched: [usize; 2],
    /// Status and head jobs queued or running: the round ends when none is left.
    open_short: usize,
    /// Workspaces before this index in the polled list have had their first outcomes
    /// (readiness is checked from here on, not from the start at every report).
    ready_cursor: usize,
}

/// Status and head polls (a request or two each) and full walks (up to the page cap) have
/// separate task budgets ([`Poller::task_budget`]), so short polls never wait for a long walk
/// to end before starting.
#[derive(Debug, Clone, Copy)]
enum JobClass {
    Short = 0,
    Walk = 1,
}

impl JobClass {
    fn of(kind: JobKind) -> Self {
        match kind {
            JobKind::Status | JobKind::Head => JobClass::Short,
            JobKind::Walk => JobClass::Walk,
        }
    }
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
        Poller {
            settings,
            client,
            state,
            schedule,
            published,
            walk_plan: HashSet::new(),
            discovery_running: false,
            ready: false,
            started: Instant::now(),
            round: None,
            queued: [VecDeque::new(), VecDeque::new()],
            launched: [0, 0],
            open_short: 0,
            ready_cursor: 0,
        }
    }

    /// Tasks a class may run at once. Requests in flight are capped by `poll.concurrency`
    /// anyway, but a job also waits out its retries' backoff without a request in flight, so
    /// the budgets leave room for jobs of failing workspaces: short polls are small (64 of
    /// them, or 8 per request slot), walks hold their buffers (2 per request slot).
    fn task_budget(&self, class: JobClass) -> usize {
        let concurrency = self.settings.poll.concurrency.max(1);
        match class {
            JobClass::Short => (8 * concurrency).max(64),
            JobClass::Walk => 2 * concurrency,
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
                    publish_gap = MIN_PUBLISH_GAP.max(rendering.elapsed() * 10);
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

    /// One interval tick: discovery, then every due job.
    fn tick(
        &mut self,
        now: Instant,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        let settings = Arc::clone(&self.settings);
        if settings.workspaces.static_list.is_empty() {
            if !self.discovery_running {
                self.discovery_running = true;
                let client = self.client.clone();
                let preferred = self.state.generation().version();
                let detects = self.state.generation().detects();
                let reports = reports.clone();
                jobs.spawn(async move {
                    let result = discover(&client, preferred, detects).await;
                    let _ = reports.send(Report::Discovered(result));
                });
            }
            if self.state.workspaces().is_empty() {
                // Nothing known yet: the jobs start when discovery answers (the round ends
                // with it if it fails).
                self.round = Some(now);
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
        self.start_due(now, reports, jobs);
        self.round = Some(now);
    }

    fn set_workspaces(&mut self, selected: Vec<String>) {
        self.ready_cursor = 0;
        self.schedule.retain(&selected);
        self.state.set_workspaces(selected);
    }

    /// Starts every job that is due at the tick `now`.
    fn start_due(
        &mut self,
        now: Instant,
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
            if self.schedule.is_due(workspace, JobKind::Status, now) {
                self.spawn(workspace, JobKind::Status, version, now, reports, jobs);
            }
        }
        for workspace in &workspaces {
            self.start_work_units(workspace, version, now, reports, jobs);
        }
    }

    /// Starts the full walk of `workspace`, or its head, when due. Not before the workspace's
    /// first status outcome: the walk keeps the names of the sessions that status exports, so a
    /// walk started without it would publish no `session_info` until the next walk, which the
    /// duty rule may put far away. The status outcome starts it ([`Self::handle`]).
    fn start_work_units(
        &mut self,
        workspace: &str,
        version: ApiVersion,
        now: Instant,
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
        // running or waiting for its duty period.
        if self.schedule.is_due(workspace, JobKind::Walk, now) {
            self.spawn(workspace, JobKind::Walk, version, now, reports, jobs);
        } else if self.schedule.is_due(workspace, JobKind::Head, now) {
            self.spawn(workspace, JobKind::Head, version, now, reports, jobs);
        }
    }

    /// Marks the job started and queues it for a task.
    fn spawn(
        &mut self,
        workspace: &str,
        kind: JobKind,
        version: ApiVersion,
        now: Instant,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        self.schedule.started(workspace, kind, now);
        if matches!(JobClass::of(kind), JobClass::Short) {
            self.open_short += 1;
        }
        self.queued[JobClass::of(kind) as usize].push_back((workspace.to_string(), kind, version));
        self.launch_queued(reports, jobs);
    }

    /// Starts queued jobs while their class has room, short polls first.
    fn launch_queued(&mut self, reports: &mpsc::UnboundedSender<Report>, jobs: &mut JoinSet<()>) {
        for class in [JobClass::Short, JobClass::Walk] {
            while self.launched[class as usize] < self.task_budget(class) {
                let Some((workspace, kind, version)) = self.queued[class as usize].pop_front()
                else {
                    break;
                };
                self.launched[class as usize] += 1;
                self.launch(&workspace, kind, version, reports, jobs);
            }
        }
    }

    fn launch(
        &mut self,
        workspace: &str,
        kind: JobKind,
        version: ApiVersion,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        let client = self.client.clone();
        let settings = Arc::clone(&self.settings);
        let reports = reports.clone();
        let name = workspace.to_string();
        let wanted = self.state.wanted_sessions(workspace);
        jobs.spawn(async move {
            let started = Instant::now();
            let job = {
                let reports = reports.clone();
                let name = name.clone();
                async move {
                    match kind {
                        JobKind::Status => {
                            Outcome::Status(poll_status(&client, &settings, name, version).await)
                        }
                        JobKind::Head => {
                            Outcome::Head(Box::new(fetch_head(&client, &settings, &name, wanted).await))
                        }
                        JobKind::Walk => {
                            Outcome::Walk(walk(&client, &settings, &name, wanted, &reports).await)
                        }
                    }
                }
            };
            // A bug must not end polling for good: a panicking job is logged, its schedule
            // freed, and the last good values stay until they go stale.
            let (result, busy) = measure_busy(std::panic::AssertUnwindSafe(job).catch_unwind()).await;
            if let Err(panic) = &result {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(workspace = %name, job = kind.as_str(), panic = %message, "a poll job panicked; polling goes on");
            }
            let _ = reports.send(Report::Ended {
                workspace: name,
                kind,
                busy,
                duration: started.elapsed(),
                outcome: result.ok(),
            });
        });
    }

    fn handle(
        &mut self,
        report: Report,
        reports: &mpsc::UnboundedSender<Report>,
        jobs: &mut JoinSet<()>,
    ) {
        let now = unix_now();
        match report {
            Report::Discovered(result) => {
                self.discovery_running = false;
                match result {
                    Ok((names, version)) => {
                        self.state.discovery_succeeded(version, now);
                        let first = self.state.workspaces().is_empty();
                        let selected = select_workspaces(
                            names,
                            &self.settings.workspaces,
                            self.settings.shard,
                        );
                        self.set_workspaces(selected);
                        // New workspaces (or the very first list) are polled at once.
                        let tick = Instant::now();
                        self.start_due(tick, reports, jobs);
                        if first {
                            self.round = Some(tick);
                        }
                    }
                    Err(error) => self.state.discovery_failed(&error),
                }
                self.round_progress();
            }
            Report::Head(workspace, head) => {
                if self.state.is_polled(&workspace) {
                    let stretch = self.schedule.stretch(&workspace, JobKind::Head);
                    let duration = self.schedule.last_duration(&workspace, JobKind::Head);
                    self.state
                        .merge_head(&workspace, *head, now, duration, stretch);
                }
            }
            Report::Ended {
                workspace,
                kind,
                busy,
                duration,
                outcome,
            } => {
                let class = JobClass::of(kind) as usize;
                self.launched[class] = self.launched[class].saturating_sub(1);
                if matches!(JobClass::of(kind), JobClass::Short) {
                    self.open_short = self.open_short.saturating_sub(1);
                }
                // The period starts now and follows this run's busy time.
                self.schedule.finished(&workspace, kind, busy, duration);
                let stretch = self.schedule.stretch(&workspace, kind);
                if self.state.is_polled(&workspace) {
                    match outcome {
                        Some(Outcome::Status(outcome)) => {
                            let first = !self.state.has_outcomes(&workspace, false);
                            self.state.merge_status(outcome, now, stretch);
                            if first {
                                let version = self.state.generation().version();
                                let tick = Instant::now();
                                self.start_work_units(&workspace, version, tick, reports, jobs);
                            }
                        }
                        Some(Outcome::Head(head)) => self
                            .state
                            .merge_head(&workspace, *head, now, duration, stretch),
                        Some(Outcome::Walk(walk)) => self
                            .state
                            .merge_walk(&workspace, walk, now, duration, stretch),
                        None => {}
                    }
                }
                self.round_progress();
                self.launch_queued(reports, jobs);
            }
        }
        if !self.ready {
            self.ready = self.is_ready();
        }
    }

    /// The round of jobs started at the last tick: when all have ended, its duration is the
    /// poll duration.
    fn round_progress(&mut self) {
        if let Some(started) = self.round
            && !self.discovery_running
        {
            // Status and head jobs still queued or running (full walks may span many rounds:
            // they are not waited for). A counter: this runs at every report.
            if self.open_short == 0 {
                self.state.cycle_done(started.elapsed());
                self.round = None;
            }
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

async fn discover(
    client: &Client,
    preferred: ApiVersion,
    detects: bool,
) -> Result<(Vec<String>, ApiVersion), UpstreamError> {
    let mut answered_on = preferred;
    let mut result = client.list_workspaces(preferred).await;
    if let Err(error) = &result
        && error.is_not_found()
        && detects
    {
        answered_on = other_version(preferred);
        result = client.list_workspaces(answered_on).await;
    }
    result.map(|names| (names, answered_on))
}

fn other_version(version: ApiVersion) -> ApiVersion {
    match version {
        ApiVersion::V2 => ApiVersion::V3,
        ApiVersion::V3 => ApiVersion::V2,
    }
}

async fn poll_status(
    client: &Client,
    settings: &Settings,
    name: String,
    version: ApiVersion,
) -> StatusOutcome {
    let unfiltered = StatusFilter::default();
    let mut answered_on = version;
    let mut status = client
        .fetch_status(version, &name, &unfiltered, Endpoint::Status)
        .await;
    if let Err(error) = &status
        && error.is_not_found()
        && settings.honcho.api_generation == GenerationOverride::Auto
    {
        let other = other_version(version);
        let retried = client
            .fetch_status(other, &name, &unfiltered, Endpoint::Status)
            .await;
        if retried.is_ok() {
            answered_on = other;
        }
        status = retried;
    }
    let status = status.map(|status| summarize_status(status, settings.sessions.max_per_workspace));
    let mut scopes = Vec::new();
    if status.is_ok() {
        for scope in &settings.scopes {
            if !scope.workspaces.is_empty() && !scope.workspaces.contains(&name) {
                continue;
            }
            let filter = StatusFilter {
                observer_id: scope.observer_id.clone(),
                sender_id: scope.sender_id.clone(),
                session_id: scope.session_id.clone(),
            };
            let result = client
                .fetch_status(answered_on, &name, &filter, Endpoint::Scope)
                .await
                .map(|status| status.counts);
            scopes.push((scope.name.clone(), result));
        }
    }
    StatusOutcome {
        workspace: name,
        version: answered_on,
        status,
        scopes,
    }
}

/// Aggregates one head page and remembers its boundary.
struct HeadBuilder {
    aggregator: WorkUnitAggregator,
    total: u64,
    boundary: Option<f64>,
}

impl HeadBuilder {
    fn new(settings: &Settings, wanted: HashSet<String>) -> Self {
        HeadBuilder {
            aggregator: WorkUnitAggregator::new(
                unix_now(),
                settings.classify.overdue_after,
                settings.work_units.detail_limit,
                wanted,
            ),
            total: 0,
            boundary: None,
        }
    }

    fn add(&mut self, page: &crate::honcho::types::WorkUnitsPage<'_>) {
        self.aggregator.add_page(page);
        self.total = page.total;
        self.boundary = page
            .items
            .iter()
            .filter_map(|row| parse_timestamp(&row.oldest_item_at))
            .reduce(f64::max);
    }

    fn finish(self, complete: bool) -> Head {
        Head {
            aggregate: self.aggregator.finish(),
            total: self.total,
            boundary: self.boundary,
            complete,
        }
    }
}

/// The head of the walk: its first page only.
async fn fetch_head(
    client: &Client,
    settings: &Settings,
    name: &str,
    wanted: HashSet<String>,
) -> Result<Head, UpstreamError> {
    let mut head = HeadBuilder::new(settings, wanted);
    let outcome = client
        .walk_work_units(name, settings.work_units.page_size, 1, |page| {
            head.add(page)
        })
        .await?;
    Ok(head.finish(!outcome.truncated))
}

/// The full walk; after its first page it reports that page as the head.
async fn walk(
    client: &Client,
    settings: &Settings,
    name: &str,
    wanted: HashSet<String>,
    reports: &mpsc::UnboundedSender<Report>,
) -> WalkResult {
    let mut aggregator = WorkUnitAggregator::new(
        unix_now(),
        settings.classify.overdue_after,
        settings.work_units.detail_limit,
        wanted.clone(),
    );
    let mut head = Some(HeadBuilder::new(settings, wanted));
    let result = client
        .walk_work_units(
            name,
            settings.work_units.page_size,
            settings.work_units.max_pages,
            |page| {
                aggregator.add_page(page);
                if let Some(mut first) = head.take()
                    && page.next_page.is_some()
                {
                    first.add(page);
                    let _ = reports.send(Report::Head(
                        name.to_string(),
                        Box::new(Ok(first.finish(false))),
                    ));
                }
            },
        )
        .await;
    match result {
        Ok(outcome) => WalkResult::Done(Box::new((aggregator.finish(), outcome))),
        Err(error) => WalkResult::Failed(error),
    }
}
