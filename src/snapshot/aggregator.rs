//! [`WorkUnitAggregator`]: consumes the work-units walk page by page into a
//! [`WorkUnitAggregate`], keeping a bounded top-K of problem units and 8 bytes per unit for
//! de-duplication (a unit can reappear on a later page when the deriver moves its oldest item
//! while we walk). Pure, no clock: the walk's `now` is given.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::classify::{TaskType, UnitState, classify};
use crate::honcho::types::{WorkUnitRow, WorkUnitsPage, parse_timestamp};

use super::work_units::{UnitDetail, WorkUnitAggregate};

/// Heap entry: the max-heap's top is the least problematic detail, the one to evict.
struct DetailEntry(UnitDetail);

impl PartialEq for DetailEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DetailEntry {}
impl PartialOrd for DetailEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DetailEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.problem_order(&other.0)
    }
}

/// A hasher for keys that are already 64-bit hashes.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A 64-bit hash of a work unit key: foldhash (quality variant, fixed seed), which reads 8–16
/// bytes per step where a byte-at-a-time hash spends ~1 ns per byte of the ~60-byte keys.
fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher as _;
    const SEED: u64 = 0x6f6e_6368_6f5f_6b65;
    foldhash::quality::FixedState::with_seed(SEED).hash_one(key)
}

/// The work units already counted in this walk, as 64-bit key hashes: a sorted vector (8 bytes
/// per unit, no hash-table overhead) plus a small staging set merged into it in linear time.
/// A `HashSet<u64>` of 1 M units takes ~19 MB (buckets rounded to a power of two, 7/8 load);
/// this takes ~8 MB.
#[derive(Default)]
struct SeenKeys {
    sorted: Vec<u64>,
    staged: HashSet<u64, BuildHasherDefault<PrehashedKey>>,
}

impl SeenKeys {
    /// Staged hashes merged into `sorted` at once.
    const STAGE: usize = 1 << 14;

    fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.staged.is_empty()
    }

    fn reserve(&mut self, units: usize) {
        self.sorted.reserve_exact(units);
    }

    /// Records `hash`; false if it was already recorded.
    fn insert(&mut self, hash: u64) -> bool {
        if self.sorted.binary_search(&hash).is_ok() || !self.staged.insert(hash) {
            return false;
        }
        if self.staged.len() >= Self::STAGE {
            self.merge_staged();
        }
        true
    }

    /// Merges the staged hashes into the sorted vector from the back, in place.
    fn merge_staged(&mut self) {
        let mut staged: Vec<u64> = self.staged.drain().collect();
        staged.sort_unstable();
        let old_len = self.sorted.len();
        self.sorted.resize(old_len + staged.len(), 0);
        let (mut read, mut write) = (old_len, self.sorted.len());
        while let Some(&last) = staged.last() {
            write -= 1;
            if read > 0 && self.sorted[read - 1] > last {
                read -= 1;
                self.sorted[write] = self.sorted[read];
            } else {
                self.sorted[write] = last;
                staged.pop();
            }
        }
    }
}

/// Streams the pages of one walk into a [`WorkUnitAggregate`].
pub struct WorkUnitAggregator {
    now: f64,
    overdue_after: Duration,
    detail_limit: usize,
    wanted_sessions: HashSet<String, foldhash::fast::RandomState>,
    seen: SeenKeys,
    heap: BinaryHeap<DetailEntry>,
    aggregate: WorkUnitAggregate,
}

impl WorkUnitAggregator {
    /// A new walk at time `now` (Unix seconds). `wanted_sessions`: the session ids whose names
    /// should be kept (those the status summary exports).
    pub fn new(
        now: f64,
        overdue_after: Duration,
        detail_limit: usize,
        wanted_sessions: HashSet<String>,
    ) -> Self {
        WorkUnitAggregator {
            now,
            overdue_after,
            detail_limit,
            // A faster hasher than SipHash: every row of the walk looks its session id up here.
            wanted_sessions: wanted_sessions.into_iter().collect(),
            seen: SeenKeys::default(),
            heap: BinaryHeap::with_capacity(detail_limit + 1),
            aggregate: WorkUnitAggregate::default(),
        }
    }

    /// Adds one page: its envelope, then each of its rows.
    pub fn add_page(&mut self, page: &WorkUnitsPage<'_>) {
        self.add_envelope(
            page.representation_batch_max_tokens,
            page.flush_enabled,
            page.total,
        );
        for row in &page.items {
            self.add_row(row);
        }
    }

    /// A page's envelope: Honcho's deriver settings, and `total`, the number of units listed.
    pub fn add_envelope(
        &mut self,
        batch_max_tokens: Option<u64>,
        flush_enabled: Option<bool>,
        total: u64,
    ) {
        if batch_max_tokens.is_some() {
            self.aggregate.batch_max_tokens = batch_max_tokens;
        }
        if flush_enabled.is_some() {
            self.aggregate.flush_enabled = flush_enabled;
        }
        if self.aggregate.listed.is_none() {
            self.aggregate.listed = Some(total);
        }
        if self.seen.is_empty() {
            // `total` is the unit count: size the de-duplication memory once (bounded, so a bogus
            // `total` cannot make us allocate much; a larger walk grows the vector).
            self.seen
                .reserve(usize::try_from(total.min(1 << 20)).unwrap_or(0));
        }
    }

    /// Adds one listed unit, parsing its `oldest_item_at`.
    pub fn add_row(&mut self, row: &WorkUnitRow<'_>) {
        if !self.first_sighting(row) {
            return;
        }
        let Some(oldest) = parse_timestamp(&row.oldest_item_at) else {
            self.aggregate.invalid_timestamps += 1;
            if self.aggregate.first_invalid_timestamp.is_none() {
                self.aggregate.first_invalid_timestamp =
                    Some(row.oldest_item_at.chars().take(64).collect());
            }
            return;
        };
        self.add_unit(row, oldest);
    }

    /// Adds one unit whose oldest item time is already known (Unix seconds; its
    /// `oldest_item_at` text is not read): the database source, which has it as a number.
    pub fn add_row_at(&mut self, row: &WorkUnitRow<'_>, oldest: f64) {
        if self.first_sighting(row) {
            self.add_unit(row, oldest);
        }
    }

    /// False (and counted) when the unit was already seen in this walk.
    fn first_sighting(&mut self, row: &WorkUnitRow<'_>) -> bool {
        if self.seen.insert(key_hash(&row.work_unit_key)) {
            true
        } else {
            self.aggregate.duplicates += 1;
            false
        }
    }

    fn add_unit(&mut self, row: &WorkUnitRow<'_>, oldest: f64) {
        let age = Duration::from_secs_f64((self.now - oldest).max(0.0));
        let task_type = TaskType::parse(&row.task_type);
        let state = classify(row.in_progress, row.hit_threshold, age, self.overdue_after);
        let cell = &mut self.aggregate.cells[task_type.index()][state.index()];
        // Upstream numbers: saturate rather than overflow.
        cell.units += 1;
        cell.items = cell.items.saturating_add(row.pending_items);
        cell.tokens = cell.tokens.saturating_add(row.pending_tokens);
        cell.oldest_item_timestamp = Some(match cell.oldest_item_timestamp {
            Some(current) => current.min(oldest),
            None => oldest,
        });
        if matches!(state, UnitState::Stalled | UnitState::Overdue) {
            let slot = &mut self.aggregate.tokens_until_threshold[task_type.index()];
            *slot = Some(slot.map_or(row.tokens_until_threshold, |v| {
                v.min(row.tokens_until_threshold)
            }));
        }
        if let (Some(id), Some(name)) = (&row.session_id, &row.session_name)
            && self.wanted_sessions.contains(id.as_ref())
            && !self.aggregate.session_names.contains_key(id.as_ref())
        {
            self.aggregate
                .session_names
                .insert(id.to_string(), name.to_string());
        }
        if state.problem_rank().is_some() {
            self.offer_detail(row, task_type, state, oldest);
        }
    }

    fn offer_detail(
        &mut self,
        row: &crate::honcho::types::WorkUnitRow<'_>,
        task_type: TaskType,
        state: UnitState,
        oldest: f64,
    ) {
        if self.detail_limit == 0 {
            self.aggregate.capped_detail += 1;
            return;
        }
        let rank = state.problem_rank().unwrap_or(u8::MAX);
        if self.heap.len() >= self.detail_limit
            && let Some(worst_kept) = self.heap.peek()
        {
            let kept = &worst_kept.0;
            let kept_rank = kept.state.problem_rank().unwrap_or(u8::MAX);
            let better = rank
                .cmp(&kept_rank)
                .then(oldest.total_cmp(&kept.oldest_item_timestamp))
                .then_with(|| row.work_unit_key.as_ref().cmp(kept.work_unit_key.as_str()));
            self.aggregate.capped_detail += 1;
            if better != Ordering::Less {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(DetailEntry(UnitDetail {
            work_unit_key: row.work_unit_key.to_string(),
            task_type,
            state,
            session_name: row.session_name.as_deref().unwrap_or("").to_string(),
            observed: row.observed.as_deref().unwrap_or("").to_string(),
            oldest_item_timestamp: oldest,
            tokens_until_threshold: row.tokens_until_threshold,
            pending_tokens: row.pending_tokens,
        }));
    }

    /// Ends the walk.
    pub fn finish(mut self) -> WorkUnitAggregate {
        let mut detail: Vec<UnitDetail> = self.heap.into_iter().map(|entry| entry.0).collect();
        detail.sort_by(UnitDetail::problem_order);
        self.aggregate.detail = detail;
        self.aggregate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_whose_oldest_item_at_does_not_parse_is_counted_in_no_state() {
        let body = r#"{"items":[
            {"work_unit_key":"representation:w:s:a","task_type":"representation","session_id":"s","session_name":"s","observed":"a","pending_items":1,"pending_tokens":5,"tokens_until_threshold":95,"hit_threshold":false,"in_progress":false,"oldest_item_at":"not a time"},
            {"work_unit_key":"representation:w:s:b","task_type":"representation","session_id":"s","session_name":"s","observed":"b","pending_items":1,"pending_tokens":5,"tokens_until_threshold":95,"hit_threshold":false,"in_progress":false,"oldest_item_at":"2026-11-22T02:00:00"}
        ],"total":2,"next_page":null}"#;
        let page: WorkUnitsPage<'_> = serde_json::from_str(body).expect("valid page");
        // An hour after the naive (UTC) timestamp of the second unit.
        let now = 1_795_312_800.0 + 3600.0;
        let mut aggregator =
            WorkUnitAggregator::new(now, Duration::from_secs(1800), 10, HashSet::new());
        aggregator.add_page(&page);
        let aggregate = aggregator.finish();
        assert_eq!(aggregate.invalid_timestamps, 1);
        assert_eq!(
            aggregate.first_invalid_timestamp.as_deref(),
            Some("not a time")
        );
        let representation = |state| aggregate.cell(TaskType::Representation, state).units;
        assert_eq!(
            representation(UnitState::Overdue),
            1,
            "the naive one, an hour old"
        );
        assert_eq!(
            representation(UnitState::Stalled),
            0,
            "no made-up fresh age"
        );
        assert_eq!(aggregate.detail.len(), 1);
        assert_eq!(aggregate.detail[0].observed, "b");
    }

    #[test]
    fn seen_keys_remember_every_unit_across_merges() {
        let mut seen = SeenKeys::default();
        let count = SeenKeys::STAGE as u64 * 3 + 17;
        for value in 0..count {
            assert!(
                seen.insert(value.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                "first time {value}"
            );
        }
        for value in (0..count).rev() {
            assert!(
                !seen.insert(value.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                "again {value}"
            );
        }
        assert!(
            seen.sorted.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted and unique"
        );
    }
}
