//! `honcho-sim`: the deterministic Honcho simulator as a standalone server, for scripts,
//! benchmarks and manual exploration. Prints `listening on http://ADDR` once bound (so a
//! script can read the port), serves until SIGTERM or SIGINT. Runtime knobs are the
//! simulator's admin endpoints: `GET /_sim/truth`, `GET /_sim/requests`, `GET /_sim/cost` (the
//! cost model's meter; `POST /_sim/cost/reset` restarts it), `POST /_sim/faults`, `POST /_sim/generation`, `POST /_sim/scenario`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use honcho_sim::{
    Generation, Scale, Scenario, SimAuth, Simulator, SimulatorConfig, SizeGroup, sizes,
};

/// Command line of `honcho-sim`.
#[derive(Debug, Parser)]
#[command(
    name = "honcho-sim",
    version,
    about = "A deterministic Honcho queue API simulator"
)]
struct Args {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// API generation: a (2.x), b (3.x main), c (dev-1790 with work-units).
    #[arg(long, default_value = "c", value_parser = parse_generation)]
    generation: Generation,
    /// Scenario: recorded, healthy, deriver_down, deriver_wedged, stall_then_overdue,
    /// hung_in_progress, mixed.
    #[arg(long, default_value = "healthy", value_parser = parse_scenario)]
    scenario: Scenario,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of workspaces.
    #[arg(long, default_value_t = 4)]
    workspaces: u32,
    /// Sessions per workspace.
    #[arg(long, default_value_t = 6)]
    sessions_per_workspace: u32,
    /// Work units per workspace at start.
    #[arg(long, default_value_t = 40)]
    work_units_per_workspace: u32,
    /// Workspaces of their own size as COUNTxUNITS[:ROWS] (e.g. 1x50000:150000): the groups
    /// cover the first workspaces in order, the others have --work-units-per-workspace; ROWS is
    /// the Honcho backlog the cost model charges for. Repeatable.
    #[arg(long = "size", value_name = "COUNTxUNITS[:ROWS]")]
    sizes: Vec<SizeGroup>,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Turns the Honcho cost model on: answers take as long as the measured Honcho takes for
    /// the workspace's backlog, divided by this speed factor (1 = real time). Off by default.
    #[arg(long, value_name = "FACTOR")]
    cost_speed: Option<f64>,
    /// Queue rows the cost model charges for a workspace without ROWS in --size (default: 3
    /// per work unit, the ratio of the measured 150 k rows / 50 k units).
    #[arg(long, value_name = "ROWS")]
    cost_default_rows: Option<u64>,
    /// DERIVER_REPRESENTATION_BATCH_MAX_TOKENS.
    #[arg(long, default_value_t = 1024)]
    batch_max_tokens: u32,
    /// DERIVER_FLUSH_ENABLED.
    #[arg(long)]
    flush: bool,
    /// An admin token (turns auth on); repeatable.
    #[arg(long)]
    admin_token: Vec<String>,
    /// A workspace token as WORKSPACE=TOKEN (turns auth on); repeatable.
    #[arg(long)]
    workspace_token: Vec<String>,
}

fn parse_generation(text: &str) -> Result<Generation, String> {
    serde_json::from_value(serde_json::Value::from(text.to_ascii_lowercase()))
        .map_err(|_| format!("unknown generation {text:?} (expected a, b or c)"))
}

fn parse_scenario(text: &str) -> Result<Scenario, String> {
    serde_json::from_value(serde_json::Value::from(text.replace('-', "_")))
        .map_err(|error| format!("unknown scenario {text:?}: {error}"))
}

fn cost_model_from(args: &Args) -> anyhow::Result<Option<honcho_sim::CostModel>> {
    let Some(speed) = args.cost_speed else {
        return Ok(None);
    };
    anyhow::ensure!(
        speed.is_finite() && speed > 0.0,
        "--cost-speed {speed} is not a positive speed factor"
    );
    let default_rows = args
        .cost_default_rows
        .unwrap_or(u64::from(args.work_units_per_workspace) * 3);
    Ok(Some(sizes::cost_model(&args.sizes, speed, default_rows)))
}

fn config_from(args: &Args) -> anyhow::Result<SimulatorConfig> {
    anyhow::ensure!(
        sizes::covered(&args.sizes) <= u64::from(args.workspaces),
        "--size groups cover {} workspaces, more than --workspaces {}",
        sizes::covered(&args.sizes),
        args.workspaces
    );
    let auth = if args.admin_token.is_empty() && args.workspace_token.is_empty() {
        None
    } else {
        let mut workspace_tokens = BTreeMap::new();
        for pair in &args.workspace_token {
            let (workspace, token) = pair
                .split_once('=')
                .with_context(|| format!("--workspace-token {pair:?} is not WORKSPACE=TOKEN"))?;
            workspace_tokens.insert(token.to_owned(), workspace.to_owned());
        }
        Some(SimAuth {
            admin_tokens: args.admin_token.iter().cloned().collect::<BTreeSet<_>>(),
            workspace_tokens,
        })
    };
    let base = if args.scenario == Scenario::Recorded {
        SimulatorConfig::recorded(args.generation)
    } else {
        SimulatorConfig::demo()
    };
    Ok(SimulatorConfig {
        generation: args.generation,
        scenario: args.scenario,
        seed: args.seed,
        scale: Scale {
            workspaces: args.workspaces,
            sessions_per_workspace: args.sessions_per_workspace,
            work_units_per_workspace: args.work_units_per_workspace,
        },
        speed: args.speed,
        batch_max_tokens: if args.scenario == Scenario::Recorded {
            base.batch_max_tokens
        } else {
            args.batch_max_tokens
        },
        flush_enabled: args.flush,
        auth,
        sizes: args.sizes.clone(),
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = config_from(&args)?;
    let cost_model = cost_model_from(&args)?;
    let simulator = Simulator::new(config);
    simulator.set_cost_model(cost_model);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}").context("stdout closed")?;
    stdout.flush().context("stdout closed")?;
    simulator
        .serve(listener, shutdown_signal())
        .await
        .context("simulator server failed")?;
    Ok(())
}
