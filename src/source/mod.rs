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
    Published::render(snapshot, false)
}

/// Replaces what the server serves with `view` as of `now`.
pub fn publish(published: &SharedPublished, view: Arc<dyn SnapshotSource>, now: f64, ready: bool) {
    let publication = Arc::new(Published::from_source(view, now, ready));
    *published
        .write()
        .expect("the publication lock is never poisoned: nothing panics while holding it") =
        publication;
}
