//! The short history the windowed verdict rules read: per workspace, since when its current
//! in-progress oldest item has been the same and since when it has had ready work, plus a coarse
//! trail of its ready items for the backlog trend; for the deriver as a whole (every workspace
//! summed, as the alerts sum them), since when it has been idle. Bounded: a few numbers per
//! workspace and at most [`TRAIL_POINTS`] trail points, whatever the window or poll interval;
//! workspaces that leave the snapshot (or lose their status) leave the history.
//!
//! Pure: `observe` is given the snapshot and `now`; no clock, no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::rules::Totals;
use crate::snapshot::Snapshot;

/// Trail points kept per workspace over the backlog window.
pub const TRAIL_POINTS: usize = 32;

/// What is remembered of one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceTrack {
    /// Unix seconds of the first observation in the current unbroken run of observations.
    pub first_seen: f64,
    /// (the in-progress oldest item's timestamp, since when it has been that): the same oldest
    /// item in progress since then.
    pub in_progress_oldest: Option<(f64, f64)>,
    /// Since when the workspace has had ready work at every observation.
    pub ready_since: Option<f64>,
    /// (Unix seconds, ready items), oldest first, at least window/[`TRAIL_POINTS`] apart.
    pub trail: VecDeque<(f64, u64)>,
}

impl WorkspaceTrack {
    /// Ready items at `now - window`, when the trail reaches back that far.
    pub fn ready_at(&self, now: f64, window: Duration) -> Option<u64> {
        let start = now - window.as_secs_f64();
        self.trail
            .iter()
            .take_while(|(at, _)| *at <= start)
            .last()
            .map(|(_, ready)| *ready)
    }
}

/// What is remembered of the deriver as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeriverTrack {
    /// Since when, at every observation, items were pending, none in progress and `completed`
    /// had not changed.
    pub idle_since: Option<f64>,
    /// Since when, at every observation, ready items (generation C) waited with none in
    /// progress.
    pub unclaimed_since: Option<f64>,
    /// Items in progress at the last observation, summed over workspaces.
    pub in_progress: u64,
    /// `completed` summed over workspaces at the last observation.
    last_completed: Option<u64>,
}

/// The verdicts' history: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// How far back the rules look (the longest window): bounds the trail.
    window: Duration,
    /// Unix seconds of the first observation.
    pub started: Option<f64>,
    /// Unix seconds of the last observation.
    pub last: Option<f64>,
    /// The deriver as a whole.
    pub deriver: DeriverTrack,
    /// Per workspace.
    pub workspaces: BTreeMap<String, WorkspaceTrack>,
}

impl History {
    /// An empty history for rules looking back at most `window`.
    pub fn new(window: Duration) -> Self {
        History {
            window,
            started: None,
            last: None,
            deriver: DeriverTrack::default(),
            workspaces: BTreeMap::new(),
        }
    }

    /// Changes how far back the rules look (new thresholds after a reload); the trail adapts
    /// at the next observations.
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// Seconds of history at `now` (0 before the first observation).
    pub fn covered(&self, now: f64) -> f64 {
        self.started.map_or(0.0, |started| (now - started).max(0.0))
    }

    /// Records the snapshot served at `now`. An observation not after the last one is ignored.
    pub fn observe(&mut self, snapshot: &Snapshot, now: f64) {
        if self.last.is_some_and(|last| now <= last) {
            return;
        }
        self.started.get_or_insert(now);
        self.last = Some(now);
        let totals: BTreeMap<&str, Totals> = snapshot
            .workspaces
            .iter()
            .filter_map(|(name, workspace)| Some((name.as_str(), Totals::of(workspace)?)))
            .collect();
        self.workspaces
            .retain(|name, _| totals.contains_key(name.as_str()));
        let spacing = self.window.as_secs_f64() / TRAIL_POINTS as f64;
        for (name, totals) in &totals {
            let track = self
                .workspaces
                .entry((*name).to_string())
                .or_insert_with(|| WorkspaceTrack {
                    first_seen: now,
                    in_progress_oldest: None,
                    ready_since: None,
                    trail: VecDeque::new(),
                });
            track.observe(totals, now, self.window, spacing);
        }
        self.deriver.observe(totals.values(), now);
    }
}

impl WorkspaceTrack {
    fn observe(&mut self, totals: &Totals, now: f64, window: Duration, spacing: f64) {
        self.in_progress_oldest = match (totals.oldest_in_progress, self.in_progress_oldest) {
            (Some(timestamp), Some((same, since))) if same == timestamp => Some((same, since)),
            (Some(timestamp), _) if totals.in_progress > 0 => Some((timestamp, now)),
            _ => None,
        };
        self.ready_since = if totals.ready_items() > 0 {
            Some(self.ready_since.unwrap_or(now))
        } else {
            None
        };
        if self.trail.back().is_none_or(|(at, _)| now - at >= spacing) {
            self.trail.push_back((now, totals.ready_items()));
        }
        // Keep one point at or before the window's start, none older.
        let start = now - window.as_secs_f64();
        while self.trail.len() > 1 && self.trail[1].0 <= start {
            self.trail.pop_front();
        }
        while self.trail.len() > TRAIL_POINTS + 2 {
            self.trail.pop_front();
        }
    }
}

impl DeriverTrack {
    fn observe<'a>(&mut self, totals: impl Iterator<Item = &'a Totals>, now: f64) {
        let (mut pending, mut ready, mut in_progress, mut completed) = (0u64, 0u64, 0u64, 0u64);
        let mut split_known = false;
        for totals in totals {
            pending = pending.saturating_add(totals.pending);
            in_progress = in_progress.saturating_add(totals.in_progress);
            completed = completed.saturating_add(totals.completed);
            if let Some(items) = totals.ready {
                split_known = true;
                ready = ready.saturating_add(items);
            }
        }
        let completed_moved = self.last_completed.is_some_and(|last| last != completed);
        self.idle_since = if pending > 0 && in_progress == 0 && !completed_moved {
            Some(self.idle_since.unwrap_or(now))
        } else if pending > 0 && in_progress == 0 {
            // Something completed since the last look: idle from now on at the earliest.
            Some(now)
        } else {
            None
        };
        self.unclaimed_since = if split_known && ready > 0 && in_progress == 0 {
            Some(self.unclaimed_since.unwrap_or(now))
        } else {
            None
        };
        self.in_progress = in_progress;
        self.last_completed = Some(completed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::honcho::types::ItemCounts;
    use crate::snapshot::{StatusSummary, WorkspaceSnapshot};

    fn snapshot(pending: u64, in_progress: u64, completed: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.workspaces.insert(
            "w".to_string(),
            WorkspaceSnapshot {
                status: Some(StatusSummary {
                    counts: ItemCounts {
                        total: pending + in_progress + completed,
                        completed,
                        in_progress,
                        pending,
                        pending_stalled: None,
                        pending_ready: None,
                    },
                    sessions: Vec::new(),
                    capped_sessions: 0,
                }),
                ..WorkspaceSnapshot::default()
            },
        );
        snapshot
    }

    #[test]
    fn the_deriver_is_idle_since_the_first_look_with_pending_work_and_nothing_moving() {
        let mut history = History::new(Duration::from_secs(600));
        history.observe(&snapshot(5, 0, 10), 100.0);
        history.observe(&snapshot(6, 0, 10), 200.0);
        assert_eq!(history.deriver.idle_since, Some(100.0));
    }

    #[test]
    fn a_completion_restarts_the_idle_run_and_work_in_progress_ends_it() {
        let mut history = History::new(Duration::from_secs(600));
        history.observe(&snapshot(5, 0, 10), 100.0);
        history.observe(&snapshot(5, 0, 11), 200.0);
        assert_eq!(history.deriver.idle_since, Some(200.0));
        history.observe(&snapshot(5, 1, 11), 300.0);
        assert_eq!(history.deriver.idle_since, None);
    }

    #[test]
    fn an_observation_not_after_the_last_is_ignored() {
        let mut history = History::new(Duration::from_secs(600));
        history.observe(&snapshot(5, 0, 10), 100.0);
        history.observe(&snapshot(5, 0, 11), 100.0);
        assert_eq!(history.deriver.idle_since, Some(100.0));
    }

    #[test]
    fn the_trail_stays_bounded_and_reaches_back_one_window() {
        let mut history = History::new(Duration::from_secs(320));
        for second in 0..10_000u32 {
            history.observe(&snapshot(u64::from(second), 0, 0), f64::from(second));
        }
        let track = &history.workspaces["w"];
        assert!(
            track.trail.len() <= TRAIL_POINTS + 2,
            "{}",
            track.trail.len()
        );
        let at = track
            .ready_at(9999.0, Duration::from_secs(320))
            .expect("a point");
        assert!((9999 - 330..=9999 - 320).contains(&at), "{at}");
    }

    #[test]
    fn a_workspace_that_leaves_the_snapshot_leaves_the_history() {
        let mut history = History::new(Duration::from_secs(600));
        history.observe(&snapshot(5, 0, 10), 100.0);
        history.observe(&Snapshot::default(), 200.0);
        assert!(history.workspaces.is_empty());
    }
}
