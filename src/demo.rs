//! `honcho_exporter demo`: starts the simulated Honcho (the `honcho_sim` crate) on loopback and
//! the exporter against it over real HTTP, prints where to look, and runs until Ctrl-C or
//! SIGTERM. Nothing here is special-cased for the demo: the exporter is started exactly as
//! `main` starts it, with default settings apart from the poll interval (whose derived defaults
//! follow it as they would for `--poll.interval`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::Exporter;
use crate::config::{DemoOptions, Settings};
use honcho_sim::{Generation, Simulator, SimulatorConfig};

/// Runs the demo until interrupted.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let simulator = start_simulator(&options).await?;
    let honcho_url = format!("http://{}", simulator.address);
    let mut settings = Settings::with_url_and_poll_interval(
        honcho_url.parse().context("simulator URL")?,
        options.poll_interval,
    );
    settings.web.listen_addresses = vec![options.listen_address];
    let settings = Arc::new(settings);
    let listeners = crate::app::bind(&settings).await.with_context(|| {
        format!(
            "cannot listen on {} (choose another with `honcho_exporter demo --web.listen-address 127.0.0.1:PORT`)",
            options.listen_address
        )
    })?;
    let exporter = Exporter::start(Arc::clone(&settings), listeners)?;
    let web = exporter
        .addresses
        .first()
        .map(|address| format!("http://{address}"))
        .context("the exporter has no listener")?;
    print_banner(&options, &settings, &honcho_url, &web);

    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    exporter.stop().await;
    let _ = simulator.stop.send(());
    let _ = simulator.task.await;
    Ok(())
}

/// The simulated Honcho, serving on loopback until `stop` is sent.
struct RunningSimulator {
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds the simulator's listener and starts serving the generation and seed asked for.
async fn start_simulator(options: &DemoOptions) -> anyhow::Result<RunningSimulator> {
    let generation = match options.generation {
        'a' => Generation::A,
        'b' => Generation::B,
        _ => Generation::C,
    };
    let simulator_config = SimulatorConfig {
        generation,
        seed: options.seed,
        ..SimulatorConfig::demo()
    };
    let simulator_listener = TcpListener::bind(options.sim_listen_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the simulated Honcho",
                options.sim_listen_address
            )
        })?;
    let address = simulator_listener
        .local_addr()
        .context("simulator address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let simulator = Simulator::new(simulator_config);
    let task = tokio::spawn(simulator.serve(simulator_listener, async move {
        let _ = stopped.await;
    }));
    Ok(RunningSimulator {
        address,
        stop,
        task,
    })
}

/// Prints where to look: the simulator, the exporter's pages, commands to try.
fn print_banner(options: &DemoOptions, settings: &Settings, honcho_url: &str, web: &str) {
    println!("honcho_exporter demo {}", crate::VERSION);
    println!();
    println!(
        "  simulated Honcho (API generation {}): {honcho_url}",
        options.generation
    );
    println!("  exporter landing page (verdicts):     {web}/");
    println!("  verdicts as JSON:                     {web}/status");
    println!(
        "  metrics:                              {web}{}",
        settings.web.telemetry_path
    );
    println!("  readiness:                            {web}/-/ready");
    println!();
    println!("  try:  curl -s {web}/metrics | grep -E '^honcho_queue_(items|work_units)'");
    println!("        curl -s {web}/metrics | grep honcho_queue_work_unit_age_seconds");
    println!("        curl -s {honcho_url}/_sim/truth | head -c 600");
    println!(
        "        honcho_exporter doctor --honcho.url {honcho_url} --poll.interval {:?}",
        options.poll_interval
    );
    println!();
    println!(
        "  The queue evolves {}x faster than real time; one workspace has units turning overdue,",
        SimulatorConfig::demo().speed
    );
    println!(
        "  one a unit stuck in progress. Polling every {:?}. Ctrl-C to stop.",
        options.poll_interval
    );
}
