//! What may be served at a given time: the [`Snapshot`] built from the poller's state (every
//! record minus the values past their bound), the next instant a value expires, and
//! [`Servable`], the state as published. Pure: every function takes `now`. Must not change the
//! state (merging outcomes is the parent module's job).

use std::collections::BTreeMap;

use crate::honcho::RequestCounts;
use crate::publication::SnapshotSource;
use crate::snapshot::{ExporterStats, Snapshot, WorkspaceSnapshot, merge_head};
use crate::source::bookkeeping::next_bound;

use super::{PollState, WorkspaceRecord};

impl PollState {
    /// What may be served at `now`: every record minus values past their bound.
    pub fn snapshot(&self, now: f64, requests: RequestCounts) -> Snapshot {
        self.snapshot_with(now, requests, None)
    }

    /// [`PollState::snapshot`] with the client's token reload errors.
    pub fn snapshot_with(
        &self,
        now: f64,
        requests: RequestCounts,
        token_reload_errors: Option<BTreeMap<&'static str, u64>>,
    ) -> Snapshot {
        let workspaces = self
            .records
            .iter()
            .map(|(name, record)| (name.clone(), self.workspace_at(record, now)))
            .collect();
        let generation = &self.generation;
        Snapshot {
            taken_at: now,
            workspaces,
            folded: None,
            batch_max_tokens: self.batch_max_tokens,
            flush_enabled: self.flush_enabled,
            exporter: ExporterStats {
                requests,
                discovery: self.discovery.get(),
                generation: generation.generation(),
                status_split: generation.status_split(),
                work_units_available: generation.work_units_available(),
                token_reload_errors,
                ..self.counters.stats(self.poll_interval)
            },
        }
    }

    fn workspace_at(&self, record: &WorkspaceRecord, now: f64) -> WorkspaceSnapshot {
        let walk = record
            .walk
            .as_ref()
            .filter(|(stamp, _, _)| stamp.servable(now));
        let head = record
            .head
            .as_ref()
            .filter(|(stamp, _)| stamp.servable(now))
            .map(|(_, head)| head);
        let work_units = match (walk, head) {
            (None, None) => None,
            (Some((_, _, aggregate)), None) => Some(aggregate.clone()),
            (Some((stamp, _, aggregate)), Some(head)) => Some(match head.boundary {
                // A head older than the walk adds nothing.
                Some(boundary) if !head.complete && record_head_newer(record, stamp.at) => {
                    merge_head(aggregate, &head.aggregate, boundary, self.detail_limit)
                }
                _ => aggregate.clone(),
            }),
            (None, Some(head)) => Some(head.aggregate.clone()),
        };
        WorkspaceSnapshot {
            status: record
                .status
                .as_ref()
                .filter(|(stamp, _)| stamp.servable(now))
                .map(|(_, summary)| summary.clone()),
            head_only: walk.is_none() && head.is_some(),
            work_units,
            walk_truncated: record.walk_truncated,
            scopes: record
                .scopes
                .iter()
                .filter(|(_, (stamp, _))| stamp.servable(now))
                .map(|(scope, (_, counts))| (scope.clone(), *counts))
                .collect(),
            health: record.health.clone(),
            // The head is fresher; a walk whose first page was its last reported no head.
            units_listed: head
                .map(|head| head.total)
                .or_else(|| walk.and_then(|(_, _, aggregate)| aggregate.listed)),
            last_complete_walk: walk.map(|(stamp, duration, _)| (stamp.at, *duration)),
        }
    }

    /// The first bound after `now` at which a value served at `now` stops being servable.
    pub fn next_expiry(&self, now: f64) -> Option<f64> {
        let mut bounds = Vec::new();
        for record in self.records.values() {
            bounds.extend(record.status.as_ref().map(|(stamp, _)| stamp.until));
            bounds.extend(record.walk.as_ref().map(|(stamp, _, _)| stamp.until));
            bounds.extend(record.head.as_ref().map(|(stamp, _)| stamp.until));
            bounds.extend(record.scopes.values().map(|(stamp, _)| stamp.until));
        }
        next_bound(bounds, now)
    }
}

/// Whether the record's head arrived after the walk that ended at `walk_at`.
fn record_head_newer(record: &WorkspaceRecord, walk_at: f64) -> bool {
    record
        .head
        .as_ref()
        .is_some_and(|(stamp, _)| stamp.at > walk_at)
}

/// The state as published: everything needed to build the snapshot at any later time.
#[derive(Debug, Clone)]
pub struct Servable {
    /// The state when published.
    pub state: PollState,
    /// Upstream request counts when published.
    pub requests: RequestCounts,
    /// The client's token reload errors when published (`None`: no token file).
    pub token_reload_errors: Option<BTreeMap<&'static str, u64>>,
}

impl SnapshotSource for Servable {
    fn snapshot_at(&self, now: f64) -> Snapshot {
        self.state
            .snapshot_with(now, self.requests.clone(), self.token_reload_errors.clone())
    }

    fn next_expiry(&self, now: f64) -> Option<f64> {
        self.state.next_expiry(now)
    }
}
