//! The `honcho_exporter` binary: parse the command line (the library validates it), set up
//! logging, and run the exporter, `doctor`, `demo`, `--config.check` or `--version`. The only
//! place that uses `anyhow` and turns errors into exit codes: 0 ok, 1 runtime failure (for
//! `doctor`: something is wrong), 2 bad configuration (the same messages for `doctor` as for the
//! daemon: both go through `config::parse_command`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use honcho_exporter::app::{self, Exporter};
use honcho_exporter::config::{
    self, Command, DoctorOptions, DoctorOutput, LogFormat, LogSettings, Settings,
};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = match config::parse_command(args.clone(), &environment()) {
        Ok(command) => command,
        Err(error) => {
            if error.is_help() {
                print!("{error}");
            } else {
                eprintln!("honcho_exporter: {error}");
            }
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let result = match command {
        Command::Version => {
            println!(
                "honcho_exporter {} (revision {})",
                honcho_exporter::VERSION,
                honcho_exporter::REVISION
            );
            return ExitCode::SUCCESS;
        }
        Command::Check(_) => {
            println!("configuration OK");
            return ExitCode::SUCCESS;
        }
        Command::Run(settings) => {
            init_logging(&settings.log);
            runtime().and_then(|runtime| runtime.block_on(run(*settings, args)))
        }
        Command::Doctor(settings, options) => {
            init_logging(&LogSettings {
                level: "warn".to_string(),
                format: settings.log.format,
            });
            return match runtime().and_then(|runtime| runtime.block_on(doctor(*settings, options)))
            {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(error) => {
                    eprintln!("honcho_exporter doctor: {error:#}");
                    ExitCode::from(1)
                }
            };
        }
        #[cfg(feature = "demo")]
        Command::Demo(options) => {
            init_logging(&LogSettings {
                level: "info".to_string(),
                format: LogFormat::Logfmt,
            });
            runtime().and_then(|runtime| runtime.block_on(honcho_exporter::demo::run(options)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("honcho_exporter: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// The process environment as UTF-8 pairs (others cannot be ours and are skipped).
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{level},hyper=warn,reqwest=warn,rustls=warn",
        level = log.level
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.with_ansi(false).init(),
    }
}

/// `doctor`: the exporter's poller in-process, without listeners; waits for the first complete
/// cycle (bounded by `poll.max_staleness` + `poll.timeout`, after which the poller counts as
/// ready anyway and the verdicts say what could not be seen), then for `--window`, prints the
/// verdicts and says whether all are fine.
async fn doctor(settings: Settings, options: DoctorOptions) -> anyhow::Result<bool> {
    let settings = Arc::new(settings);
    let exporter = Exporter::start(Arc::clone(&settings), Vec::new())?;
    let deadline = tokio::time::Instant::now()
        + settings.poll.max_staleness
        + settings.poll.timeout
        + std::time::Duration::from_secs(5);
    while !exporter.is_ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !options.window.is_zero() {
        tokio::time::sleep(options.window).await;
    }
    let report = honcho_exporter::publication::current(&exporter.published)
        .verdicts(honcho_exporter::publication::unix_now());
    exporter.stop().await;
    match options.output {
        DoctorOutput::Table => print!("{}", honcho_exporter::verdict::table::to_text(&report)),
        DoctorOutput::Json => print!("{}", honcho_exporter::verdict::status::to_json(&report)),
    }
    Ok(report.is_fine())
}

/// Runs until SIGTERM/SIGINT. SIGHUP re-reads the configuration (flags, environment, file) and
/// applies it: the poller restarts with it and the listeners of unchanged addresses stay open.
/// A new configuration that is invalid or cannot be applied (a new listen address taken, an
/// unreadable CA file) is logged and the running one kept, still serving.
async fn run(settings: Settings, args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let settings = Arc::new(settings);
    let listeners = app::bind(&settings).await?;
    let mut exporter = Exporter::start(Arc::clone(&settings), listeners)?;
    tracing::info!(
        version = honcho_exporter::VERSION,
        listen = ?exporter.addresses,
        upstream = %app::upstream_description(&settings),
        interval = ?settings.poll.interval,
        "honcho_exporter started"
    );
    loop {
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: shutting down");
                exporter.stop().await;
                return Ok(());
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: shutting down");
                exporter.stop().await;
                return Ok(());
            }
            _ = hangup.recv() => {
                match config::parse_command(args.clone(), &environment()) {
                    Ok(Command::Run(new_settings)) => {
                        let new_settings = Arc::new(*new_settings);
                        match exporter.reload(Arc::clone(&new_settings)).await {
                            Ok(()) => tracing::info!(
                                listen = ?exporter.addresses,
                                honcho = %new_settings.honcho.url,
                                interval = ?new_settings.poll.interval,
                                "SIGHUP: configuration reloaded"
                            ),
                            Err(error) => tracing::error!(%error, "SIGHUP: cannot apply the new configuration; keeping the running one"),
                        }
                    }
                    Ok(_) => tracing::warn!("SIGHUP: the command line no longer runs the exporter; keeping the running configuration"),
                    Err(error) => tracing::error!(%error, "SIGHUP: the new configuration is invalid; keeping the running one"),
                }
            }
        }
    }
}
