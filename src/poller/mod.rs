//! The poll loop. On its own timer (not per scrape): discover workspaces, then per workspace,
//! with bounded concurrency, queue/status (+ configured scopes) and the work-units walk; merge
//! the outcomes into the state; build a [`Snapshot`] that drops anything older than max
//! staleness; render it once and publish the bytes for the server.
//!
//! Rooms, one job each:
//! - this file: the loop and the per-workspace I/O (when to poll, what to ask Honcho);
//! - [`selection`]: which workspaces this replica polls (pure);
//! - [`generation`]: the one generation-detection type (version, split, work-units), judged
//!   from several workspaces' answers, never one;
//! - [`state`]: the pure merge of outcomes, health, counters, and the servable snapshot;
//! - publication lives in [`crate::publication`], so the server never imports the poller.
//!
//! Failures never end the loop: they become `honcho_exporter_up 0`, an error counter with a
//! bounded reason and a log line on the transition. Only successes are stored, so a failed
//! result is never served as good, and a stored success expires after max staleness.

pub mod generation;
pub mod selection;
pub mod state;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{FutureExt, StreamExt};

use crate::config::{GenerationOverride, Settings};
use crate::honcho::{ApiVersion, Client, Endpoint, StatusFilter, UpstreamError};
use crate::publication::{Published, SharedPublished, unix_now};
use crate::snapshot::{WorkUnitAggregator, summarize_status};

pub use selection::{select_workspaces, shard_of};
use state::{PollState, StatusOutcome, WalkResult};

/// The outcome of one workspace's polls in one cycle.
struct WorkspaceOutcome {
    status: StatusOutcome,
    /// `None`: not walked this cycle.
    walk: Option<WalkResult>,
}

/// The poll loop.
pub struct Poller {
    settings: Arc<Settings>,
    client: Client,
    state: PollState,
    published: SharedPublished,
}

impl Poller {
    /// A poller publishing into `published`.
    pub fn new(settings: Arc<Settings>, client: Client, published: SharedPublished) -> Self {
        let state = PollState::new(
            settings.honcho.api_generation,
            settings.poll.interval,
            settings.poll.max_staleness,
        );
        Poller {
            settings,
            client,
            state,
            published,
        }
    }

    /// Polls every interval until `shutdown` resolves; a cycle in flight is abandoned then.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.settings.poll.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            // A bug must not end polling for good: a panicking cycle is logged and the next
            // one runs (the publication keeps the last good cycle until it goes stale).
            let cycle = std::panic::AssertUnwindSafe(self.poll_once()).catch_unwind();
            tokio::select! {
                _ = &mut shutdown => return,
                result = cycle => {
                    if let Err(panic) = result {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|text| (*text).to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(panic = %message, "a poll cycle panicked; polling goes on");
                    }
                }
            }
        }
    }

    /// One complete cycle: poll, merge, build the snapshot, render, publish.
    pub async fn poll_once(&mut self) {
        let started = Instant::now();
        let workspaces = self.select_workspaces().await;
        let version = self.state.generation().version();
        let walk_plan: HashSet<String> = self
            .state
            .generation_mut()
            .walk_plan(&workspaces, self.settings.work_units.enabled)
            .into_iter()
            .collect();
        let client = &self.client;
        let settings = &self.settings;
        let outcomes: Vec<WorkspaceOutcome> =
            futures_util::stream::iter(workspaces.iter().cloned())
                .map(|name| {
                    let walk = walk_plan.contains(&name);
                    poll_workspace(client, settings, name, version, walk)
                })
                .buffer_unordered(settings.poll.concurrency.max(1))
                .collect()
                .await;
        let now = unix_now();
        for outcome in outcomes {
            let workspace = outcome.status.workspace.clone();
            self.state.merge_status(outcome.status, now);
            if let Some(walk) = outcome.walk {
                self.state.merge_walk(&workspace, walk, now);
            }
        }
        self.state.cycle_done(started.elapsed());
        let snapshot = self
            .state
            .snapshot(unix_now(), self.client.request_counts());
        let published = Arc::new(Published::render(snapshot, true));
        *self
            .published
            .write()
            .expect("the publication lock is never poisoned: nothing panics while holding it") =
            published;
    }

    /// The workspaces to poll this cycle: the static list or discovery, filtered by allow/deny
    /// and the shard, sorted. A failed discovery keeps the last known list.
    async fn select_workspaces(&mut self) -> Vec<String> {
        let settings = Arc::clone(&self.settings);
        let selection = &settings.workspaces;
        let names = if selection.static_list.is_empty() {
            match self.discover().await {
                Some(names) => names,
                None => self.state.workspaces().to_vec(),
            }
        } else {
            selection.static_list.clone()
        };
        let selected = select_workspaces(names, selection, settings.shard);
        self.state.set_workspaces(selected.clone());
        selected
    }

    async fn discover(&mut self) -> Option<Vec<String>> {
        let preferred = self.state.generation().version();
        let mut answered_on = preferred;
        let mut result = self.client.list_workspaces(preferred).await;
        if let Err(error) = &result
            && error.is_not_found()
            && self.state.generation().detects()
        {
            answered_on = other_version(preferred);
            result = self.client.list_workspaces(answered_on).await;
        }
        match result {
            Ok(names) => {
                self.state.discovery_succeeded(answered_on, unix_now());
                Some(names)
            }
            Err(error) => {
                self.state.discovery_failed(&error);
                None
            }
        }
    }
}

fn other_version(version: ApiVersion) -> ApiVersion {
    match version {
        ApiVersion::V2 => ApiVersion::V3,
        ApiVersion::V3 => ApiVersion::V2,
    }
}

async fn poll_workspace(
    client: &Client,
    settings: &Settings,
    name: String,
    version: ApiVersion,
    walk: bool,
) -> WorkspaceOutcome {
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
    // The walk does not depend on the status call: when status fails for another reason than a
    // missing route, the walk still runs, so `up{endpoint="work_units"}` says what it saw rather
    // than keeping last cycle's value. Only the session names wanted need the status.
    let status_route_missing = status.as_ref().is_err_and(UpstreamError::is_not_found);
    let walk = if walk && answered_on == ApiVersion::V3 && !status_route_missing {
        let wanted: HashSet<String> = status
            .as_ref()
            .map(|summary| {
                summary
                    .sessions
                    .iter()
                    .map(|row| row.session_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut aggregator = WorkUnitAggregator::new(
            unix_now(),
            settings.classify.overdue_after,
            settings.work_units.detail_limit,
            wanted,
        );
        let result = client
            .walk_work_units(
                &name,
                settings.work_units.page_size,
                settings.work_units.max_pages,
                |page| aggregator.add_page(page),
            )
            .await;
        Some(match result {
            Ok(outcome) => WalkResult::Done(Box::new((aggregator.finish(), outcome))),
            Err(error) => WalkResult::Failed(error),
        })
    } else {
        None
    };
    WorkspaceOutcome {
        status: StatusOutcome {
            workspace: name,
            version: answered_on,
            status,
            scopes,
        },
        walk,
    }
}
