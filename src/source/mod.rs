//! The two sources of queue numbers, siblings on one shared bookkeeping room:
//!
//! - [`api`]: Honcho's HTTP API (`poll.source: api`, the default): discovery, queue/status,
//!   the work-units walk, generation detection, per-job scheduling.
//! - [`postgres`]: Honcho's database (`poll.source: postgres`): one read-only pass per cycle.
//!
//! Shared here, so both keep one rule each: [`bookkeeping`] (health logged once per change,
//! the staleness stamp, the error/cycle/cap counters), [`selection`] (which workspaces this
//! replica exports) and the publication helpers below (the initial publication, handing a
//! cycle's view to the server). Each source keeps only what is its own: I/O, scheduling,
//! mapping onto the [`Snapshot`]. The sources import nothing from each other.

pub mod api;
pub mod bookkeeping;
pub mod postgres;
pub mod selection;

use std::sync::Arc;

use crate::config::{Settings, Source};
use crate::publication::{Published, SharedPublished, SnapshotSource};
use crate::snapshot::{ExporterStats, PostgresStats, Snapshot};
use crate::verdict::Criteria;

/// The publication served before a source's first cycle: only the exporter's own metrics (and,
/// for the database source, its `up{upstream="postgres"} 0`).
pub fn initial_publication(settings: &Settings) -> Published {
    let postgres = match settings.source {
        Source::Api => None,
        Source::Postgres => Some(PostgresStats::default()),
    };
    let snapshot = Snapshot {
        exporter: ExporterStats {
            poll_interval: settings.poll.interval,
            postgres,
            ..ExporterStats::default()
        },
        ..Snapshot::default()
    };
    Published::render(snapshot, false).judged_by(Criteria::of(settings))
}

/// Replaces what the server serves with `view` as of `now`, judging the verdicts with
/// `settings`' thresholds over the history the publication carries.
pub fn publish(
    published: &SharedPublished,
    view: Arc<dyn SnapshotSource>,
    now: f64,
    ready: bool,
    settings: &Settings,
) {
    crate::publication::publish(published, view, now, ready, settings);
}
