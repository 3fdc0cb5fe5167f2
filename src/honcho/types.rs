//! Response types of Honcho's queue API, as the real servers send them (see
//! `shared/honcho-api.md`). Pure data and parsing; no I/O.
//!
//! An absent JSON key is "unknown" (`None`), never 0: a generation-B server lacks the two split
//! keys of queue/status.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

/// Item counts of queue/status (v3) or deriver/status (v2). The API calls them `*_work_units`,
/// but they count queue rows (items), not work units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct ItemCounts {
    /// `total_work_units`: completed + in_progress + pending.
    #[serde(rename = "total_work_units")]
    pub total: u64,
    /// `completed_work_units`: processed rows still in the table (errored rows included); resets
    /// when Honcho's reconciler cleans the queue, so a gauge.
    #[serde(rename = "completed_work_units")]
    pub completed: u64,
    /// `in_progress_work_units`: unprocessed rows of a claimed work unit.
    #[serde(rename = "in_progress_work_units")]
    pub in_progress: u64,
    /// `pending_work_units`: unprocessed rows of unclaimed work units.
    #[serde(rename = "pending_work_units")]
    pub pending: u64,
    /// `pending_stalled_work_units` (generation C only): pending representation rows below the
    /// batch token threshold. `None` when the server does not send the key.
    #[serde(rename = "pending_stalled_work_units", default)]
    pub pending_stalled: Option<u64>,
    /// `pending_ready_work_units` (generation C only). `None` when absent.
    #[serde(rename = "pending_ready_work_units", default)]
    pub pending_ready: Option<u64>,
}

impl ItemCounts {
    /// Whether the server reported the stalled/ready split (both keys present).
    pub fn has_split(&self) -> bool {
        self.pending_stalled.is_some() && self.pending_ready.is_some()
    }

    /// Adds `other` into `self`, saturating (the numbers come from upstream and must not
    /// overflow); a split survives only if both sides have it.
    pub fn add(&mut self, other: &ItemCounts) {
        self.total = self.total.saturating_add(other.total);
        self.completed = self.completed.saturating_add(other.completed);
        self.in_progress = self.in_progress.saturating_add(other.in_progress);
        self.pending = self.pending.saturating_add(other.pending);
        self.pending_stalled = self
            .pending_stalled
            .zip(other.pending_stalled)
            .map(|(a, b)| a.saturating_add(b));
        self.pending_ready = self
            .pending_ready
            .zip(other.pending_ready)
            .map(|(a, b)| a.saturating_add(b));
    }

    /// `self − other`, saturating at 0 per field (used for the items that belong to no session).
    pub fn saturating_sub(&self, other: &ItemCounts) -> ItemCounts {
        ItemCounts {
            total: self.total.saturating_sub(other.total),
            completed: self.completed.saturating_sub(other.completed),
            in_progress: self.in_progress.saturating_sub(other.in_progress),
            pending: self.pending.saturating_sub(other.pending),
            pending_stalled: self
                .pending_stalled
                .zip(other.pending_stalled)
                .map(|(a, b)| a.saturating_sub(b)),
            pending_ready: self
                .pending_ready
                .zip(other.pending_ready)
                .map(|(a, b)| a.saturating_sub(b)),
        }
    }
}

/// The whole queue/status body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueueStatus {
    /// The workspace-wide counts.
    #[serde(flatten)]
    pub counts: ItemCounts,
    /// Per-session counts keyed by the internal session id. `null` when there are no rows or
    /// when a `session_id` filter was given; kept as `None` then.
    #[serde(default)]
    pub sessions: Option<BTreeMap<String, SessionStatus>>,
}

/// One value of the `sessions` dict.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionStatus {
    /// The internal session id (same as the dict key).
    pub session_id: String,
    /// The session's counts.
    #[serde(flatten)]
    pub counts: ItemCounts,
}

/// One page of `POST /v{2,3}/workspaces/list` (fastapi-pagination `Page`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkspacePage {
    /// The workspaces on this page.
    pub items: Vec<WorkspaceItem>,
    /// Number of workspaces in all.
    pub total: u64,
    /// This page's number (1-based).
    pub page: u64,
    /// Page size.
    pub size: u64,
    /// Number of pages (`ceil(total/size)`).
    pub pages: u64,
}

/// A workspace of the list; only its name matters here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkspaceItem {
    /// The workspace name (`schemas.Workspace` serializes `name` as `id`).
    pub id: String,
}

/// One page of `GET /v3/workspaces/{id}/queue/work-units` (a cursor page), borrowing from the
/// response body so that parsing allocates little.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkUnitsPage<'a> {
    /// The work units on this page.
    #[serde(borrow)]
    pub items: Vec<WorkUnitRow<'a>>,
    /// Number of matching work units in all (not items).
    pub total: u64,
    /// The cursor of the next page, already percent-encoded; `None` at the end.
    #[serde(borrow, default)]
    pub next_page: Option<Cow<'a, str>>,
    /// `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS` of the server.
    #[serde(default)]
    pub representation_batch_max_tokens: Option<u64>,
    /// `DERIVER_FLUSH_ENABLED` of the server.
    #[serde(default)]
    pub flush_enabled: Option<bool>,
}

/// One work unit row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkUnitRow<'a> {
    /// `representation:{ws}:{session}:{observed}`, `summary:…`, `dream:…`.
    #[serde(borrow)]
    pub work_unit_key: Cow<'a, str>,
    /// `representation|summary|dream`.
    #[serde(borrow)]
    pub task_type: Cow<'a, str>,
    /// Internal session id; `None` for dreams.
    #[serde(borrow, default)]
    pub session_id: Option<Cow<'a, str>>,
    /// Session name; `None` for dreams.
    #[serde(borrow, default)]
    pub session_name: Option<Cow<'a, str>>,
    /// Observed peer (sender); `None` for summaries.
    #[serde(borrow, default)]
    pub observed: Option<Cow<'a, str>>,
    /// Unprocessed items of the unit.
    pub pending_items: u64,
    /// Tokens of the unit's unprocessed items.
    pub pending_tokens: u64,
    /// Tokens still missing before the batch threshold (0 when reached or not gated).
    pub tokens_until_threshold: u64,
    /// Whether the unit reached the threshold (always true for non-representation units).
    pub hit_threshold: bool,
    /// Whether a deriver has claimed the unit.
    pub in_progress: bool,
    /// ISO-8601 timestamp of the oldest unprocessed item.
    #[serde(borrow)]
    pub oldest_item_at: Cow<'a, str>,
}

/// Parses an ISO-8601 / RFC 3339 timestamp (`2026-11-22T02:42:51.039997Z`) into Unix seconds.
/// One without an offset (`2026-11-22T02:42:51.039997`, or with a space for the `T`, as Python
/// prints a naive `datetime`) is UTC: Honcho's database keeps UTC. `None` when it is neither.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim();
    let utc = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(parsed) => parsed.to_utc(),
        Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())?
            .and_utc(),
    };
    Some(utc.timestamp() as f64 + f64::from(utc.timestamp_subsec_micros()) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_with_microseconds_and_z_parses_to_unix_seconds() {
        let seconds = parse_timestamp("2026-11-22T02:42:51.039997Z").expect("valid timestamp");
        assert!((seconds - 1_795_315_371.039_997).abs() < 1e-6, "{seconds}");
    }

    #[test]
    fn timestamp_garbage_is_none() {
        for garbage in [
            "yesterday",
            "",
            "2026-11-22",
            "2026-13-22T02:42:51",
            "2026-11-22T02:42",
            "1795315371",
        ] {
            assert_eq!(parse_timestamp(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn timestamp_without_an_offset_is_utc() {
        let utc = parse_timestamp("2026-11-22T02:42:51.039997Z").expect("valid timestamp");
        for naive in [
            "2026-11-22T02:42:51.039997",
            "2026-11-22 02:42:51.039997",
            "2026-11-22T02:42:51.039997+00:00",
        ] {
            assert_eq!(parse_timestamp(naive), Some(utc), "{naive}");
        }
        assert_eq!(
            parse_timestamp("2026-11-22T02:42:51"),
            Some(1_795_315_371.0)
        );
        assert_eq!(
            parse_timestamp("2026-11-22T04:42:51+02:00"),
            Some(1_795_315_371.0),
            "an offset is still honoured"
        );
    }

    #[test]
    fn absent_split_keys_are_unknown_not_zero() {
        let counts: ItemCounts = serde_json::from_str(
            r#"{"total_work_units":3,"completed_work_units":1,"in_progress_work_units":1,"pending_work_units":1}"#,
        )
        .expect("valid body");
        assert_eq!(counts.pending_stalled, None);
        assert!(!counts.has_split());
    }

    #[test]
    fn adding_counts_from_a_hostile_upstream_saturates_instead_of_overflowing() {
        let mut counts = ItemCounts {
            total: u64::MAX,
            pending_stalled: Some(u64::MAX),
            pending_ready: Some(0),
            ..ItemCounts::default()
        };
        counts.add(&ItemCounts {
            total: 1,
            pending_stalled: Some(1),
            pending_ready: Some(0),
            ..ItemCounts::default()
        });
        assert_eq!(counts.total, u64::MAX);
        assert_eq!(counts.pending_stalled, Some(u64::MAX));
    }
}
