//! `honcho_exporter demo`: starts the simulated Honcho (the `honcho_sim` crate) on loopback and
//! the exporter against it over real HTTP, prints where to look, and runs until Ctrl-C or
//! SIGTERM. Nothing here is special-cased for the demo: the exporter is started exactly as
//! `main` starts it, with default settings apart from the poll interval.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::Exporter;
use crate::config::{DemoOptions, Settings};
use honcho_sim::{Generation, Simulator, SimulatorConfig};

/// Runs the demo until interrupted.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
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
    let simulator_address = simulator_listener
        .local_addr()
        .context("simulator address")?;
    let (stop_simulator, simulator_stopped) = tokio::sync::oneshot::channel::<()>();
    let simulator = Simulator::new(simulator_config);
    let simulator_task = tokio::spawn(simulator.serve(simulator_listener, async move {
        let _ = simulator_stopped.await;
    }));

    let honcho_url = format!("http://{simulator_address}");
    let mut settings = Settings::with_url(honcho_url.parse().context("simulator URL")?);
    settings.web.listen_addresses = vec![options.listen_address];
    settings.poll.interval = options.poll_interval;
    settings.poll.timeout = options
        .poll_interval
        .mul_f64(0.8)
        .min(settings.poll.timeout);
    settings.poll.max_staleness = options.poll_interval * 3;
    settings.classify.overdue_after = std::time::Duration::from_secs(1800) + options.poll_interval;
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
    println!("honcho_exporter demo {}", crate::VERSION);
    println!();
    println!(
        "  simulated Honcho (API generation {}): {honcho_url}",
        options.generation
    );
    println!("  exporter landing page:                {web}/");
    println!(
        "  metrics:                              {web}{}",
        settings.web.telemetry_path
    );
    println!("  readiness:                            {web}/-/ready");
    println!();
    println!("  try:  curl -s {web}/metrics | grep -E '^honcho_queue_(items|work_units)'");
    println!("        curl -s {web}/metrics | grep honcho_queue_work_unit_age_seconds");
    println!("        curl -s {honcho_url}/_sim/truth | head -c 600");
    println!();
    println!(
        "  The queue evolves {}x faster than real time; one workspace has units turning overdue,",
        SimulatorConfig::demo().speed
    );
    println!(
        "  one a unit stuck in progress. Polling every {:?}. Ctrl-C to stop.",
        options.poll_interval
    );

    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    exporter.stop().await;
    let _ = stop_simulator.send(());
    let _ = simulator_task.await;
    Ok(())
}
