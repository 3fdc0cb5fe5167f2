//! The command line (clap) and [`parse_command`], the one entry point that turns argv plus the
//! environment into a [`Command`] with validated [`Settings`]. The arguments of the settings
//! are built from the settings table (`table.rs`); only the arguments that are not settings
//! (`--config.file`, `--config.check`, `--version`, the rejected `--honcho.token`, `demo`) are
//! declared here.
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

use clap::{Arg, ArgAction, ArgMatches};
#[cfg(feature = "demo")]
use clap::{Args, FromArgMatches};

use super::Settings;
use super::error::ConfigError;
use super::raw::{self, RawValue, Shape};
use super::resolve::resolve;
use super::sources::{self, ENV_CONFIG_FILE, Origin, RawConfig};
use super::table::{Flag, SETTINGS};
#[cfg(feature = "demo")]
use super::table::{Value, setting};

/// What the process was asked to do.
#[derive(Debug)]
pub enum Command {
    /// Run the exporter with these settings.
    Run(Box<Settings>),
    /// `--config.check`: the settings are valid; print `configuration OK` and exit 0.
    Check(Box<Settings>),
    /// `demo`: simulator + exporter on loopback (only with the `demo` cargo feature).
    #[cfg(feature = "demo")]
    Demo(DemoOptions),
    /// `doctor`: poll once (or over a window) with these settings, print the verdicts, exit 0
    /// (all fine), 1 (something wrong) or 2 (configuration error, before this exists).
    Doctor(Box<Settings>, DoctorOptions),
    /// `--version`: print the version and exit 0.
    Version,
}

/// Options of `honcho_exporter doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorOptions {
    /// Keep polling this long after the first complete cycle, so windowed rules see history
    /// (zero: one look, the one-look stand-ins judge).
    pub window: Duration,
    /// `table` or `json` (the `/status` schema).
    pub output: DoctorOutput,
}

/// How `doctor` prints the verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorOutput {
    /// A text table.
    Table,
    /// The `/status` JSON document.
    Json,
}

/// The `doctor` subcommand's name.
const DOCTOR_SUBCOMMAND: &str = "doctor";
const DOCTOR_WINDOW_ID: &str = "doctor.window";
const DOCTOR_OUTPUT_ID: &str = "doctor.output";

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

/// The clap command: one argument per flag of the settings table, in table order, then the
/// arguments that are not settings. Public so that tests can check the deployment artefacts
/// against the real command line.
pub fn command() -> clap::Command {
    let command = clap::Command::new("honcho_exporter")
        .about(ABOUT)
        .after_help(AFTER_HELP)
        .disable_version_flag(true)
        .args_conflicts_with_subcommands(true);
    let command = with_setting_args(command)
        .arg(
            Arg::new(CONFIG_CHECK_ID)
                .long("config.check")
                .action(ArgAction::SetTrue)
                .help(
                    "Validate the configuration, print \"configuration OK\" and exit (0 valid, 2 \
                     invalid)",
                ),
        )
        .arg(
            Arg::new(VERSION_ID)
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version and exit"),
        )
        .subcommand(doctor_command());
    #[cfg(feature = "demo")]
    let command = {
        let demo = DemoArgs::augment_args(clap::Command::new(DEMO_SUBCOMMAND).about(
            "Run a simulated Honcho and the exporter against it on loopback, and print where to \
             look",
        ));
        command.subcommand(demo.arg(demo_poll_interval_arg()))
    };
    command
}

/// `doctor`: the settings' arguments plus `--window` and `--output`.
fn doctor_command() -> clap::Command {
    with_setting_args(clap::Command::new(DOCTOR_SUBCOMMAND).about(
        "Poll Honcho once (or over --window) with the same settings as the exporter, print the \
         verdict of every workspace and exit: 0 all ok or waiting_for_tokens, 1 something is \
         wrong, 2 configuration error",
    ))
    .arg(
        Arg::new(DOCTOR_WINDOW_ID)
            .long("window")
            .value_name("DURATION")
            .help(
                "Keep polling this long after the first cycle so windowed rules see history \
                 (default: one look, judged by the one-look rules)",
            ),
    )
    .arg(
        Arg::new(DOCTOR_OUTPUT_ID)
            .long("output")
            .value_name("FORMAT")
            .value_parser(["table", "json"])
            .default_value("table")
            .help("table, or json (the /status schema)"),
    )
}

/// `command` with one argument per flag of the settings table, in table order, and the
/// arguments about where settings come from (`--config.file`, the rejected `--honcho.token`).
fn with_setting_args(mut command: clap::Command) -> clap::Command {
    for setting in SETTINGS {
        let (name, action) = match setting.flag {
            Flag::None => continue,
            Flag::Single(name) => (name, ArgAction::Set),
            Flag::Repeated(name) => (name, ArgAction::Append),
        };
        command = command.arg(
            Arg::new(setting.key)
                .long(flag_long(name))
                .value_name(setting.value_name)
                .help(setting.flag_help())
                .action(action),
        );
    }
    command
        .arg(
            // Rejected: a token on the command line is visible to every user in `ps`.
            Arg::new(TOKEN_FLAG_ID)
                .long("honcho.token")
                .hide(true)
                .num_args(0..=1)
                .value_name("TOKEN"),
        )
        .arg(
            Arg::new(CONFIG_FILE_ID)
                .long("config.file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("YAML configuration file (also HONCHO_EXPORTER_CONFIG_FILE)"),
        )
}

const TOKEN_FLAG_ID: &str = "honcho.token";
const CONFIG_FILE_ID: &str = "config.file";
const CONFIG_CHECK_ID: &str = "config.check";
const VERSION_ID: &str = "version";
#[cfg(feature = "demo")]
const DEMO_SUBCOMMAND: &str = "demo";

fn flag_long(flag: &'static str) -> &'static str {
    flag.strip_prefix("--").unwrap_or(flag)
}

#[cfg(feature = "demo")]
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
}

/// The settings table's `poll.interval`, which the demo also takes.
#[cfg(feature = "demo")]
const POLL_INTERVAL_KEY: &str = "poll.interval";

/// The demo's poll interval unless given: short, so changes show quickly.
#[cfg(feature = "demo")]
const DEMO_POLL_INTERVAL: &str = "5s";

/// `demo --poll.interval`: the settings table's `poll.interval` (its flag and value name; its
/// value goes through the table's parser, see [`demo_poll_interval`]) with the demo's own
/// help and default.
#[cfg(feature = "demo")]
fn demo_poll_interval_arg() -> Arg {
    let interval = setting(POLL_INTERVAL_KEY).expect("the settings table declares poll.interval");
    let flag = interval
        .flag
        .name()
        .expect("poll.interval has a command-line flag");
    Arg::new(interval.key)
        .long(flag_long(flag))
        .value_name(interval.value_name)
        .help("The demo exporter's poll interval")
        .default_value(DEMO_POLL_INTERVAL)
}

/// The demo's `--poll.interval` value parsed by the settings table, so a bad value gets the
/// message the exporter's own `--poll.interval` gives.
#[cfg(feature = "demo")]
fn demo_poll_interval(matches: &ArgMatches) -> Result<Duration, ConfigError> {
    let interval = setting(POLL_INTERVAL_KEY).expect("the settings table declares poll.interval");
    let text = matches
        .get_one::<String>(interval.key)
        .cloned()
        .unwrap_or_else(|| DEMO_POLL_INTERVAL.to_string());
    let mut settings = Settings::defaults();
    (interval.apply)(&mut settings, &Value(&RawValue::Scalar(text))).map_err(|problem| {
        ConfigError::InvalidSetting {
            location: interval.flag.name().unwrap_or(interval.key).to_string(),
            problem,
        }
    })?;
    Ok(settings.poll.interval)
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
    let matches = command().try_get_matches_from(args).map_err(|error| {
        let rendered = error.render().to_string();
        match error.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                ConfigError::Help(rendered)
            }
            _ => ConfigError::Usage(rendered),
        }
    })?;
    reject_token_flag(&matches)?;
    if matches.get_flag(VERSION_ID) {
        return Ok(Command::Version);
    }
    #[cfg(feature = "demo")]
    if let Some(demo_matches) = matches.subcommand_matches(DEMO_SUBCOMMAND) {
        let demo = DemoArgs::from_arg_matches(demo_matches)
            .map_err(|error| ConfigError::Usage(error.render().to_string()))?;
        return Ok(Command::Demo(DemoOptions {
            listen_address: demo.listen_address,
            sim_listen_address: demo.sim_listen_address,
            generation: demo
                .generation
                .chars()
                .next()
                .expect("clap restricts --sim.generation to a, b or c"),
            seed: demo.seed,
            poll_interval: demo_poll_interval(demo_matches)?,
        }));
    }
    if let Some(doctor) = matches.subcommand_matches(DOCTOR_SUBCOMMAND) {
        let window = match doctor.get_one::<String>(DOCTOR_WINDOW_ID) {
            Some(text) => super::duration::parse_duration(text).map_err(|problem| {
                ConfigError::InvalidSetting {
                    location: "--window".to_string(),
                    problem,
                }
            })?,
            None => Duration::ZERO,
        };
        let output = match doctor
            .get_one::<String>(DOCTOR_OUTPUT_ID)
            .map(String::as_str)
        {
            Some("json") => DoctorOutput::Json,
            _ => DoctorOutput::Table,
        };
        let settings = settings_from(doctor, env)?;
        return Ok(Command::Doctor(settings, DoctorOptions { window, output }));
    }
    let settings = settings_from(&matches, env)?;
    Ok(if matches.get_flag(CONFIG_CHECK_ID) {
        Command::Check(settings)
    } else {
        Command::Run(settings)
    })
}

/// The validated settings of `matches` (the root command's or `doctor`'s): flags over the
/// environment over the config file over the defaults.
fn settings_from(
    matches: &ArgMatches,
    env: &BTreeMap<String, String>,
) -> Result<Box<Settings>, ConfigError> {
    reject_token_flag(matches)?;
    let mut raw = RawConfig::default();
    let config_file = matches
        .get_one::<PathBuf>(CONFIG_FILE_ID)
        .cloned()
        .or_else(|| {
            env.get(ENV_CONFIG_FILE)
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
        });
    if let Some(path) = &config_file {
        sources::read_file(path, &mut raw)?;
    }
    sources::read_env(env, &mut raw)?;
    read_flags(matches, &mut raw);
    Ok(Box::new(resolve(&raw)?))
}

/// A token given on the command line is refused: other users can read it in `ps`.
fn reject_token_flag(matches: &ArgMatches) -> Result<(), ConfigError> {
    if matches.value_source(TOKEN_FLAG_ID).is_some() {
        return Err(ConfigError::InvalidSetting {
            location: "--honcho.token".to_string(),
            problem: "the token is not accepted on the command line (other users can read it \
                      in the process list); use --honcho.token-file or \
                      HONCHO_EXPORTER_HONCHO_TOKEN"
                .to_string(),
        });
    }
    Ok(())
}

/// Puts every flag of the settings table the user gave into `raw` at flag precedence.
fn read_flags(matches: &ArgMatches, raw: &mut RawConfig) {
    for setting in SETTINGS {
        let Some(flag) = setting.flag.name() else {
            continue;
        };
        let Some(values) = matches.get_many::<String>(setting.key) else {
            continue;
        };
        let values: Vec<String> = values.cloned().collect();
        let value = match (setting.flag, setting.shape) {
            (Flag::Repeated(_), _) => RawValue::List(values),
            (_, Shape::List) => {
                RawValue::List(raw::split_list(values.last().map_or("", String::as_str)))
            }
            (_, Shape::Scalar) => RawValue::Scalar(values.last().cloned().unwrap_or_default()),
        };
        raw.insert(setting.key, value, Origin::Flag(flag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_flag_of_the_table_reaches_its_key_at_flag_precedence() {
        let mut args = vec!["honcho_exporter".to_string()];
        for setting in SETTINGS {
            if let Some(flag) = setting.flag.name() {
                args.push(format!("{flag}=x"));
            }
        }
        let matches = command()
            .try_get_matches_from(&args)
            .expect("every flag parses");
        let mut raw = RawConfig::default();
        read_flags(&matches, &mut raw);
        let with_flags = SETTINGS
            .iter()
            .filter(|setting| setting.flag.name().is_some());
        assert_eq!(raw.settings.len(), with_flags.clone().count());
        for setting in with_flags {
            let given = &raw.settings[setting.key];
            assert_eq!(
                given.origin,
                Origin::Flag(setting.flag.name().expect("has a flag"))
            );
        }
    }

    #[cfg(feature = "demo")]
    fn run_settings(args: &[&str]) -> Box<Settings> {
        let args = std::iter::once("honcho_exporter").chain(args.iter().copied());
        match parse_command(args, &BTreeMap::new()) {
            Ok(Command::Run(settings)) => settings,
            other => panic!("expected settings, got {other:?}"),
        }
    }

    #[cfg(feature = "demo")]
    #[test]
    fn the_demo_derives_its_defaults_from_its_interval_as_the_poll_interval_flag_does() {
        for interval in ["1s", "5s", "1m"] {
            let flagged = run_settings(&["--poll.interval", interval]);
            let demo = Settings::with_url_and_poll_interval(
                flagged.honcho.url.clone(),
                flagged.poll.interval,
            );
            assert_eq!(demo.poll.timeout, flagged.poll.timeout, "{interval}");
            assert_eq!(
                demo.poll.max_staleness, flagged.poll.max_staleness,
                "{interval}"
            );
            assert_eq!(
                demo.classify.overdue_after, flagged.classify.overdue_after,
                "{interval}"
            );
        }
    }

    #[cfg(feature = "demo")]
    #[test]
    fn a_bad_demo_interval_gets_the_message_of_the_poll_interval_flag() {
        let message = |args: &[&str]| {
            let args = std::iter::once("honcho_exporter").chain(args.iter().copied());
            match parse_command(args, &BTreeMap::new()) {
                Err(error) => (error.to_string(), error.exit_code()),
                Ok(command) => panic!("expected an error, got {command:?}"),
            }
        };
        for bad in ["0s", "abc"] {
            assert_eq!(
                message(&["demo", "--poll.interval", bad]),
                message(&["--poll.interval", bad]),
                "{bad}"
            );
        }
    }
}
