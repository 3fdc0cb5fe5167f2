//! Maps a [`Snapshot`] onto metric families. Pure; the only place metric names, help texts and
//! label names live. Iterates sorted maps only, so output is deterministic.
//!
//! Two parts: [`poll_families`] is rendered once per poll and cached as bytes;
//! [`age_families`] holds what must be computed at scrape time (ages from `now`): its samples
//! carry timestamps, turned into ages by [`age`] when a scrape renders them.
//!
//! Both can be built for a [`Part`] of a snapshot (the exporter-wide samples and/or a run of
//! workspaces) with the same families in the same order, so a large snapshot is rendered a few
//! workspaces at a time: within every family the exporter-wide samples come first, then each
//! workspace's in name order, so concatenating the parts' samples family by family gives the
//! whole snapshot's bytes.
//!
//! One file per group of metrics: `queue_status` (items by state, session and scope),
//! `work_units` (the walk's cells, problem-unit detail and bookkeeping), `deriver` (Honcho's
//! deriver settings), `exporter` (the exporter's self-metrics), `source` (the source in use and
//! the database source's numbers) and `ages` (computed at scrape time). This file holds what
//! they share: [`Part`], the label helpers, and the order the groups are rendered in.

mod ages;
mod deriver;
mod exporter;
mod queue_status;
mod source;
mod work_units;

pub use ages::{age, age_families, age_millis, scrape_families};

use crate::metric::MetricFamily;
use crate::snapshot::{Snapshot, WorkspaceSnapshot};

/// The verdict family (`honcho_queue_verdict`) is built from the publication's verdicts, not
/// from a snapshot: its builder lives with the verdicts, and the publication renders it after
/// the poll families.
pub use crate::verdict::metric::{VERDICT_FAMILY, verdict_family};
use deriver::deriver_families;
use exporter::exporter_families;
use queue_status::queue_status_families;
use work_units::work_unit_families;

type Labels = Vec<(&'static str, String)>;

/// The label naming which Honcho API endpoint (or, later, data source) a poll, request or error
/// belongs to: `status`, `work_units`, `discovery`, `scope`. Named `upstream`, not `endpoint`:
/// prometheus-operator attaches an `endpoint` target label to every series it scrapes, and with
/// the default `honorLabels: false` ours would be renamed `exported_endpoint`. No label of ours
/// may share a name with a target label (`job`, `instance`, `endpoint`, `namespace`, `pod`,
/// `service`, `container`); `tests/integration/golden.rs` holds every family to that.
pub const UPSTREAM_LABEL: &str = "upstream";

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(name, value)| (*name, (*value).to_string()))
        .collect()
}

/// What a family builder covers: a run of a snapshot's workspaces, and (for one part of a
/// snapshot only) the exporter-wide samples.
#[derive(Debug)]
pub struct Part<'a> {
    snapshot: &'a Snapshot,
    workspaces: Vec<(&'a str, &'a WorkspaceSnapshot)>,
    global: bool,
}

impl<'a> Part<'a> {
    /// All of `snapshot`.
    pub fn whole(snapshot: &'a Snapshot) -> Self {
        Part {
            snapshot,
            workspaces: snapshot
                .workspaces
                .iter()
                .map(|(name, data)| (name.as_str(), data))
                .collect(),
            global: true,
        }
    }

    /// `snapshot` in parts of at most `workspaces` workspaces each (at least one part; the
    /// first one carries the exporter-wide samples).
    pub fn split(snapshot: &'a Snapshot, workspaces: usize) -> Vec<Self> {
        let all = Part::whole(snapshot).workspaces;
        let mut parts: Vec<Part<'a>> = all
            .chunks(workspaces.max(1))
            .enumerate()
            .map(|(index, run)| Part {
                snapshot,
                workspaces: run.to_vec(),
                global: index == 0,
            })
            .collect();
        if parts.is_empty() {
            parts.push(Part {
                snapshot,
                workspaces: Vec::new(),
                global: true,
            });
        }
        parts
    }
}

/// Everything rendered once per poll.
pub fn poll_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    poll_families_of(&Part::whole(snapshot))
}

/// [`poll_families`] for one part of a snapshot: the same families, only that part's samples.
pub fn poll_families_of(part: &Part<'_>) -> Vec<MetricFamily> {
    let mut families = Vec::with_capacity(32);
    queue_status_families(part, &mut families);
    work_unit_families(part, &mut families);
    deriver_families(part, &mut families);
    exporter_families(part, &mut families);
    families
}

/// Drops the samples of exporter-wide families from a part that does not carry them.
fn global_only<'f>(part: &Part<'_>, families: impl IntoIterator<Item = &'f mut MetricFamily>) {
    if !part.global {
        for family in families {
            family.samples.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{self, Format};

    fn rendered(snapshot: &Snapshot) -> String {
        let mut out = Vec::new();
        exposition::render(&poll_families(snapshot), Format::Text, &mut out);
        String::from_utf8(out).expect("UTF-8 exposition")
    }

    #[test]
    fn token_reload_errors_are_exported_by_reason_only_with_a_token_file() {
        let mut snapshot = Snapshot::default();
        assert!(!rendered(&snapshot).contains("token_reload_errors"));
        snapshot.exporter.token_reload_errors = Some(std::collections::BTreeMap::from([
            ("empty", 2),
            ("invalid", 0),
            ("unreadable", 1),
        ]));
        let text = rendered(&snapshot);
        for line in [
            "# TYPE honcho_exporter_token_reload_errors_total counter",
            "honcho_exporter_token_reload_errors_total{reason=\"empty\"} 2",
            "honcho_exporter_token_reload_errors_total{reason=\"invalid\"} 0",
            "honcho_exporter_token_reload_errors_total{reason=\"unreadable\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
