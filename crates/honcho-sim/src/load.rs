//! Loading an arbitrary queue state into the simulator, frozen in time: what a test needs to
//! put the *same* state into the simulator and into another store (Honcho's Postgres tables)
//! and compare what an exporter makes of each.
//!
//! Owns only the translation of the public [`QueueState`] description into the model; it
//! neither evolves the queue nor serves anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::model::{Identity, NONE, OrderedObject, TaskType, Unit, Workspace};
use crate::{Model, Scenario, Simulator, SimulatorConfig};

/// The task type of a loaded work unit (the tracked ones: the API counts nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadedTask {
    /// `representation`, keyed by session and observed peer (3.x keys, no observer).
    Representation,
    /// `summary`, keyed by session.
    Summary,
    /// `dream`, keyed by observer and observed peer, in no session.
    Dream,
}

/// One work unit: its identity, its unprocessed rows aggregated, and its completed rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedUnit {
    /// The task type.
    pub task: LoadedTask,
    /// Index into the workspace's sessions (`None` for dreams).
    pub session: Option<usize>,
    /// Observer peer name (dreams only).
    pub observer: Option<String>,
    /// Observed peer name (representation and dream).
    pub observed: Option<String>,
    /// Unprocessed rows (0: only completed rows remain).
    pub pending_items: u32,
    /// Sum of the unprocessed rows' message tokens.
    pub pending_tokens: u32,
    /// Claimed by the deriver.
    pub in_progress: bool,
    /// Oldest unprocessed row, microseconds since the epoch.
    pub oldest_micros: i64,
    /// Newest unprocessed row, microseconds since the epoch.
    pub newest_micros: i64,
    /// Processed rows of the same unit still in the table.
    pub completed_items: u32,
}

/// One workspace's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedWorkspace {
    /// Workspace name.
    pub name: String,
    /// Sessions as (internal 21-character id, name).
    pub sessions: Vec<(String, String)>,
    /// Work units; at most one per identity.
    pub units: Vec<LoadedUnit>,
}

/// A whole queue state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueState {
    /// The workspaces.
    pub workspaces: Vec<LoadedWorkspace>,
}

impl LoadedWorkspace {
    /// The `work_unit_key` Honcho writes for a unit of this workspace (`construct_work_unit_key`).
    pub fn work_unit_key(&self, unit: &LoadedUnit) -> String {
        let session = unit
            .session
            .and_then(|index| self.sessions.get(index))
            .map_or("None", |(_, name)| name.as_str());
        let peer = |name: &Option<String>| name.clone().unwrap_or_else(|| "None".to_string());
        let ws = &self.name;
        match unit.task {
            LoadedTask::Representation => {
                format!("representation:{ws}:{session}:{}", peer(&unit.observed))
            }
            LoadedTask::Summary => format!("summary:{ws}:{session}:None:None"),
            LoadedTask::Dream => format!(
                "dream:omni:{ws}:{}:{}",
                peer(&unit.observer),
                peer(&unit.observed)
            ),
        }
    }
}

fn build(loaded: &LoadedWorkspace, created_at: i64) -> Workspace {
    let mut workspace = Workspace::new(loaded.name.clone(), OrderedObject::default(), created_at);
    for (id, name) in &loaded.sessions {
        workspace.add_session(name.clone(), id.clone(), created_at, serde_json::json!({}));
    }
    for unit in &loaded.units {
        let identity = Identity {
            task: match unit.task {
                LoadedTask::Representation => TaskType::Representation,
                LoadedTask::Summary => TaskType::Summary,
                LoadedTask::Dream => TaskType::Dream,
            },
            session: unit
                .session
                .map_or(NONE, |index| u32::try_from(index).unwrap_or(NONE)),
            observer: unit
                .observer
                .as_deref()
                .map_or(NONE, |name| workspace.peer(name)),
            observed: unit
                .observed
                .as_deref()
                .map_or(NONE, |name| workspace.peer(name)),
        };
        if unit.pending_items > 0 {
            workspace.units.push(Unit {
                identity,
                pending_items: unit.pending_items,
                pending_tokens: unit.pending_tokens,
                in_progress: unit.in_progress,
                oldest: unit.oldest_micros,
                newest: unit.newest_micros,
            });
        }
        if unit.completed_items > 0 {
            *workspace.completed.entry(identity).or_insert(0) += unit.completed_items;
        }
    }
    workspace.rebuild_order();
    workspace
}

impl Simulator {
    /// A simulator serving exactly `state`, frozen (no arrivals, claims or completions), with
    /// `config`'s generation, threshold, flush flag and auth.
    pub fn with_state(config: SimulatorConfig, state: &QueueState) -> Simulator {
        let frozen = SimulatorConfig {
            scenario: Scenario::Recorded,
            speed: 0.0,
            ..config
        };
        let simulator = Simulator::new_at(frozen, SystemTime::now());
        let created_at = crate::now_micros();
        let workspaces: Vec<Workspace> = state
            .workspaces
            .iter()
            .map(|loaded| build(loaded, created_at))
            .collect();
        let index: HashMap<String, usize> = workspaces
            .iter()
            .enumerate()
            .map(|(i, ws)| (ws.name.clone(), i))
            .collect();
        *simulator
            .shared
            .model
            .write()
            .expect("model lock not poisoned") = Arc::new(Model {
            workspaces: workspaces.into_iter().map(Mutex::new).collect(),
            index,
        });
        simulator
    }

    /// Starts a simulator serving exactly `state` on a free loopback port.
    pub async fn start_with_state(
        config: SimulatorConfig,
        state: &QueueState,
    ) -> std::io::Result<crate::SimulatorHandle> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let simulator = Simulator::with_state(config, state);
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(simulator.clone().serve(listener, async move {
            let _ = receiver.await;
        }));
        Ok(crate::SimulatorHandle {
            addr,
            simulator,
            shutdown: Some(sender),
            task: Some(task),
        })
    }
}
