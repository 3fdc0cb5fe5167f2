//! The two sources of queue numbers, siblings on one shared bookkeeping room:
//!
//! - [`api`]: Honcho's HTTP API (`poll.source: api`, the default): discovery, queue/status,
//!   the work-units walk, generation detection, per-job scheduling.
//! - [`postgres`]: Honcho's database (`poll.source: postgres`): one read-only pass per cycle.
//!
//! Shared here, so both keep one rule each: [`bookkeeping`] (health logged once per change,
//! the staleness stamp, the error/cycle/cap counters), [`selection`] (which workspaces this
//! replica exports) and the publication helpers below (the initial publication, handing a
//! cycle's view to the server through the workspace ceiling). Each source keeps only what is
//! its own: I/O, scheduling, mapping onto the [`Snapshot`]. The sources import nothing from
//! each other.
//!
//! [`publish`] is the one path both sources publish through, so the ceiling on cardinality
//! (`workspaces.max_exported`, the `metrics.*` detail switches; the pure rules are
//! [`crate::snapshot::select_exported`], [`crate::snapshot::roll_up`],
//! [`crate::snapshot::strip_detail`]) is applied here, once, around the source's view: the
//! rendered publication holds only what is exported.

pub mod api;
pub mod bookkeeping;
pub mod postgres;
pub mod selection;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::config::{Settings, Source};
use crate::publication::{Published, SharedPublished, SnapshotSource};
use crate::snapshot::{
    CAPPED_WORKSPACES, DetailSwitches, ExporterStats, PostgresStats, RollupMemory, RollupStats,
    Snapshot, roll_up, select_exported, strip_detail,
};
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

/// Replaces what the server serves with `view` as of `now`, through the workspace ceiling and
/// the detail switches of `settings` (what the previous publication exported in full feeds the
/// ceiling's hysteresis), judging the verdicts with `settings`' thresholds over the history the
/// publication carries.
pub fn publish(
    published: &SharedPublished,
    settings: &Settings,
    view: Arc<dyn SnapshotSource>,
    now: f64,
    ready: bool,
) {
    let previous = crate::publication::current(published).ceiling.clone();
    let (ceiling, memory) = Ceiling::decide(view, settings, &previous, now);
    crate::publication::publish(published, Arc::new(ceiling), now, ready, settings, memory);
}

/// A source's view seen through the workspace ceiling: the workspaces chosen at publication
/// time exported in full, the rest folded into `__other__`, the detail switched off stripped.
/// The choice is made once per publication; a re-render at scrape time (a value passed its
/// bound) applies the same choice to what is still servable.
struct Ceiling {
    inner: Arc<dyn SnapshotSource>,
    /// The workspaces exported in full; `None`: all of them (no ceiling, or under it).
    exported: Option<Arc<BTreeSet<String>>>,
    switches: DetailSwitches,
    /// The ceiling's counter, once it engaged (its numbers are exported from then on).
    capped_total: Option<u64>,
    /// The view at the publication's own `now`, read to choose, kept for its first render.
    first: Mutex<Option<(f64, Snapshot)>>,
}

impl Ceiling {
    /// Chooses what `view` exports at `now`; returns the ceiling and what the next
    /// publication must remember.
    fn decide(
        view: Arc<dyn SnapshotSource>,
        settings: &Settings,
        previous: &RollupMemory,
        now: f64,
    ) -> (Ceiling, RollupMemory) {
        let snapshot = view.snapshot_at(now);
        let max_exported = settings.export.max_exported_workspaces;
        let exported = select_exported(&snapshot, max_exported, &previous.exported);
        let folded = snapshot
            .folded
            .as_ref()
            .map_or(0, |folded| folded.workspaces);
        let rolled_up = exported.as_ref().map_or(folded, |set| {
            let beyond = snapshot
                .workspaces
                .keys()
                .filter(|name| !set.contains(*name))
                .count() as u64;
            beyond + folded
        });
        let mut memory = previous.clone();
        memory.exported = Arc::new(exported.clone().unwrap_or_default());
        memory.engaged |= rolled_up > 0;
        let cycle = snapshot.exporter.poll_cycles;
        if memory.counted_cycle != Some(cycle) {
            memory.capped_total += rolled_up;
            memory.counted_cycle = Some(cycle);
        }
        let switches = DetailSwitches {
            session_items: settings.export.session_items,
            session_info: settings.export.session_info,
            work_unit_detail: settings.export.work_unit_detail,
        };
        let ceiling = Ceiling {
            inner: view,
            exported: exported.map(Arc::new),
            switches,
            capped_total: memory.engaged.then_some(memory.capped_total),
            first: Mutex::new(Some((now, snapshot))),
        };
        (ceiling, memory)
    }

    fn apply(&self, mut snapshot: Snapshot) -> Snapshot {
        strip_detail(&mut snapshot, self.switches);
        let polled = snapshot.polled_workspaces();
        let rolled_up = match &self.exported {
            Some(exported) => roll_up(&mut snapshot, exported),
            // No ceiling: only what a source folded itself (none does without one).
            None if snapshot.folded.is_some() => {
                let all: BTreeSet<String> = snapshot.workspaces.keys().cloned().collect();
                roll_up(&mut snapshot, &all)
            }
            None => 0,
        };
        if let Some(total) = self.capped_total {
            snapshot.exporter.rollup = Some(RollupStats { polled, rolled_up });
            snapshot.exporter.capped.insert(CAPPED_WORKSPACES, total);
        }
        snapshot
    }
}

impl SnapshotSource for Ceiling {
    fn snapshot_at(&self, now: f64) -> Snapshot {
        let first = self
            .first
            .lock()
            .expect("the first-view lock is never poisoned: taking it does not panic")
            .take_if(|(at, _)| *at == now);
        let snapshot = match first {
            Some((_, snapshot)) => snapshot,
            None => self.inner.snapshot_at(now),
        };
        self.apply(snapshot)
    }

    fn next_expiry(&self, now: f64) -> Option<f64> {
        self.inner.next_expiry(now)
    }
}
