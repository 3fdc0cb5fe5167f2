//! A deterministic Honcho simulator: a real HTTP server imitating Honcho's queue API for all
//! three API generations (honcho-api.md: A = 2.x `deriver/status`, B = 3.x main without the
//! stalled/ready split, C = dev-1790 with the split and the cursor-paginated work-units walk),
//! with the exact shapes, status codes, error bodies and cursor quirks of the recorded
//! fixtures, a queue that evolves from a seed, and runtime fault knobs.
//!
//! It is what `demo`, the integration tests and the benchmarks run against. It owns nothing
//! of the exporter and must not depend on the exporter's modules (it imitates the server the
//! exporter talks to, so sharing code would hide contract bugs).
//!
//! Layout: [`cursor`] (the opaque cursor codec), `model` (queue data and the two read
//! queries), `dynamics` (the evolving scenarios), `recorded` (the fixture data), [`faults`]
//! (fault vocabulary), `server` (hyper HTTP handling).
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use honcho_sim::{Generation, Simulator, SimulatorConfig};
//! let handle = Simulator::start(SimulatorConfig::recorded(Generation::C)).await?;
//! println!("Honcho at {}", handle.url());
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod cost;
pub(crate) mod cursor;
mod dynamics;
pub mod faults;
mod load;
mod model;
mod recorded;
mod server;
pub mod sizes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use cost::{CostMeter, CostModel};
pub use faults::{EndpointKind, FaultAction, FaultRule, Faults};
pub use load::{LoadedTask, LoadedUnit, LoadedWorkspace, QueueState};
pub use model::{StatusCounts, WorkUnitRow};
pub use sizes::SizeGroup;

use dynamics::{Behaviour, Params, SECOND, WorkspaceSpec};
use model::{Filter, Workspace};

/// `DERIVER_REPRESENTATION_BATCH_MAX_AGE_SECONDS` of the simulated deriver (Honcho's default).
pub const BATCH_MAX_AGE_SECONDS: i64 = 1800;

/// Which Honcho API generation the simulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// Honcho 2.x: `/v2/...`, `deriver/status`, no `/health`, no `/v3`.
    A,
    /// Honcho 3.x main: `/v3/.../queue/status` without the split keys, no work-units.
    B,
    /// dev-1790: the split keys and the cursor-paginated `queue/work-units`.
    C,
}

/// What the simulated queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// The exact seeded data of the fixtures, frozen in time.
    Recorded,
    /// Steady state: arrivals, claims, completions, age flushes; the backlog stays bounded.
    Healthy,
    /// No claims at all: pending grows, in_progress 0, the oldest age grows.
    DeriverDown,
    /// Ready units exist but are never claimed; in_progress 0.
    DeriverWedged,
    /// Sub-threshold stalled units are never age-flushed; three of them, in a session without
    /// new messages, start 10–20 s short of the max age and become overdue.
    StallThenOverdue,
    /// One unit in progress, 20 minutes old at start, that never completes.
    HungInProgress,
    /// Per workspace in turn: healthy, stall-then-overdue, hung-in-progress, healthy (the demo).
    Mixed,
}

/// How much data an evolving scenario generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    /// Number of workspaces.
    pub workspaces: u32,
    /// Sessions per workspace.
    pub sessions_per_workspace: u32,
    /// Work units per workspace at start (the steady state stays near it).
    pub work_units_per_workspace: u32,
}

/// Simulated auth: opaque tokens instead of JWTs (the exporter never looks inside).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimAuth {
    /// Tokens with admin rights (`{"ad": true}`).
    pub admin_tokens: BTreeSet<String>,
    /// Workspace-scoped tokens (`{"w": workspace}`): token → workspace name.
    pub workspace_tokens: BTreeMap<String, String>,
}

/// Everything the simulator starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// API generation served.
    pub generation: Generation,
    /// Queue behaviour.
    pub scenario: Scenario,
    /// Seed of every random draw (evolving scenarios).
    pub seed: u64,
    /// Size of the generated data (evolving scenarios).
    pub scale: Scale,
    /// Simulated seconds per real second (rates and processing times; timestamps stay
    /// wall-clock so ages are real). 0 = the generated queue frozen in time.
    pub speed: f64,
    /// `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS`.
    pub batch_max_tokens: u32,
    /// `DERIVER_FLUSH_ENABLED`.
    pub flush_enabled: bool,
    /// Auth on (with these tokens) or off.
    pub auth: Option<SimAuth>,
    /// Per-workspace sizes (evolving scenarios): the groups cover the first workspaces in
    /// creation order; the others have `scale.work_units_per_workspace`. Empty: all alike.
    pub sizes: Vec<SizeGroup>,
}

impl SimulatorConfig {
    /// The recorded fixtures' server for `generation` (threshold 200, flush off, auth off).
    pub fn recorded(generation: Generation) -> Self {
        SimulatorConfig {
            generation,
            scenario: Scenario::Recorded,
            seed: 0,
            scale: Scale {
                workspaces: 4,
                sessions_per_workspace: 3,
                work_units_per_workspace: 6,
            },
            speed: 1.0,
            batch_max_tokens: 200,
            flush_enabled: false,
            auth: None,
            sizes: Vec::new(),
        }
    }

    /// A lively default for `honcho_exporter demo`: generation C, four workspaces mixing
    /// healthy flow, stalled and overdue units and a long in-progress unit.
    pub fn demo() -> Self {
        SimulatorConfig {
            generation: Generation::C,
            scenario: Scenario::Mixed,
            seed: 1,
            scale: Scale {
                workspaces: 4,
                sessions_per_workspace: 6,
                work_units_per_workspace: 40,
            },
            speed: 30.0,
            batch_max_tokens: 1024,
            flush_enabled: false,
            auth: None,
            sizes: Vec::new(),
        }
    }
}

/// The model state as the API would answer it now, for assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Generation served.
    pub generation: Generation,
    /// Scenario running.
    pub scenario: Scenario,
    /// The model time this truth is for, microseconds since the Unix epoch.
    pub at_micros: i64,
    /// The threshold (`representation_batch_max_tokens`).
    pub representation_batch_max_tokens: u32,
    /// `flush_enabled`.
    pub flush_enabled: bool,
    /// Per workspace name (vanished workspaces are absent).
    pub workspaces: BTreeMap<String, WorkspaceTruth>,
}

/// One workspace's truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceTruth {
    /// queue/status totals, with the stalled/ready split.
    pub status: StatusCounts,
    /// queue/status `sessions`, keyed by internal session id (empty where the API sends null).
    pub sessions: BTreeMap<String, StatusCounts>,
    /// Internal session id → session name, for every session.
    pub session_names: BTreeMap<String, String>,
    /// Every work unit row in keyset order (what a full work-units walk returns).
    pub work_units: Vec<WorkUnitRow>,
}

/// Requests answered, per endpoint kind and status code (0 = no answer: hang or drop).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// endpoint kind name → status code → count.
    pub by_endpoint: BTreeMap<String, BTreeMap<u16, u64>>,
}

impl RequestCounts {
    /// Requests of `kind` answered with `status`.
    pub fn count(&self, kind: EndpointKind, status: u16) -> u64 {
        self.by_endpoint
            .get(kind.as_str())
            .and_then(|codes| codes.get(&status))
            .copied()
            .unwrap_or(0)
    }

    /// All requests of `kind`.
    pub fn total(&self, kind: EndpointKind) -> u64 {
        self.by_endpoint
            .get(kind.as_str())
            .map_or(0, |codes| codes.values().sum())
    }

    fn record(&mut self, kind: EndpointKind, status: u16) {
        *self
            .by_endpoint
            .entry(kind.as_str().to_owned())
            .or_default()
            .entry(status)
            .or_insert(0) += 1;
    }
}

/// The queue data of all workspaces.
#[derive(Debug)]
pub(crate) struct Model {
    /// Workspaces in creation order, each behind its own lock.
    pub workspaces: Vec<Mutex<Workspace>>,
    /// Name → index.
    pub index: HashMap<String, usize>,
}

/// State shared by the handle, the server and its connections.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Current configuration (generation and scenario change at runtime).
    pub config: RwLock<SimulatorConfig>,
    /// Current queue data (replaced when a switch needs new data).
    pub model: RwLock<Arc<Model>>,
    /// Current faults.
    pub faults: Mutex<Faults>,
    /// Requests served.
    pub counts: Mutex<RequestCounts>,
    /// Counter for fresh endless-walk cursors.
    pub endless: std::sync::atomic::AtomicU64,
    /// The Honcho cost model (off by default) and its meter.
    pub cost: cost::Costing,
}

/// A Honcho simulator. Cheap to clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

/// A running simulator on `127.0.0.1`. Dropping it stops the server.
#[derive(Debug)]
pub struct SimulatorHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The simulator, for fault knobs and truth.
    pub simulator: Simulator,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl SimulatorHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it (open connections are cut).
    pub async fn shutdown(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn micros_of(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn now_micros() -> i64 {
    micros_of(SystemTime::now())
}

fn behaviour_of(scenario: Scenario, index: usize) -> (Behaviour, bool, bool) {
    match scenario {
        Scenario::Recorded | Scenario::Healthy => (Behaviour::Healthy, false, false),
        Scenario::DeriverDown | Scenario::DeriverWedged => (Behaviour::NoClaims, false, false),
        Scenario::StallThenOverdue => (Behaviour::NoAgeFlush, true, false),
        Scenario::HungInProgress => (Behaviour::Healthy, false, true),
        Scenario::Mixed => match index % 4 {
            1 => (Behaviour::NoAgeFlush, true, false),
            2 => (Behaviour::Healthy, false, true),
            _ => (Behaviour::Healthy, false, false),
        },
    }
}

fn build_model(config: &SimulatorConfig, start: i64) -> Model {
    let workspaces: Vec<Workspace> = if config.scenario == Scenario::Recorded {
        recorded::workspaces(config.generation)
    } else {
        let params = Params {
            speed: config.speed,
            threshold: config.batch_max_tokens,
            flush: config.flush_enabled,
            max_age: BATCH_MAX_AGE_SECONDS * SECOND,
        };
        (0..config.scale.workspaces as usize)
            .map(|index| {
                let (behaviour, stranded_overdue, hung_unit) = behaviour_of(config.scenario, index);
                dynamics::build_workspace(
                    &WorkspaceSpec {
                        index,
                        seed: config.seed,
                        sessions: config.scale.sessions_per_workspace,
                        units: sizes::group_of(&config.sizes, index)
                            .map_or(config.scale.work_units_per_workspace, |group| {
                                group.work_units
                            }),
                        behaviour,
                        stranded_overdue,
                        hung_unit,
                        start,
                    },
                    params,
                )
            })
            .collect()
    };
    let index = workspaces
        .iter()
        .enumerate()
        .map(|(i, ws)| (ws.name.clone(), i))
        .collect();
    Model {
        workspaces: workspaces.into_iter().map(Mutex::new).collect(),
        index,
    }
}

impl Simulator {
    /// A simulator whose evolving model starts now.
    pub fn new(config: SimulatorConfig) -> Self {
        Simulator::new_at(config, SystemTime::now())
    }

    /// A simulator whose evolving model starts at `start` (two simulators with the same
    /// config and start hold the same queue at the same time: determinism tests).
    pub fn new_at(config: SimulatorConfig, start: SystemTime) -> Self {
        let model = build_model(&config, micros_of(start));
        Simulator {
            shared: Arc::new(Shared {
                config: RwLock::new(config),
                model: RwLock::new(Arc::new(model)),
                faults: Mutex::new(Faults::none()),
                counts: Mutex::new(RequestCounts::default()),
                endless: std::sync::atomic::AtomicU64::new(0),
                cost: cost::Costing::default(),
            }),
        }
    }

    /// Serves HTTP on `listener` until `shutdown` completes; open connections are then cut.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        server::serve(self.shared, listener, shutdown).await
    }

    /// Binds `127.0.0.1:0` and serves in a background task.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let simulator = Simulator::new(config);
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(simulator.clone().serve(listener, async move {
            let _ = receiver.await;
        }));
        Ok(SimulatorHandle {
            addr,
            simulator,
            shutdown: Some(sender),
            task: Some(task),
        })
    }

    /// Turns the Honcho cost model on (`Some`) or off, and resets its meter.
    pub fn set_cost_model(&self, model: Option<CostModel>) {
        self.shared.cost.set(model);
    }

    /// What the cost model measured since it was set (or its meter was reset).
    pub fn cost_meter(&self) -> CostMeter {
        self.shared.cost.meter()
    }

    /// Restarts the cost meter (peak, counts, busy time), keeping the model: what comes after
    /// an event (a reload, a fault) is measured on its own.
    pub fn reset_cost_meter(&self) {
        self.shared.cost.reset_meter();
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults lock not poisoned") = faults;
    }

    /// Switches the API generation (Honcho upgraded or downgraded). The recorded scenario
    /// reloads the recorded data of that generation.
    pub fn set_generation(&self, generation: Generation) {
        let mut config = self
            .shared
            .config
            .write()
            .expect("config lock not poisoned");
        config.generation = generation;
        if config.scenario == Scenario::Recorded {
            *self.shared.model.write().expect("model lock not poisoned") =
                Arc::new(build_model(&config, now_micros()));
        }
    }

    /// Switches the scenario. Between healthy, deriver-down and deriver-wedged the queue is
    /// kept and only the deriver's behaviour changes (the deriver goes down or comes back);
    /// any other switch rebuilds the data from the seed, starting now.
    pub fn set_scenario(&self, scenario: Scenario) {
        let mut config = self
            .shared
            .config
            .write()
            .expect("config lock not poisoned");
        let keeps_data = |s: Scenario| {
            matches!(
                s,
                Scenario::Healthy | Scenario::DeriverDown | Scenario::DeriverWedged
            )
        };
        let previous = config.scenario;
        config.scenario = scenario;
        let model = self.model();
        if keeps_data(previous) && keeps_data(scenario) {
            let now = now_micros();
            for (index, workspace) in model.workspaces.iter().enumerate() {
                let mut workspace = workspace.lock().expect("workspace lock not poisoned");
                dynamics::advance(&mut workspace, now);
                dynamics::set_behaviour(&mut workspace, behaviour_of(scenario, index).0);
            }
        } else {
            *self.shared.model.write().expect("model lock not poisoned") =
                Arc::new(build_model(&config, now_micros()));
        }
    }

    /// The current model state, exactly what the API would answer now.
    pub fn truth(&self) -> Truth {
        self.truth_at(SystemTime::now())
    }

    /// The model state at `at` (advancing the evolving model to it; time never goes back).
    pub fn truth_at(&self, at: SystemTime) -> Truth {
        let at = micros_of(at);
        let config = self.config();
        let (threshold, flush) = (config.batch_max_tokens, config.flush_enabled);
        let model = self.model();
        let mut workspaces = BTreeMap::new();
        for workspace in &model.workspaces {
            let mut workspace = workspace.lock().expect("workspace lock not poisoned");
            dynamics::advance(&mut workspace, at);
            if workspace.vanished {
                continue;
            }
            let answer = workspace.status(&Filter::default(), threshold, flush);
            workspaces.insert(
                workspace.name.clone(),
                WorkspaceTruth {
                    status: answer.totals,
                    sessions: answer.sessions.unwrap_or_default(),
                    session_names: workspace
                        .sessions
                        .iter()
                        .map(|s| (s.id.clone(), s.name.clone()))
                        .collect(),
                    work_units: workspace.all_rows(threshold, flush),
                },
            );
        }
        Truth {
            generation: config.generation,
            scenario: config.scenario,
            at_micros: at,
            representation_batch_max_tokens: threshold,
            flush_enabled: flush,
            workspaces,
        }
    }

    /// Requests served so far, per endpoint kind and status.
    pub fn request_counts(&self) -> RequestCounts {
        self.shared
            .counts
            .lock()
            .expect("counts lock not poisoned")
            .clone()
    }

    fn config(&self) -> SimulatorConfig {
        self.shared
            .config
            .read()
            .expect("config lock not poisoned")
            .clone()
    }

    fn model(&self) -> Arc<Model> {
        self.shared
            .model
            .read()
            .expect("model lock not poisoned")
            .clone()
    }
}
