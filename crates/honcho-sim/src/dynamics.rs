//! How an evolving workspace's queue changes over time: message arrivals, summary and dream
//! enqueues, a deriver that claims and completes work units, and the periodic cleanup of
//! completed rows. A deterministic discrete-event simulation per workspace, driven lazily:
//! `advance(to)` replays every event up to `to` in time order, so the state at a given time
//! depends only on the seed and the start time, never on when requests arrived.
//!
//! Owns: the scenario behaviours and the generation of evolving workspaces. Must not do HTTP.

use std::collections::BTreeSet;

use super::model::{Identity, NONE, OrderedObject, TaskType, Unit, Workspace};

/// Microseconds per second.
pub(crate) const SECOND: i64 = 1_000_000;

/// Simulated seconds between two cleanups of completed rows (Honcho: 12 h; compressed so
/// that `completed` visibly drops in a demo).
const CLEANUP_INTERVAL_SIM_SECONDS: f64 = 3600.0;

/// Messages per session between two summary enqueues (`messages_per_short_summary`).
const SUMMARY_CADENCE: u32 = 10;

/// A small, fast, deterministic PRNG (SplitMix64): the simulator must replay identically for a
/// seed regardless of crate versions.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`, decorrelated by `stream` (e.g. a workspace index).
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = SplitMix64(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A 21-character nanoid-like id (Honcho's internal ids).
    pub(crate) fn nanoid(&mut self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        (0..21)
            .map(|_| ALPHABET[self.below(64) as usize] as char)
            .collect()
    }
}

/// What the deriver of one workspace does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Claims ready units, age-flushes stalled ones, completes everything.
    Healthy,
    /// Claims nothing (deriver down or wedged).
    NoClaims,
    /// Claims ready units but never age-flushes stalled ones (the overdue bug).
    NoAgeFlush,
}

/// Parameters shared by all evolving workspaces of a simulator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS`.
    pub threshold: u32,
    /// `DERIVER_FLUSH_ENABLED`.
    pub flush: bool,
    /// `DERIVER_REPRESENTATION_BATCH_MAX_AGE_SECONDS` in microseconds (real time: ages shown
    /// by the API are wall-clock ages).
    pub max_age: i64,
}

/// The evolving state of one workspace's deriver and producers.
#[derive(Debug)]
pub(crate) struct Dynamics {
    behaviour: Behaviour,
    params: Params,
    rng: SplitMix64,
    /// Time the workspace has been advanced to (microseconds since the epoch).
    now: i64,
    next_arrival: i64,
    next_cleanup: i64,
    /// Mean real microseconds between two message arrivals.
    arrival_mean: f64,
    concurrency: u32,
    in_progress: u32,
    /// Claimed units by completion time.
    completions: BTreeSet<(i64, u32)>,
    /// Unclaimed live units the deriver would take now, by oldest item.
    ready: BTreeSet<(i64, u32)>,
    /// Unclaimed live stalled units, by oldest item.
    stalled: BTreeSet<(i64, u32)>,
    /// Messages so far per session (summary cadence).
    session_messages: Vec<u32>,
    /// Sessions that receive new messages (stranded sessions do not).
    arrival_sessions: Vec<u32>,
    /// Peers that send messages.
    arrival_peers: u32,
}

impl Dynamics {
    fn real_micros(&self, sim_seconds: f64) -> i64 {
        // Capped at ~3 years so that `now + duration` never overflows.
        ((sim_seconds / self.params.speed.max(1e-9)) * SECOND as f64)
            .round()
            .min(1e17) as i64
    }

    fn is_stalled(&self, unit: &Unit) -> bool {
        unit.is_stalled(self.params.threshold, self.params.flush)
    }
}

/// Seeds, sizes and timing of one evolving workspace.
pub(crate) struct WorkspaceSpec {
    pub index: usize,
    pub seed: u64,
    pub sessions: u32,
    pub units: u32,
    pub behaviour: Behaviour,
    /// Add three stalled units about to pass the max age, in a session that gets no messages.
    pub stranded_overdue: bool,
    /// Add one claimed unit, 20 minutes old, that never completes.
    pub hung_unit: bool,
    pub start: i64,
}

/// Builds an evolving workspace at `spec.start` (deterministic for the seed and index).
pub(crate) fn build_workspace(spec: &WorkspaceSpec, params: Params) -> Workspace {
    let mut rng = SplitMix64::new(spec.seed, spec.index as u64 + 1);
    let tiers = ["gold", "silver", "bronze"];
    let metadata = OrderedObject(vec![(
        "tier".to_owned(),
        serde_json::Value::from(tiers[spec.index % 3]),
    )]);
    let name = crate::sizes::workspace_name(spec.index);
    let mut workspace = Workspace::new(name, metadata, spec.start - 86_400 * SECOND);
    let sessions = spec.sessions.max(1);
    let units = spec.units;
    let peers = units.div_ceil(sessions).max(2);
    for p in 0..peers {
        workspace.peer(&format!("peer-{:04}", p + 1));
    }
    for s in 0..sessions {
        let id = rng.nanoid();
        let created = spec.start - 3600 * SECOND - i64::from(sessions - s) * SECOND;
        workspace.add_session(
            format!("session-{:04}", s + 1),
            id,
            created,
            serde_json::json!({}),
        );
    }
    let threshold = params.threshold.max(1);
    let max_age_seconds = (params.max_age / SECOND).max(2) as u64;
    let mut seen = std::collections::HashSet::new();
    workspace.units.reserve(units as usize);
    for i in 0..units {
        let s = i % sessions;
        let j = i / sessions;
        let mut identity = if j == 1 {
            Identity {
                task: TaskType::Summary,
                session: s,
                observer: NONE,
                observed: NONE,
            }
        } else if i % 50 == 49 {
            let peer = j % peers;
            Identity {
                task: TaskType::Dream,
                session: NONE,
                observer: peer,
                observed: peer,
            }
        } else {
            representation(s, j % peers)
        };
        if !seen.insert(identity) {
            identity = representation(s, j % peers);
            seen.insert(identity);
        }
        let tokens = match identity.task {
            TaskType::Representation => 1 + rng.below(u64::from(threshold) * 2) as u32,
            TaskType::Summary => 5 + rng.below(55) as u32,
            TaskType::Dream => 0,
        };
        let items = (tokens / 12).max(1);
        // Younger than half the max age: a healthy queue shows no overdue unit at start.
        let age = rng.below(max_age_seconds / 2 * SECOND as u64) as i64 + 1;
        let oldest = spec.start - age;
        let newest = oldest + rng.below(age as u64) as i64;
        workspace.units.push(Unit {
            identity,
            pending_items: items,
            pending_tokens: tokens,
            in_progress: false,
            oldest,
            newest,
        });
        if rng.below(10) == 0 {
            workspace
                .completed
                .insert(identity, 1 + rng.below(5) as u32);
        }
    }
    let regular_sessions: Vec<u32> = (0..sessions).collect();
    let mut hung_id = None;
    if spec.stranded_overdue {
        let s = workspace.add_session(
            "stranded-0001".to_owned(),
            rng.nanoid(),
            spec.start - 2 * params.max_age,
            serde_json::json!({}),
        );
        for (k, margin) in [10, 15, 20].into_iter().enumerate() {
            let tokens = threshold / 4 + k as u32;
            let oldest = spec.start - params.max_age + margin * SECOND + 123_457;
            workspace.units.push(Unit {
                identity: representation(s, k as u32 % peers),
                pending_items: (tokens / 12).max(1),
                pending_tokens: tokens,
                in_progress: false,
                oldest,
                newest: oldest,
            });
        }
    }
    if spec.hung_unit {
        let s = workspace.add_session(
            "hung-0001".to_owned(),
            rng.nanoid(),
            spec.start - 3600 * SECOND,
            serde_json::json!({}),
        );
        let oldest = spec.start - 20 * 60 * SECOND + 654_321;
        hung_id = Some(workspace.units.len() as u32);
        workspace.units.push(Unit {
            identity: representation(s, 0),
            pending_items: 4,
            pending_tokens: threshold + 40,
            in_progress: true,
            oldest,
            newest: oldest + 30 * SECOND,
        });
    }
    workspace.rebuild_order();
    let concurrency = (units / 20).clamp(2, 16);
    let rate_per_sim_second = (f64::from(units) / 300.0).clamp(0.05, 20.0);
    let mut dynamics = Dynamics {
        behaviour: spec.behaviour,
        params,
        rng,
        now: spec.start,
        next_arrival: spec.start,
        next_cleanup: spec.start,
        arrival_mean: 0.0,
        concurrency: concurrency + u32::from(hung_id.is_some()),
        in_progress: u32::from(hung_id.is_some()),
        completions: BTreeSet::new(),
        ready: BTreeSet::new(),
        stalled: BTreeSet::new(),
        session_messages: vec![0; workspace.sessions.len()],
        arrival_sessions: regular_sessions,
        arrival_peers: peers,
    };
    dynamics.arrival_mean = dynamics.real_micros(1.0 / rate_per_sim_second) as f64;
    dynamics.next_arrival = spec.start + draw_exponential(&mut dynamics);
    dynamics.next_cleanup = spec.start + dynamics.real_micros(CLEANUP_INTERVAL_SIM_SECONDS);
    for &id in &workspace.order {
        let unit = &workspace.units[id as usize];
        if unit.in_progress {
            continue;
        }
        if dynamics.is_stalled(unit) {
            dynamics.stalled.insert((unit.oldest, id));
        } else {
            dynamics.ready.insert((unit.oldest, id));
        }
    }
    workspace.dynamics = Some(dynamics);
    try_claims(&mut workspace, spec.start);
    if params.speed <= 0.0 {
        // Speed 0: the queue as generated (initial claims included), frozen in time.
        workspace.dynamics = None;
    }
    workspace
}

fn representation(session: u32, observed: u32) -> Identity {
    Identity {
        task: TaskType::Representation,
        session,
        observer: NONE,
        observed,
    }
}

fn draw_exponential(dynamics: &mut Dynamics) -> i64 {
    let uniform = dynamics.rng.unit_f64();
    ((-(1.0 - uniform).ln()) * dynamics.arrival_mean).max(1.0) as i64
}

/// Changes the deriver's behaviour from now on (runtime scenario switch).
pub(crate) fn set_behaviour(workspace: &mut Workspace, behaviour: Behaviour) {
    if let Some(dynamics) = workspace.dynamics.as_mut() {
        dynamics.behaviour = behaviour;
    }
}

/// Replays every event up to `to` (microseconds since the epoch). No-op for frozen workspaces
/// and for times already passed.
pub(crate) fn advance(workspace: &mut Workspace, to: i64) {
    loop {
        let Some(dynamics) = workspace.dynamics.as_ref() else {
            return;
        };
        if to <= dynamics.now {
            return;
        }
        let completion = dynamics.completions.first().map(|&(at, _)| at);
        let age_flush = (dynamics.behaviour == Behaviour::Healthy
            && dynamics.in_progress < dynamics.concurrency)
            .then(|| {
                dynamics
                    .stalled
                    .first()
                    .map(|&(oldest, _)| (oldest + dynamics.params.max_age).max(dynamics.now))
            })
            .flatten();
        let mut next = dynamics.next_arrival.min(dynamics.next_cleanup);
        if let Some(at) = completion {
            next = next.min(at);
        }
        if let Some(at) = age_flush {
            next = next.min(at);
        }
        if next > to {
            if let Some(dynamics) = workspace.dynamics.as_mut() {
                dynamics.now = to;
            }
            return;
        }
        let next = next.max(dynamics.now);
        let arrival_due = dynamics.next_arrival <= next;
        let cleanup_due = dynamics.next_cleanup <= next;
        let completion_due = completion.is_some_and(|at| at <= next);
        if let Some(dynamics) = workspace.dynamics.as_mut() {
            dynamics.now = next;
        }
        if completion_due {
            complete_due(workspace, next);
        } else if arrival_due {
            arrive(workspace, next);
        } else if cleanup_due {
            cleanup(workspace);
        }
        try_claims(workspace, next);
    }
}

fn complete_due(workspace: &mut Workspace, now: i64) {
    let Some(dynamics) = workspace.dynamics.as_mut() else {
        return;
    };
    let mut done = Vec::new();
    while let Some(&(at, id)) = dynamics.completions.first() {
        if at > now {
            break;
        }
        dynamics.completions.pop_first();
        dynamics.in_progress -= 1;
        done.push(id);
    }
    for id in done {
        workspace.complete_unit(id);
    }
}

fn cleanup(workspace: &mut Workspace) {
    workspace.completed.clear();
    workspace.compact();
    if let Some(dynamics) = workspace.dynamics.as_mut() {
        dynamics.next_cleanup += dynamics.real_micros(CLEANUP_INTERVAL_SIM_SECONDS);
    }
}

fn arrive(workspace: &mut Workspace, now: i64) {
    let Some(dynamics) = workspace.dynamics.as_mut() else {
        return;
    };
    dynamics.next_arrival = now + draw_exponential(dynamics);
    if dynamics.arrival_sessions.is_empty() {
        return;
    }
    let session = dynamics.arrival_sessions
        [dynamics.rng.below(dynamics.arrival_sessions.len() as u64) as usize];
    let peer = dynamics.rng.below(u64::from(dynamics.arrival_peers)) as u32;
    let tokens = 4 + dynamics.rng.below(40) as u32;
    let dream = dynamics.rng.below(100) == 0;
    dynamics.session_messages[session as usize] += 1;
    let summary = dynamics.session_messages[session as usize] % SUMMARY_CADENCE == 0;
    add_item(workspace, representation(session, peer), tokens, now);
    if summary {
        let identity = Identity {
            task: TaskType::Summary,
            session,
            observer: NONE,
            observed: NONE,
        };
        add_item(workspace, identity, tokens, now);
    }
    if dream {
        let identity = Identity {
            task: TaskType::Dream,
            session: NONE,
            observer: peer,
            observed: peer,
        };
        add_item(workspace, identity, 0, now);
    }
}

fn add_item(workspace: &mut Workspace, identity: Identity, tokens: u32, now: i64) {
    if let Some(&id) = workspace.live_by_identity.get(&identity) {
        let Some(dynamics) = workspace.dynamics.as_mut() else {
            return;
        };
        let unit = &mut workspace.units[id as usize];
        let was_stalled = !unit.in_progress && dynamics.is_stalled(unit);
        unit.pending_items += 1;
        unit.pending_tokens += tokens;
        unit.newest = now;
        if was_stalled && !dynamics.is_stalled(unit) {
            dynamics.stalled.remove(&(unit.oldest, id));
            dynamics.ready.insert((unit.oldest, id));
        }
        return;
    }
    let id = workspace.insert_unit(Unit {
        identity,
        pending_items: 1,
        pending_tokens: tokens,
        in_progress: false,
        oldest: now,
        newest: now,
    });
    let Some(dynamics) = workspace.dynamics.as_mut() else {
        return;
    };
    let unit = &workspace.units[id as usize];
    if dynamics.is_stalled(unit) {
        dynamics.stalled.insert((now, id));
    } else {
        dynamics.ready.insert((now, id));
    }
}

/// The deriver takes work while it has free slots: the oldest ready unit, or the oldest
/// stalled unit once its oldest item passed the max age (not in the overdue-bug behaviour).
fn try_claims(workspace: &mut Workspace, now: i64) {
    let Some(dynamics) = workspace.dynamics.as_mut() else {
        return;
    };
    if dynamics.behaviour == Behaviour::NoClaims {
        return;
    }
    while dynamics.in_progress < dynamics.concurrency {
        let ready = dynamics.ready.first().copied();
        let aged = dynamics.stalled.first().copied().filter(|&(oldest, _)| {
            dynamics.behaviour == Behaviour::Healthy && oldest + dynamics.params.max_age <= now
        });
        let pick = match (ready, aged) {
            (Some(r), Some(a)) => {
                if a < r {
                    dynamics.stalled.remove(&a);
                    a
                } else {
                    dynamics.ready.remove(&r);
                    r
                }
            }
            (Some(r), None) => {
                dynamics.ready.remove(&r);
                r
            }
            (None, Some(a)) => {
                dynamics.stalled.remove(&a);
                a
            }
            (None, None) => return,
        };
        let id = pick.1;
        let unit = &mut workspace.units[id as usize];
        unit.in_progress = true;
        let sim_seconds = match unit.identity.task {
            TaskType::Representation => 5.0 + dynamics.rng.unit_f64() * 25.0,
            TaskType::Summary => 10.0 + dynamics.rng.unit_f64() * 30.0,
            TaskType::Dream => 300.0 + dynamics.rng.unit_f64() * 600.0,
        };
        let done_at = now + dynamics.real_micros(sim_seconds).max(1);
        dynamics.completions.insert((done_at, id));
        dynamics.in_progress += 1;
    }
}
