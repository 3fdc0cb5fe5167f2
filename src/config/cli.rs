//! The command line (clap) and [`parse_command`], the one entry point that turns argv plus the
//! environment into a [`Command`] with validated [`Settings`].
//!
//! Flags carry raw strings into the same parsers as the file and the environment, so a bad
//! value gets the same message wherever it was written (naming the flag). No I/O beyond what
//! [`super::sources`] and [`super::resolve`] do (reading the config, token, CA and web config
//! files).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::Settings;
use super::error::ConfigError;
use super::resolve::resolve;
use super::sources::{self, ENV_CONFIG_FILE, Origin, RawConfig, RawValue};

/// What the process was asked to do.
#[derive(Debug)]
pub enum Command {
    /// Run the exporter with these settings.
    Run(Box<Settings>),
    /// `--config.check`: the settings are valid; print `configuration OK` and exit 0.
    Check(Box<Settings>),
    /// `demo`: simulator + exporter on loopback.
    Demo(DemoOptions),
    /// `--version`: print the version and exit 0.
    Version,
}

/// Options of `honcho_exporter demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Where the demo's exporter listens (default `127.0.0.1:21794`).
    pub listen_address: SocketAddr,
    /// Where the simulated Honcho listens (default `127.0.0.1:0`, a free port).
    pub sim_listen_address: SocketAddr,
    /// Which API generation the simulator serves: `'a'`, `'b'` or `'c'` (default `'c'`).
    pub generation: char,
    /// Seed of the simulator's queue evolution, so a demo can be replayed.
    pub seed: u64,
    /// The exporter's poll interval in the demo (default 5 s, so changes show quickly).
    pub poll_interval: Duration,
}

/// The default seed of `demo --sim.seed`.
pub const DEFAULT_DEMO_SEED: u64 = 1;

const ABOUT: &str = "Prometheus exporter for the deriver queue of Honcho.";

const AFTER_HELP: &str = "\
Every setting can also be given in the YAML file (--config.file) under its key, e.g. \
poll.interval, and in the environment as HONCHO_EXPORTER_<SECTION>_<KEY>, e.g. \
HONCHO_EXPORTER_POLL_INTERVAL. Precedence: flags > environment > file > defaults. \
The Honcho token is read from --honcho.token-file or HONCHO_EXPORTER_HONCHO_TOKEN, never from a flag.";

#[derive(Debug, Parser)]
#[command(
    name = "honcho_exporter",
    about = ABOUT,
    after_help = AFTER_HELP,
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    subcommand: Option<CliSubcommand>,

    /// Address to listen on for the web interface and telemetry; repeat for several.
    /// [default: 0.0.0.0:21794]
    #[arg(long = "web.listen-address", value_name = "ADDRESS")]
    web_listen_address: Vec<String>,
    /// Path under which to expose metrics. [default: /metrics]
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    web_telemetry_path: Option<String>,
    /// exporter-toolkit web config file (TLS, basic auth).
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<String>,
    /// Scrape requests served at once. [default: 16]
    #[arg(long = "web.max-concurrent-requests", value_name = "N")]
    web_max_concurrent_requests: Option<String>,

    /// Base URL of Honcho. [default: http://127.0.0.1:8000]
    #[arg(long = "honcho.url", value_name = "URL")]
    honcho_url: Option<String>,
    /// File holding Honcho's bearer token (re-read when it changes).
    #[arg(long = "honcho.token-file", value_name = "FILE")]
    honcho_token_file: Option<String>,
    /// Rejected: a token on the command line is visible to every user in `ps`.
    #[arg(long = "honcho.token", hide = true, num_args = 0..=1, value_name = "TOKEN")]
    honcho_token: Option<Option<String>>,
    /// Force the API generation instead of detecting it: auto, a, b or c. [default: auto]
    #[arg(long = "honcho.api-generation", value_name = "GENERATION")]
    honcho_api_generation: Option<String>,
    /// Extra CA certificates (PEM) to trust for an https Honcho URL.
    #[arg(long = "honcho.ca-file", value_name = "FILE")]
    honcho_ca_file: Option<String>,

    /// Time between poll cycles, e.g. 15s. [default: 15s]
    #[arg(long = "poll.interval", value_name = "DURATION")]
    poll_interval: Option<String>,
    /// Budget for one upstream request including retries; shorter than the interval.
    /// [default: min(10s, 0.8 × poll.interval)]
    #[arg(long = "poll.timeout", value_name = "DURATION")]
    poll_timeout: Option<String>,
    /// Requests in flight to Honcho at once, all workspaces and endpoints. [default: 4]
    #[arg(long = "poll.concurrency", value_name = "N")]
    poll_concurrency: Option<String>,
    /// Queue values older than this are no longer served. [default: 3 × poll.interval]
    #[arg(long = "poll.max-staleness", value_name = "DURATION")]
    poll_max_staleness: Option<String>,

    /// Comma-separated workspaces to poll instead of discovering them.
    #[arg(long = "workspaces", value_name = "NAMES")]
    workspaces: Option<String>,
    /// Only poll discovered workspaces whose whole name matches this regex.
    #[arg(long = "workspaces.allow", value_name = "REGEX")]
    workspaces_allow: Option<String>,
    /// Skip workspaces whose whole name matches this regex (applied after allow).
    #[arg(long = "workspaces.deny", value_name = "REGEX")]
    workspaces_deny: Option<String>,

    /// Sessions exported per workspace; the rest are summed into __other__. [default: 50]
    #[arg(long = "sessions.max-per-workspace", value_name = "N")]
    sessions_max_per_workspace: Option<String>,
    /// Per-work-unit detail series per workspace. [default: 20]
    #[arg(long = "work-units.detail-limit", value_name = "N")]
    work_units_detail_limit: Option<String>,
    /// Work-unit pages walked per workspace per cycle at most. [default: 2000]
    #[arg(long = "work-units.max-pages", value_name = "N")]
    work_units_max_pages: Option<String>,
    /// Age past which a stalled work unit is overdue. [default: 30m + poll.interval]
    #[arg(long = "classify.overdue-after", value_name = "DURATION")]
    classify_overdue_after: Option<String>,

    /// Number of exporter replicas sharing the workspaces. [default: 1]
    #[arg(long = "shard.count", value_name = "N")]
    shard_count: Option<String>,
    /// This replica's shard, from 0. [default: 0]
    #[arg(long = "shard.index", value_name = "N")]
    shard_index: Option<String>,
    /// The duty rule's k: a workspace's status poll or walk starts no sooner than k × its last
    /// busy time, so each keeps Honcho busy at most 1/k of the time. [default: 4]
    #[arg(long = "poll.duty-factor", value_name = "K")]
    poll_duty_factor: Option<String>,

    /// Log level: error, warn, info, debug or trace. [default: info]
    #[arg(long = "log.level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format: logfmt or json. [default: logfmt]
    #[arg(long = "log.format", value_name = "FORMAT")]
    log_format: Option<String>,

    /// YAML configuration file (also HONCHO_EXPORTER_CONFIG_FILE).
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Validate the configuration, print "configuration OK" and exit (0 valid, 2 invalid).
    #[arg(long = "config.check")]
    config_check: bool,
    /// Print the version and exit.
    #[arg(long = "version")]
    version: bool,
}

#[derive(Debug, Subcommand)]
enum CliSubcommand {
    /// Run a simulated Honcho and the exporter against it on loopback, and print where to look.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the demo exporter listens.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDRESS",
        default_value = "127.0.0.1:21794"
    )]
    listen_address: SocketAddr,
    /// Where the simulated Honcho listens (port 0: any free port).
    #[arg(
        long = "sim.listen-address",
        value_name = "ADDRESS",
        default_value = "127.0.0.1:0"
    )]
    sim_listen_address: SocketAddr,
    /// API generation the simulator serves.
    #[arg(long = "sim.generation", value_name = "GENERATION", default_value = "c",
          value_parser = ["a", "b", "c"])]
    generation: String,
    /// Seed of the simulated queue's evolution.
    #[arg(long = "sim.seed", value_name = "SEED", default_value_t = DEFAULT_DEMO_SEED)]
    seed: u64,
    /// The demo exporter's poll interval.
    #[arg(long = "poll.interval", value_name = "DURATION", default_value = "5s",
          value_parser = parse_demo_interval)]
    poll_interval: Duration,
}

fn parse_demo_interval(text: &str) -> Result<Duration, String> {
    let interval = super::duration::parse_duration(text)?;
    if interval.is_zero() {
        return Err("must be longer than zero".to_string());
    }
    Ok(interval)
}

/// Parses the command line (`args`, program name first, as from `std::env::args_os()`) and the
/// environment (`env`; only `HONCHO_EXPORTER_*` entries are read, so passing the whole process
/// environment is fine) into what to do.
///
/// Errors are complete user-facing messages; [`ConfigError::exit_code`] is 0 for `--help`
/// (print [`ConfigError`]'s `Display` to stdout) and 2 otherwise (print to stderr).
pub fn parse_command<I, T>(args: I, env: &BTreeMap<String, String>) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|error| {
        let rendered = error.render().to_string();
        match error.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                ConfigError::Help(rendered)
            }
            _ => ConfigError::Usage(rendered),
        }
    })?;
    if cli.honcho_token.is_some() {
        return Err(ConfigError::InvalidSetting {
            location: "--honcho.token".to_string(),
            problem: "the token is not accepted on the command line (other users can read it \
                      in the process list); use --honcho.token-file or \
                      HONCHO_EXPORTER_HONCHO_TOKEN"
                .to_string(),
        });
    }
    if cli.version {
        return Ok(Command::Version);
    }
    if let Some(CliSubcommand::Demo(demo)) = cli.subcommand {
        return Ok(Command::Demo(DemoOptions {
            listen_address: demo.listen_address,
            sim_listen_address: demo.sim_listen_address,
            generation: demo
                .generation
                .chars()
                .next()
                .expect("clap restricts --sim.generation to a, b or c"),
            seed: demo.seed,
            poll_interval: demo.poll_interval,
        }));
    }

    let mut raw = RawConfig::default();
    let config_file = cli.config_file.clone().or_else(|| {
        env.get(ENV_CONFIG_FILE)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = &config_file {
        sources::read_file(path, &mut raw)?;
    }
    sources::read_env(env, &mut raw)?;
    read_flags(&cli, &mut raw);
    let settings = Box::new(resolve(&raw)?);
    Ok(if cli.config_check {
        Command::Check(settings)
    } else {
        Command::Run(settings)
    })
}

/// Puts every flag the user gave into `raw` at flag precedence.
fn read_flags(cli: &Cli, raw: &mut RawConfig) {
    if !cli.web_listen_address.is_empty() {
        raw.insert(
            "web.listen_addresses",
            RawValue::List(cli.web_listen_address.clone()),
            Origin::Flag("--web.listen-address"),
        );
    }
    if let Some(workspaces) = &cli.workspaces {
        raw.insert(
            "workspaces.static",
            RawValue::List(sources::split_list(workspaces)),
            Origin::Flag("--workspaces"),
        );
    }
    let scalars: [(&'static str, &'static str, &Option<String>); 22] = [
        (
            "web.telemetry_path",
            "--web.telemetry-path",
            &cli.web_telemetry_path,
        ),
        ("web.config_file", "--web.config.file", &cli.web_config_file),
        (
            "web.max_concurrent_requests",
            "--web.max-concurrent-requests",
            &cli.web_max_concurrent_requests,
        ),
        ("honcho.url", "--honcho.url", &cli.honcho_url),
        (
            "honcho.token_file",
            "--honcho.token-file",
            &cli.honcho_token_file,
        ),
        (
            "honcho.api_generation",
            "--honcho.api-generation",
            &cli.honcho_api_generation,
        ),
        ("honcho.ca_file", "--honcho.ca-file", &cli.honcho_ca_file),
        ("poll.interval", "--poll.interval", &cli.poll_interval),
        ("poll.timeout", "--poll.timeout", &cli.poll_timeout),
        (
            "poll.concurrency",
            "--poll.concurrency",
            &cli.poll_concurrency,
        ),
        (
            "poll.max_staleness",
            "--poll.max-staleness",
            &cli.poll_max_staleness,
        ),
        (
            "workspaces.allow",
            "--workspaces.allow",
            &cli.workspaces_allow,
        ),
        ("workspaces.deny", "--workspaces.deny", &cli.workspaces_deny),
        (
            "sessions.max_per_workspace",
            "--sessions.max-per-workspace",
            &cli.sessions_max_per_workspace,
        ),
        (
            "work_units.detail_limit",
            "--work-units.detail-limit",
            &cli.work_units_detail_limit,
        ),
        (
            "work_units.max_pages",
            "--work-units.max-pages",
            &cli.work_units_max_pages,
        ),
        (
            "classify.overdue_after",
            "--classify.overdue-after",
            &cli.classify_overdue_after,
        ),
        ("shard.count", "--shard.count", &cli.shard_count),
        ("shard.index", "--shard.index", &cli.shard_index),
        (
            "poll.duty_factor",
            "--poll.duty-factor",
            &cli.poll_duty_factor,
        ),
        ("log.level", "--log.level", &cli.log_level),
        ("log.format", "--log.format", &cli.log_format),
    ];
    for (key, flag, value) in scalars {
        if let Some(value) = value {
            raw.insert(key, RawValue::Scalar(value.clone()), Origin::Flag(flag));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_maps_to_a_known_setting_key() {
        let cli = Cli::try_parse_from([
            "honcho_exporter",
            "--web.listen-address=:1",
            "--web.telemetry-path=/m",
            "--web.config.file=w",
            "--web.max-concurrent-requests=1",
            "--honcho.url=http://h",
            "--honcho.token-file=t",
            "--honcho.api-generation=a",
            "--honcho.ca-file=c",
            "--poll.interval=1s",
            "--poll.timeout=1s",
            "--poll.concurrency=1",
            "--poll.max-staleness=1s",
            "--workspaces=a",
            "--workspaces.allow=a",
            "--workspaces.deny=a",
            "--sessions.max-per-workspace=1",
            "--work-units.detail-limit=1",
            "--work-units.max-pages=1",
            "--classify.overdue-after=1s",
            "--shard.count=1",
            "--shard.index=0",
            "--log.level=info",
            "--log.format=json",
        ])
        .expect("every flag parses");
        let mut raw = RawConfig::default();
        read_flags(&cli, &mut raw);
        assert_eq!(raw.settings.len(), 23);
        for (key, setting) in &raw.settings {
            assert!(
                sources::KEYS.iter().any(|(known, _)| known == key),
                "{:?} maps to unknown key {key}",
                setting.origin
            );
        }
    }
}
