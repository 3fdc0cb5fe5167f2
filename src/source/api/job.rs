//! The per-job I/O: what each job asks Honcho and what it reports back to the loop. A job
//! runs as its own task and owns nothing shared: it gets a client, the settings and its inputs,
//! and sends one [`Report`] when it ends (a full walk also sends its first page as the head).
//! No scheduling and no state here: when a job runs is [`super::schedule`]'s rule, what its
//! result means is [`super::state`]'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::config::{GenerationOverride, Settings};
use crate::honcho::types::parse_timestamp;
use crate::honcho::{ApiVersion, Client, Endpoint, StatusFilter, UpstreamError, measure_busy};
use crate::publication::unix_now;
use crate::snapshot::{WorkUnitAggregator, summarize_status};

use super::queue::QueuedJob;
use super::schedule::JobKind;
use super::state::{Head, StatusOutcome, WalkResult};

/// What a job reports.
pub enum Report {
    /// Discovery ended: the names, on the version that answered.
    Discovered(Result<(Vec<String>, ApiVersion), UpstreamError>),
    /// The head of one workspace's walk, sent by a full walk after its first page.
    Head(String, Box<Result<Head, UpstreamError>>),
    /// A job ended.
    Ended(Ended),
}

/// A job ended after `duration`, Honcho busy `busy` for it.
pub struct Ended {
    /// The job, as it was queued.
    pub job: QueuedJob,
    /// How long Honcho worked for it.
    pub busy: Duration,
    /// Its wall time.
    pub duration: Duration,
    /// What it found; `None`: it panicked.
    pub outcome: Option<Outcome>,
}

/// What a job found.
pub enum Outcome {
    /// queue/status (+ scopes).
    Status(StatusOutcome),
    /// The head of the walk.
    Head(Box<Result<Head, UpstreamError>>),
    /// A full walk.
    Walk(WalkResult),
}

/// Runs discovery and reports it.
pub async fn run_discovery(
    client: Client,
    preferred: ApiVersion,
    detects: bool,
    reports: mpsc::UnboundedSender<Report>,
) {
    let result = discover(&client, preferred, detects).await;
    let _ = reports.send(Report::Discovered(result));
}

/// Runs one job to its end and reports it. A bug must not end polling for good: a panicking
/// job is logged and reported without an outcome (its schedule is freed, and the last good
/// values stay until they go stale).
pub async fn run_job(
    client: Client,
    settings: Arc<Settings>,
    job: QueuedJob,
    wanted: HashSet<String>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let started = Instant::now();
    let work = {
        let reports = reports.clone();
        let name = job.workspace.clone();
        let (kind, version) = (job.kind, job.version);
        async move {
            match kind {
                JobKind::Status => {
                    Outcome::Status(poll_status(&client, &settings, name, version).await)
                }
                JobKind::Head => Outcome::Head(Box::new(
                    fetch_head(&client, &settings, &name, wanted).await,
                )),
                JobKind::Walk => {
                    Outcome::Walk(walk(&client, &settings, &name, wanted, &reports).await)
                }
            }
        }
    };
    let (result, busy) = measure_busy(std::panic::AssertUnwindSafe(work).catch_unwind()).await;
    if let Err(panic) = &result {
        let message = panic_message(panic.as_ref());
        tracing::error!(workspace = %job.workspace, job = job.kind.as_str(), panic = %message, "a poll job panicked; polling goes on");
    }
    let _ = reports.send(Report::Ended(Ended {
        job,
        busy,
        duration: started.elapsed(),
        outcome: result.ok(),
    }));
}

/// The text a panic carried (`panic!("…")` or a formatted one); empty for any other payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
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
            if !scope.applies_to(&name) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_is_read_from_a_literal_or_a_formatted_payload() {
        let literal = std::panic::catch_unwind(|| panic!("a literal")).expect_err("panics");
        assert_eq!(panic_message(literal.as_ref()), "a literal");
        let formatted = std::panic::catch_unwind(|| panic!("page {}", 3)).expect_err("panics");
        assert_eq!(panic_message(formatted.as_ref()), "page 3");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).expect_err("panics");
        assert_eq!(panic_message(other.as_ref()), "");
    }
}
