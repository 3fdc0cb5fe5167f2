//! The per-poll data model and the pure functions that build it. No I/O, no clock: callers pass
//! `now`.
//!
//! - [`summarize_status`] turns one queue/status body into workspace counts plus capped
//!   per-session rows (top N by pending + `__other__` + `__none__`), so that per state the
//!   session rows always sum to the workspace counts.
//! - [`WorkUnitAggregator`] consumes the work-units walk page by page: per task type × state
//!   counts, items, tokens and oldest timestamps, the smallest tokens-until-threshold, a
//!   bounded top-K of problem units, and the id → name of the exported sessions (a unit whose
//!   `oldest_item_at` does not parse is only counted: its age is unknown). Its memory is
//!   bounded by K and the session cap, plus 8 bytes per unit for de-duplication (a unit can
//!   reappear on a later page when the deriver moves its oldest item while we walk).
//! - [`Snapshot`] is the immutable result of one poll cycle, handed to [`crate::families`].
//! - [`select_exported`], [`roll_up`], [`strip_detail`]: the ceiling on cardinality applied to a
//!   snapshot before it is rendered (top N workspaces in full, the rest summed into
//!   `workspace="__other__"`; detail families switched off).
//!
//! Layout: this file holds the snapshot's types; `status.rs` [`summarize_status`];
//! `work_units.rs` the walk's result types and [`merge_head`]; `aggregator.rs` the streaming
//! [`WorkUnitAggregator`] and its de-duplication memory; `rollup.rs` the ceiling. Everything is re-exported here, so
//! callers name `crate::snapshot::…` only.

mod aggregator;
mod rollup;
mod status;
mod work_units;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::honcho::types::ItemCounts;
use crate::honcho::{Endpoint, RequestCounts};

pub use aggregator::WorkUnitAggregator;
pub use rollup::{
    CAPPED_WORKSPACES, DetailSwitches, OTHER_WORKSPACES, RollupMemory, RollupStats,
    hysteresis_margin, rank, roll_up, select_exported, strip_detail,
};
pub use status::{NO_SESSION, OTHER_SESSIONS, SessionRow, StatusSummary, summarize_status};
pub use work_units::{UnitCell, UnitDetail, WorkUnitAggregate, merge_head};

/// Whether an endpoint's last poll worked, and when one last did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EndpointHealth {
    /// The last poll of this endpoint succeeded.
    pub up: bool,
    /// Unix seconds of the last success, if any.
    pub last_success: Option<f64>,
}

/// Everything exported about one workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkspaceSnapshot {
    /// queue/status, unless never fetched or older than max staleness.
    pub status: Option<StatusSummary>,
    /// The last complete walk (generation C), unless never done or older than max staleness.
    pub work_units: Option<WorkUnitAggregate>,
    /// The last truncated walk stopped at the page cap (its numbers are partial).
    pub walk_truncated: bool,
    /// Configured scopes' counts (fresh ones only).
    pub scopes: BTreeMap<String, ItemCounts>,
    /// Health per endpoint (`status`, `work_units`, `scopes`).
    pub health: BTreeMap<Endpoint, EndpointHealth>,
    /// Only the head of the walk (its first page) is known, no complete walk: `work_units`
    /// carries the oldest units' ages and detail, but its per-state counts are unknown and not
    /// exported.
    pub head_only: bool,
    /// The number of work units Honcho lists (`total` of the last head page), fresh every
    /// interval while a full walk takes longer.
    pub units_listed: Option<u64>,
    /// The last complete walk that is still served: (Unix seconds it ended, its duration).
    pub last_complete_walk: Option<(f64, Duration)>,
}

/// The API generation in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Honcho 2.x: `/v2/…/deriver/status`.
    A,
    /// Honcho 3.x without the stalled/ready split or work-units.
    B,
    /// Honcho 3.x with the split and work-units.
    C,
}

impl Generation {
    /// The `generation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::A => "a",
            Generation::B => "b",
            Generation::C => "c",
        }
    }
}

/// The exporter's own state for its self-metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExporterStats {
    /// Duration of the last complete poll cycle.
    pub poll_duration: Option<Duration>,
    /// The configured poll interval.
    pub poll_interval: Duration,
    /// Poll cycles completed since start.
    pub poll_cycles: u64,
    /// Upstream requests by endpoint and code.
    pub requests: RequestCounts,
    /// Failed polls by endpoint and bounded reason.
    pub errors: BTreeMap<(Endpoint, &'static str), u64>,
    /// Series dropped by caps, by family (`session_items`, `work_unit_detail`).
    pub capped: BTreeMap<&'static str, u64>,
    /// Health of workspace discovery (None with a static list).
    pub discovery: Option<EndpointHealth>,
    /// The API generation in use, once known.
    pub generation: Option<Generation>,
    /// Whether queue/status reports the stalled/ready split, once known.
    pub status_split: Option<bool>,
    /// Whether queue/work-units exists, once known.
    pub work_units_available: Option<bool>,
    /// Changes of the token file not used, by reason; `None` when the token is not from a file.
    pub token_reload_errors: Option<BTreeMap<&'static str, u64>>,
    /// The database source's own numbers; `None` with the API source.
    pub postgres: Option<PostgresStats>,
    /// The workspace ceiling's numbers, once it first rolled workspaces up into `__other__`
    /// (`None` before: the output is as without a ceiling).
    pub rollup: Option<RollupStats>,
}

/// The database source's self-metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostgresStats {
    /// Whether the last cycle read the database.
    pub health: EndpointHealth,
    /// The last successful cycle's time waiting on the database (transaction minus mapping).
    pub database_time: Option<Duration>,
    /// The last successful cycle's time mapping rows in the exporter.
    pub mapping_time: Option<Duration>,
    /// `alembic_version` of the last successful schema check.
    pub schema_revision: Option<String>,
    /// The Honcho release that revision belongs to, when the source knows it.
    pub honcho_version: Option<&'static str>,
    /// Changes of the password file not used, by reason; `None` without a password file.
    pub password_reload_errors: Option<BTreeMap<&'static str, u64>>,
}

/// Workspaces a source summed together, as the ceiling would have ([`roll_up`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoldedWorkspaces {
    /// How many workspaces.
    pub workspaces: u64,
    /// Their sum: counts, cells and scopes; no sessions, no detail.
    pub data: WorkspaceSnapshot,
}

impl Snapshot {
    /// Workspaces polled: those in the snapshot (the reserved `__other__` included) and those
    /// folded by the source.
    pub fn polled_workspaces(&self) -> u64 {
        self.workspaces.len() as u64 + self.folded.as_ref().map_or(0, |folded| folded.workspaces)
    }
}

/// One poll cycle's immutable result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Unix seconds when the cycle ended.
    pub taken_at: f64,
    /// Per workspace, sorted by name.
    pub workspaces: BTreeMap<String, WorkspaceSnapshot>,
    /// Workspaces the source already summed together, because the ceiling cannot choose them
    /// (the database source over `workspaces.max_exported`): folded into `__other__` with the
    /// others by [`roll_up`], never exported on their own.
    pub folded: Option<FoldedWorkspaces>,
    /// The deriver settings seen in the work-units envelope.
    pub batch_max_tokens: Option<u64>,
    /// `flush_enabled` seen in the work-units envelope.
    pub flush_enabled: Option<bool>,
    /// The exporter's own numbers.
    pub exporter: ExporterStats,
}
