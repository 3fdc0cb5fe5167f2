//! The simulated queue of one Honcho server: workspaces, sessions, peers, work units and the
//! completed rows still in the table, plus the two read queries Honcho runs over them
//! (`queue/status` counts and the keyset-paginated `queue/work-units` rows).
//!
//! Owns: the compact in-memory layout (units in an arena, a keyset-sorted index of unit ids,
//! an identity map) and the exact counting rules of honcho-api.md. It must not do HTTP or
//! decide how the queue evolves (that is `dynamics`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::cursor::{self, Bookmark, Place};
use super::dynamics::Dynamics;

/// Marker for "no session / no peer" in the compact index fields.
pub(crate) const NONE: u32 = u32::MAX;

/// Honcho's tracked task types (`_TRACKED_TASK_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TaskType {
    /// Batched per (session, observed peer); gated by the token threshold.
    Representation,
    /// One per session, at a message cadence; always ready.
    Summary,
    /// Per (observer, observed), no session; always ready.
    Dream,
}

impl TaskType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskType::Representation => "representation",
            TaskType::Summary => "summary",
            TaskType::Dream => "dream",
        }
    }
}

/// What makes rows belong to the same work unit (the parts of its `work_unit_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    /// The task type.
    pub task: TaskType,
    /// Session index, or [`NONE`] for dreams.
    pub session: u32,
    /// Observer peer index: set for dreams and for 2.x representation rows, else [`NONE`].
    pub observer: u32,
    /// Observed peer index (the sender), [`NONE`] for summaries.
    pub observed: u32,
}

/// One work unit's unprocessed rows, aggregated (48 bytes: a million of them is cheap).
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// Which unit this is.
    pub identity: Identity,
    /// Unprocessed rows; 0 means the unit is gone (a tombstone in the keyset index).
    pub pending_items: u32,
    /// Sum of the rows' message token counts.
    pub pending_tokens: u32,
    /// Claimed by the deriver (`active_queue_sessions` row exists).
    pub in_progress: bool,
    /// `oldest_item_at`, microseconds since the epoch. Never changes while the unit lives, so
    /// the keyset index stays sorted.
    pub oldest: i64,
    /// `newest_item_at`, microseconds since the epoch.
    pub newest: i64,
}

impl Unit {
    pub(crate) fn is_live(&self) -> bool {
        self.pending_items > 0
    }

    /// The status query's "stalled": a pending representation unit under the threshold.
    pub(crate) fn is_stalled(&self, threshold: u32, flush: bool) -> bool {
        !flush && self.identity.task == TaskType::Representation && self.pending_tokens < threshold
    }
}

/// A session row.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The session name (what the API calls `id` in lists and `session_id` in filters).
    pub name: String,
    /// The internal 21-character id (the `sessions{}` key).
    pub id: String,
    /// `created_at` in microseconds.
    pub created_at: i64,
    /// The session `configuration` object, rendered as-is.
    pub configuration: serde_json::Value,
}

/// JSON object whose key order is kept as written (workspace metadata is shown in insertion
/// order by Honcho, and the contract test compares bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OrderedObject(pub Vec<(String, serde_json::Value)>);

impl Serialize for OrderedObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// One workspace and its queue.
#[derive(Debug)]
pub(crate) struct Workspace {
    /// The workspace name (`id` in the API).
    pub name: String,
    /// `metadata`, in insertion order.
    pub metadata: OrderedObject,
    /// `created_at` in microseconds.
    pub created_at: i64,
    /// Sessions in creation order.
    pub sessions: Vec<Session>,
    /// Session name → index.
    pub session_by_name: HashMap<String, u32>,
    /// Peer names.
    pub peers: Vec<String>,
    /// Peer name → index.
    pub peer_by_name: HashMap<String, u32>,
    /// Unit arena (ids are stable; dead slots are reused only after leaving `order`).
    pub units: Vec<Unit>,
    /// Unit ids sorted by the keyset `(oldest_item_at, work_unit_key)`; may hold dead ids.
    pub order: Vec<u32>,
    /// Arena slots free for reuse.
    pub free: Vec<u32>,
    /// Dead ids still in `order` (compacted away when they pile up).
    pub dead_in_order: usize,
    /// Number of live units.
    pub live_units: usize,
    /// Live unit of each identity.
    pub live_by_identity: HashMap<Identity, u32>,
    /// Processed rows still in the table (completed until the periodic cleanup).
    pub completed: HashMap<Identity, u32>,
    /// Set by the vanish-mid-walk fault: the workspace no longer exists.
    pub vanished: bool,
    /// How this workspace evolves; `None` = frozen (the recorded scenario).
    pub dynamics: Option<Dynamics>,
}

/// Counts of queue rows by state (what queue/status calls `*_work_units`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// All rows: completed + in_progress + pending.
    pub total: u64,
    /// Processed rows still in the table (errored ones included).
    pub completed: u64,
    /// Unprocessed rows of claimed units.
    pub in_progress: u64,
    /// Unprocessed rows of unclaimed units.
    pub pending: u64,
    /// Pending representation rows whose unit is under the token threshold.
    pub pending_stalled: u64,
    /// pending − pending_stalled.
    pub pending_ready: u64,
}

impl StatusCounts {
    fn add_pending(&mut self, items: u64, in_progress: bool, stalled: bool) {
        self.total += items;
        if in_progress {
            self.in_progress += items;
        } else {
            self.pending += items;
            if stalled {
                self.pending_stalled += items;
            } else {
                self.pending_ready += items;
            }
        }
    }

    fn add_completed(&mut self, items: u64) {
        self.total += items;
        self.completed += items;
    }
}

/// One row of `queue/work-units`, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkUnitRow {
    /// `work_unit_key`.
    pub work_unit_key: String,
    /// `representation|summary|dream`.
    pub task_type: String,
    /// Internal session id; null for dreams.
    pub session_id: Option<String>,
    /// Session name; null for dreams.
    pub session_name: Option<String>,
    /// Null for representation and summary (3.x), set for dreams.
    pub observer: Option<String>,
    /// The sender; null for summaries.
    pub observed: Option<String>,
    /// Unprocessed rows.
    pub pending_items: u64,
    /// Sum of their token counts.
    pub pending_tokens: u64,
    /// `classify_work_unit_row`: threshold − tokens for gated representation units, else 0.
    pub tokens_until_threshold: u64,
    /// `classify_work_unit_row`: tokens ≥ threshold, or not gated.
    pub hit_threshold: bool,
    /// Claimed by the deriver.
    pub in_progress: bool,
    /// ISO-8601 with `Z`.
    pub oldest_item_at: String,
    /// ISO-8601 with `Z`.
    pub newest_item_at: String,
}

/// The filters of queue/status and queue/work-units, resolved against a workspace's names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// `session_id` (a session NAME): `Some(NONE)` when given but unknown (matches nothing).
    pub session: Option<u32>,
    /// `observer_id`: `Some(NONE)` when unknown.
    pub observer: Option<u32>,
    /// `sender_id` (matches `observed`): `Some(NONE)` when unknown.
    pub observed: Option<u32>,
}

impl Filter {
    /// Resolves the raw query strings (empty = absent) against the workspace's names.
    pub(crate) fn resolve(
        workspace: &Workspace,
        session: Option<&str>,
        observer: Option<&str>,
        observed: Option<&str>,
    ) -> Self {
        let peer = |name: Option<&str>| {
            name.filter(|n| !n.is_empty())
                .map(|n| workspace.peer_by_name.get(n).copied().unwrap_or(NONE))
        };
        Filter {
            session: session
                .filter(|n| !n.is_empty())
                .map(|n| workspace.session_by_name.get(n).copied().unwrap_or(NONE)),
            observer: peer(observer),
            observed: peer(observed),
        }
    }

    fn matches(&self, identity: &Identity) -> bool {
        if let Some(session) = self.session
            && (session == NONE || identity.session != session)
        {
            return false;
        }
        if self.observer.is_none() && self.observed.is_none() {
            return true;
        }
        let by_observer = self
            .observer
            .is_some_and(|o| o != NONE && identity.observer == o);
        let by_observed = self
            .observed
            .is_some_and(|o| o != NONE && identity.observed == o);
        by_observer || by_observed
    }

    /// Whether any filter is set (the fast unfiltered paths skip the scan).
    fn is_empty(&self) -> bool {
        self.session.is_none() && self.observer.is_none() && self.observed.is_none()
    }
}

/// The answer of queue/status, before rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatusAnswer {
    /// Workspace totals.
    pub totals: StatusCounts,
    /// Per internal session id; `None` when the API sends `null`.
    pub sessions: Option<BTreeMap<String, StatusCounts>>,
}

/// One cursor page of queue/work-units, before rendering.
#[derive(Debug, Clone)]
pub(crate) struct WorkUnitsPage {
    /// The rows of this page.
    pub items: Vec<WorkUnitRow>,
    /// Number of matching units.
    pub total: u64,
    /// `current_page` cursor.
    pub current_page: String,
    /// `current_page_backwards` cursor.
    pub current_page_backwards: String,
    /// `previous_page` cursor or null.
    pub previous_page: Option<String>,
    /// `next_page` cursor or null.
    pub next_page: Option<String>,
}

impl Workspace {
    /// An empty workspace.
    pub(crate) fn new(name: String, metadata: OrderedObject, created_at: i64) -> Self {
        Workspace {
            name,
            metadata,
            created_at,
            sessions: Vec::new(),
            session_by_name: HashMap::new(),
            peers: Vec::new(),
            peer_by_name: HashMap::new(),
            units: Vec::new(),
            order: Vec::new(),
            free: Vec::new(),
            dead_in_order: 0,
            live_units: 0,
            live_by_identity: HashMap::new(),
            completed: HashMap::new(),
            vanished: false,
            dynamics: None,
        }
    }

    /// Adds a session and returns its index.
    pub(crate) fn add_session(
        &mut self,
        name: String,
        id: String,
        created_at: i64,
        configuration: serde_json::Value,
    ) -> u32 {
        let index = u32::try_from(self.sessions.len()).expect("fewer than 4 billion sessions");
        self.session_by_name.insert(name.clone(), index);
        self.sessions.push(Session {
            name,
            id,
            created_at,
            configuration,
        });
        index
    }

    /// Adds a peer (or returns the existing one) and returns its index.
    pub(crate) fn peer(&mut self, name: &str) -> u32 {
        if let Some(&index) = self.peer_by_name.get(name) {
            return index;
        }
        let index = u32::try_from(self.peers.len()).expect("fewer than 4 billion peers");
        self.peers.push(name.to_owned());
        self.peer_by_name.insert(name.to_owned(), index);
        index
    }

    /// Renders a unit's `work_unit_key` (`src/utils/work_unit.py construct_work_unit_key`).
    pub(crate) fn write_key(&self, identity: &Identity, out: &mut String) {
        let peer = |index: u32| {
            self.peers
                .get(index as usize)
                .map_or("None", String::as_str)
        };
        let session = self
            .sessions
            .get(identity.session as usize)
            .map_or("None", |s| s.name.as_str());
        let ws = &self.name;
        out.clear();
        match identity.task {
            TaskType::Representation if identity.observer != NONE => {
                let (observer, observed) = (peer(identity.observer), peer(identity.observed));
                out.push_str(&format!(
                    "representation:{ws}:{session}:{observer}:{observed}"
                ));
            }
            TaskType::Representation => {
                let observed = peer(identity.observed);
                out.push_str(&format!("representation:{ws}:{session}:{observed}"));
            }
            TaskType::Summary => out.push_str(&format!("summary:{ws}:{session}:None:None")),
            TaskType::Dream => {
                let (observer, observed) = (peer(identity.observer), peer(identity.observed));
                out.push_str(&format!("dream:omni:{ws}:{observer}:{observed}"));
            }
        }
    }

    fn key_of(&self, identity: &Identity) -> String {
        let mut key = String::new();
        self.write_key(identity, &mut key);
        key
    }

    /// Keyset order of two units: `oldest_item_at`, then the key bytewise.
    fn compare_units(&self, a: &Unit, b: &Unit) -> Ordering {
        a.oldest
            .cmp(&b.oldest)
            .then_with(|| self.key_of(&a.identity).cmp(&self.key_of(&b.identity)))
    }

    fn compare_to_place(&self, unit: &Unit, place: &Place) -> Ordering {
        unit.oldest
            .cmp(&place.oldest_micros)
            .then_with(|| self.key_of(&unit.identity).as_str().cmp(place.key.as_str()))
    }

    /// Inserts a new live unit and returns its id. Its identity must not be live already.
    pub(crate) fn insert_unit(&mut self, unit: Unit) -> u32 {
        let id = match self.free.pop() {
            Some(id) => {
                self.units[id as usize] = unit;
                id
            }
            None => {
                self.units.push(unit);
                u32::try_from(self.units.len() - 1).expect("fewer than 4 billion units")
            }
        };
        let new_unit = &self.units[id as usize];
        let appends = self.order.last().is_none_or(|&last| {
            self.compare_units(&self.units[last as usize], new_unit) != Ordering::Greater
        });
        if appends {
            self.order.push(id);
        } else {
            let position = self.order.partition_point(|&other| {
                self.compare_units(&self.units[other as usize], new_unit) == Ordering::Less
            });
            self.order.insert(position, id);
        }
        self.live_by_identity
            .insert(self.units[id as usize].identity, id);
        self.live_units += 1;
        id
    }

    /// Sorts the keyset index after a bulk load of units pushed straight into the arena.
    pub(crate) fn rebuild_order(&mut self) {
        let mut order: Vec<u32> = (0..self.units.len() as u32)
            .filter(|&id| self.units[id as usize].is_live())
            .collect();
        order
            .sort_by(|&a, &b| self.compare_units(&self.units[a as usize], &self.units[b as usize]));
        self.order = order;
        self.dead_in_order = 0;
        self.live_units = self.order.len();
        self.live_by_identity = self
            .order
            .iter()
            .map(|&id| (self.units[id as usize].identity, id))
            .collect();
    }

    /// Marks a unit processed: its rows become completed rows, the unit disappears.
    pub(crate) fn complete_unit(&mut self, id: u32) {
        let unit = &mut self.units[id as usize];
        let items = unit.pending_items;
        let identity = unit.identity;
        unit.pending_items = 0;
        unit.pending_tokens = 0;
        unit.in_progress = false;
        *self.completed.entry(identity).or_insert(0) += items;
        self.live_by_identity.remove(&identity);
        self.live_units -= 1;
        self.dead_in_order += 1;
        if self.dead_in_order > 1024 && self.dead_in_order > self.live_units / 2 {
            self.compact();
        }
    }

    /// Drops tombstones from the keyset index and frees their slots.
    pub(crate) fn compact(&mut self) {
        let units = &self.units;
        let free = &mut self.free;
        self.order.retain(|&id| {
            let live = units[id as usize].is_live();
            if !live {
                free.push(id);
            }
            live
        });
        self.dead_in_order = 0;
    }

    fn live_units_in_order(&self) -> impl Iterator<Item = &Unit> {
        self.order
            .iter()
            .map(|&id| &self.units[id as usize])
            .filter(|unit| unit.is_live())
    }

    /// queue/status: rows by state, per session, under the filter.
    pub(crate) fn status(&self, filter: &Filter, threshold: u32, flush: bool) -> StatusAnswer {
        let mut totals = StatusCounts::default();
        let mut per_session: BTreeMap<u32, StatusCounts> = BTreeMap::new();
        for unit in self.live_units_in_order() {
            if !filter.matches(&unit.identity) {
                continue;
            }
            let items = u64::from(unit.pending_items);
            let stalled = unit.is_stalled(threshold, flush);
            totals.add_pending(items, unit.in_progress, stalled);
            if unit.identity.session != NONE {
                per_session
                    .entry(unit.identity.session)
                    .or_default()
                    .add_pending(items, unit.in_progress, stalled);
            }
        }
        for (identity, &items) in &self.completed {
            if items == 0 || !filter.matches(identity) {
                continue;
            }
            totals.add_completed(u64::from(items));
            if identity.session != NONE {
                per_session
                    .entry(identity.session)
                    .or_default()
                    .add_completed(u64::from(items));
            }
        }
        let sessions = if filter.session.is_some() || per_session.is_empty() {
            None
        } else {
            Some(
                per_session
                    .into_iter()
                    .map(|(index, counts)| (self.sessions[index as usize].id.clone(), counts))
                    .collect(),
            )
        };
        StatusAnswer { totals, sessions }
    }

    /// Renders one unit as an API row (`classify_work_unit_row` included).
    pub(crate) fn row(&self, unit: &Unit, threshold: u32, flush: bool) -> WorkUnitRow {
        let identity = &unit.identity;
        let peer = |index: u32| self.peers.get(index as usize).cloned();
        let session = self.sessions.get(identity.session as usize);
        let gated = identity.task == TaskType::Representation && !flush;
        let tokens = u64::from(unit.pending_tokens);
        let (tokens_until_threshold, hit_threshold) = if gated {
            let threshold = u64::from(threshold);
            (threshold.saturating_sub(tokens), tokens >= threshold)
        } else {
            (0, true)
        };
        WorkUnitRow {
            work_unit_key: self.key_of(identity),
            task_type: identity.task.as_str().to_owned(),
            session_id: session.map(|s| s.id.clone()),
            session_name: session.map(|s| s.name.clone()),
            // 3.x representation payloads carry `observers` (a list), not `observer`.
            observer: if identity.task == TaskType::Dream {
                peer(identity.observer)
            } else {
                None
            },
            observed: peer(identity.observed),
            pending_items: u64::from(unit.pending_items),
            pending_tokens: tokens,
            tokens_until_threshold,
            hit_threshold,
            in_progress: unit.in_progress,
            oldest_item_at: cursor::iso_z(unit.oldest),
            newest_item_at: cursor::iso_z(unit.newest),
        }
    }

    /// Every live unit as API rows, in keyset order (for `truth`).
    pub(crate) fn all_rows(&self, threshold: u32, flush: bool) -> Vec<WorkUnitRow> {
        self.live_units_in_order()
            .map(|unit| self.row(unit, threshold, flush))
            .collect()
    }

    fn place_of(&self, unit: &Unit) -> Place {
        Place {
            oldest_micros: unit.oldest,
            key: self.key_of(&unit.identity),
        }
    }

    /// One sqlakeyset page: the rows after (or before) the bookmark's place, `size` of them,
    /// plus the cursors computed exactly like `sqlakeyset.Paging` + fastapi-pagination.
    pub(crate) fn work_units_page(
        &self,
        filter: &Filter,
        bookmark: Option<&Bookmark>,
        size: usize,
        threshold: u32,
        flush: bool,
    ) -> WorkUnitsPage {
        let backwards = bookmark.is_some_and(|b| b.backwards);
        let place = bookmark.and_then(|b| b.place.as_ref());
        let wanted = size + 1;
        let mut fetched: Vec<&Unit> = Vec::with_capacity(wanted.min(1024));
        if backwards {
            let end = match place {
                Some(place) => self.order.partition_point(|&id| {
                    self.compare_to_place(&self.units[id as usize], place) == Ordering::Less
                }),
                None => self.order.len(),
            };
            for &id in self.order[..end].iter().rev() {
                let unit = &self.units[id as usize];
                if unit.is_live() && filter.matches(&unit.identity) {
                    fetched.push(unit);
                    if fetched.len() == wanted {
                        break;
                    }
                }
            }
        } else {
            let start = match place {
                Some(place) => self.order.partition_point(|&id| {
                    self.compare_to_place(&self.units[id as usize], place) != Ordering::Greater
                }),
                None => 0,
            };
            for &id in &self.order[start..] {
                let unit = &self.units[id as usize];
                if unit.is_live() && filter.matches(&unit.identity) {
                    fetched.push(unit);
                    if fetched.len() == wanted {
                        break;
                    }
                }
            }
        }
        let excess = fetched.get(size).map(|unit| self.place_of(unit));
        let mut rows: Vec<&Unit> = fetched.into_iter().take(size).collect();
        let place_1 = rows.first().map(|unit| self.place_of(unit));
        let place_n = rows.last().map(|unit| self.place_of(unit));
        let mut four = [place.cloned(), place_1, place_n, excess];
        if backwards {
            rows.reverse();
            four.reverse();
        }
        let [before, first, last, beyond] = four;
        let next_page = beyond
            .is_some()
            .then(|| cursor::encode_bookmark(false, last.as_ref().or(before.as_ref())));
        let previous_page = before
            .is_some()
            .then(|| cursor::encode_bookmark(true, first.as_ref().or(beyond.as_ref())));
        let current_page = if backwards {
            cursor::encode_bookmark(true, beyond.as_ref())
        } else {
            cursor::encode_bookmark(false, before.as_ref())
        };
        let total = if filter.is_empty() {
            self.live_units as u64
        } else {
            self.live_units_in_order()
                .filter(|unit| filter.matches(&unit.identity))
                .count() as u64
        };
        WorkUnitsPage {
            items: rows
                .into_iter()
                .map(|unit| self.row(unit, threshold, flush))
                .collect(),
            total,
            current_page,
            current_page_backwards: cursor::encode_bookmark(true, beyond.as_ref()),
            previous_page,
            next_page,
        }
    }
}
