//! Configuration through `parse_command`, table-driven (node_exporter / postgres_exporter
//! style): bad files in `tests/data/config/bad/`, bad environment and bad flags → the exact
//! message and exit code 2; good files → the expected `Settings`; precedence
//! (flag > env > file > default); the token never shows in Debug output or error messages.

use std::collections::BTreeMap;
use std::time::Duration;

use honcho_exporter::config::{
    Command, ConfigError, DemoOptions, GenerationOverride, LogFormat, Scope, Settings, TokenSource,
    parse_command,
};

/// The content of `tests/data/config/token`: must never appear in any output.
const SECRET: &str = "hx-SECRET-7f3a9c-do-not-print";
const BAD: &str = "tests/data/config/bad";

fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let argv = std::iter::once("honcho_exporter").chain(args.iter().copied());
    parse_command(argv, &environment(env))
}

fn settings(args: &[&str], env: &[(&str, &str)]) -> Settings {
    match parse(args, env) {
        Ok(Command::Run(settings)) => *settings,
        Ok(other) => panic!("expected Run, got {other:?}"),
        Err(error) => panic!("expected Run, got error: {error}"),
    }
}

fn error(args: &[&str], env: &[(&str, &str)]) -> ConfigError {
    match parse(args, env) {
        Ok(command) => panic!("expected an error for {args:?} {env:?}, got {command:?}"),
        Err(error) => error,
    }
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "the token leaked into: {text}");
}

#[test]
fn bad_config_files_fail_with_the_key_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "unknown-key",
            "config file {F}: poll.intervall: unknown key (did you mean poll.interval?)",
        ),
        (
            "unknown-section",
            "config file {F}: polling: unknown key (did you mean poll?)",
        ),
        (
            "token-in-file",
            "config file {F}: honcho.token: the token must not be written in the config file; put \
             it in a file readable only by the exporter and set honcho.token_file, or set \
             HONCHO_EXPORTER_HONCHO_TOKEN",
        ),
        (
            "bad-duration",
            "config file {F}: poll.interval: invalid duration \"fifteen\": expected numbers with \
             units (ms, s, m, h, d), e.g. 15s, 1m30s or 500ms",
        ),
        (
            "postgres-password-in-url",
            "config file {F}: postgres.url: must not contain a password; use \
             postgres.password_file or HONCHO_EXPORTER_POSTGRES_PASSWORD",
        ),
        (
            "postgres-password-in-file",
            "config file {F}: postgres.password: the password must not be written in the config \
             file; put it in a file readable only by the exporter and set \
             postgres.password_file, or set HONCHO_EXPORTER_POSTGRES_PASSWORD",
        ),
        (
            "postgres-without-url",
            "poll.source: postgres needs postgres.url (e.g. \
             postgres://honcho_exporter@db:5432/honcho?sslmode=verify-full)",
        ),
        (
            "unknown-source",
            "config file {F}: poll.source: unknown source \"mysql\"; expected api or postgres",
        ),
        (
            "duration-without-unit",
            "config file {F}: poll.interval: invalid duration \"15\": expected numbers with units \
             (ms, s, m, h, d), e.g. 15s, 1m30s or 500ms",
        ),
        (
            "bad-url",
            "config file {F}: honcho.url: URL \"honcho.internal:8000\" must use http or https, not \
             \"honcho.internal\"",
        ),
        (
            "url-not-http",
            "config file {F}: honcho.url: URL \"ftp://honcho.internal\" must use http or https, not \"ftp\"",
        ),
        (
            "timeout-not-shorter",
            "poll.timeout (20s) must be shorter than poll.interval (15s)",
        ),
        (
            "concurrency-zero",
            "config file {F}: poll.concurrency: must be at least 1, got 0",
        ),
        (
            "page-size-too-big",
            "config file {F}: work_units.page_size: page size must be between 1 and 100 (Honcho's \
             limit), got 101",
        ),
        (
            "shard-index-out-of-range",
            "shard.index (2) must be less than shard.count (2); shards are numbered from 0",
        ),
        (
            "duplicate-scope",
            "config file {F}: scopes[1].name: duplicate scope name \"dan\"; scope names must be unique",
        ),
        (
            "scope-without-filter",
            "config file {F}: scopes[0]: scope \"everything\" has no filter; set at least one of \
             observer_id, sender_id, session_id",
        ),
        (
            "scope-unknown-key",
            "config file {F}: scopes[0].observer: unknown key (did you mean observer_id?)",
        ),
        (
            "empty-workspace-name",
            "config file {F}: workspaces.static: workspace names must not be empty (check for a \
             stray comma)",
        ),
        (
            "bad-log-level",
            "config file {F}: log.level: unknown log level \"verbose\"; expected error, warn, info, \
             debug or trace",
        ),
        (
            "bad-log-format",
            "config file {F}: log.format: unknown log format \"text\"; expected logfmt or json",
        ),
        (
            "bad-generation",
            "config file {F}: honcho.api_generation: unknown API generation \"d\"; expected auto, a, \
             b or c",
        ),
        (
            "staleness-below-interval",
            "poll.max_staleness (20s) must not be shorter than poll.interval (30s), or every value \
             would be dropped before the next poll replaces it",
        ),
        (
            "bad-listen-address",
            "config file {F}: web.listen_addresses: invalid listen address \"localhost\": expected \
             IP:port, e.g. 0.0.0.0:21794, [::]:21794 or :21794",
        ),
        (
            "missing-token-file",
            "config file {F}: honcho.token_file: cannot read token file {D}/no-such-token: No such \
             file or directory (os error 2)",
        ),
        (
            "empty-token-file",
            "config file {F}: honcho.token_file: token file {D}/../empty-token is empty",
        ),
        (
            "section-not-mapping",
            "config file {F}: poll: expected a mapping of settings, got a single value",
        ),
        (
            "list-for-scalar",
            "config file {F}: poll.interval: expected a single value, got a list",
        ),
        (
            "missing-web-config",
            "config file {F}: web.config_file: cannot read web config file {D}/no-such-web.yml: No \
             such file or directory (os error 2)",
        ),
        (
            "bad-bool",
            "config file {F}: work_units.enabled: expected true or false, got \"yes please\"",
        ),
    ];
    let mut seen = Vec::new();
    for (name, expected) in cases {
        let file = format!("{BAD}/{name}.yml");
        let expected = expected.replace("{F}", &file).replace("{D}", BAD);
        let error = error(&["--config.file", &file], &[]);
        assert_eq!(error.to_string(), expected, "{file}");
        assert_eq!(error.exit_code(), 2, "{file}");
        assert_no_secret(&error.to_string());
        seen.push(format!("{name}.yml"));
    }
    // A regex error shows the regex crate's explanation; pin the stable part.
    let file = format!("{BAD}/bad-regex.yml");
    let regex_error = error(&["--config.file", &file], &[]).to_string();
    assert!(
        regex_error.starts_with(&format!(
            "config file {file}: workspaces.allow: invalid regex \"acme-(.*\": regex parse error:"
        )),
        "{regex_error}"
    );
    assert!(regex_error.contains("unclosed group"), "{regex_error}");
    seen.push("bad-regex.yml".to_string());
    // Broken YAML names the file and the parser's position.
    let file = format!("{BAD}/invalid-yaml.yml");
    let yaml_error = error(&["--config.file", &file], &[]).to_string();
    assert!(
        yaml_error.starts_with(&format!("config file {file} is not valid YAML: ")),
        "{yaml_error}"
    );
    assert!(yaml_error.contains("line 3"), "{yaml_error}");
    seen.push("invalid-yaml.yml".to_string());

    // Every file in bad/ is covered by a case.
    let mut on_disk: Vec<String> = std::fs::read_dir(BAD)
        .expect("bad config directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    seen.sort();
    assert_eq!(on_disk, seen);
}

#[test]
fn missing_config_file_names_the_path() {
    let error = error(&["--config.file", "tests/data/config/nope.yml"], &[]);
    assert_eq!(
        error.to_string(),
        "cannot read config file tests/data/config/nope.yml: No such file or directory (os error 2)"
    );
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn bad_environment_variables_fail_with_the_variable_name() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "HONCHO_EXPORTER_POLL_INTERVALL",
            "30s",
            "HONCHO_EXPORTER_POLL_INTERVALL: unknown environment variable (did you mean \
             HONCHO_EXPORTER_POLL_INTERVAL?)",
        ),
        (
            "HONCHO_EXPORTER_POLL_INTERVAL",
            "soon",
            "HONCHO_EXPORTER_POLL_INTERVAL: invalid duration \"soon\": expected numbers with units \
             (ms, s, m, h, d), e.g. 15s, 1m30s or 500ms",
        ),
        (
            "HONCHO_EXPORTER_WORKSPACES_STATIC",
            "acme,,globex",
            "HONCHO_EXPORTER_WORKSPACES_STATIC: workspace names must not be empty (check for a stray \
             comma)",
        ),
        (
            "HONCHO_EXPORTER_SHARD_COUNT",
            "0",
            "HONCHO_EXPORTER_SHARD_COUNT: must be at least 1, got 0",
        ),
        (
            "HONCHO_EXPORTER_WORK_UNITS_PAGE_SIZE",
            "0",
            "HONCHO_EXPORTER_WORK_UNITS_PAGE_SIZE: must be at least 1, got 0",
        ),
        (
            "HONCHO_EXPORTER_SCOPES",
            "x",
            "HONCHO_EXPORTER_SCOPES: scopes can only be set in the config file (scopes:)",
        ),
        (
            "HONCHO_EXPORTER_HONCHO_TOKEN",
            " ",
            "HONCHO_EXPORTER_HONCHO_TOKEN: is set but empty; unset it when Honcho runs without auth",
        ),
        (
            "HONCHO_EXPORTER_HONCHO_TOKEN_FILE",
            "/nonexistent/token",
            "HONCHO_EXPORTER_HONCHO_TOKEN_FILE: cannot read token file /nonexistent/token: No such \
             file or directory (os error 2)",
        ),
        (
            "HONCHO_EXPORTER_HONCHO_URL",
            "http://",
            "HONCHO_EXPORTER_HONCHO_URL: invalid URL \"http://\": empty host",
        ),
    ];
    for (variable, value, expected) in cases {
        let error = error(&[], &[(variable, value)]);
        assert_eq!(error.to_string(), *expected, "{variable}={value}");
        assert_eq!(error.exit_code(), 2);
    }
}

#[test]
fn bad_flags_fail_with_the_flag_name() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--poll.interval", "1x"],
            "--poll.interval: invalid duration \"1x\": expected numbers with units (ms, s, m, h, d), \
             e.g. 15s, 1m30s or 500ms",
        ),
        (
            &["--poll.concurrency", "0"],
            "--poll.concurrency: must be at least 1, got 0",
        ),
        (
            &["--poll.concurrency", "many"],
            "--poll.concurrency: expected a whole number, got \"many\"",
        ),
        (
            &["--poll.duty-factor", "0.5"],
            "--poll.duty-factor: must be a number of at least 1, got \"0.5\"",
        ),
        (
            &["--poll.interval", "5s", "--poll.timeout", "5s"],
            "poll.timeout (5s) must be shorter than poll.interval (5s)",
        ),
        (
            &[
                "--web.listen-address",
                ":21794",
                "--web.listen-address",
                "nowhere:1",
            ],
            "--web.listen-address: invalid listen address \"nowhere:1\": expected IP:port, e.g. \
             0.0.0.0:21794, [::]:21794 or :21794",
        ),
        (
            &["--shard.count", "4", "--shard.index", "4"],
            "shard.index (4) must be less than shard.count (4); shards are numbered from 0",
        ),
        (
            &["--honcho.api-generation", "z"],
            "--honcho.api-generation: unknown API generation \"z\"; expected auto, a, b or c",
        ),
        (
            &["--log.format", "xml"],
            "--log.format: unknown log format \"xml\"; expected logfmt or json",
        ),
        (
            &["--honcho.token-file", "tests/data/config/missing-token"],
            "--honcho.token-file: cannot read token file tests/data/config/missing-token: No such \
             file or directory (os error 2)",
        ),
        (
            &["--workspaces.deny", "a)"],
            "--workspaces.deny: invalid regex \"a)\": regex parse error:",
        ),
        (
            &["--web.telemetry-path", "metrics"],
            "--web.telemetry-path: invalid path \"metrics\": must start with / and name a path other \
             than /, e.g. /metrics",
        ),
    ];
    for (args, expected) in cases {
        let error = error(args, &[]);
        assert!(
            error.to_string().starts_with(expected),
            "{args:?}:\n  got      {error}\n  expected {expected}"
        );
        assert_eq!(error.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn token_on_the_command_line_is_refused_without_echoing_it() {
    let inline = format!("--honcho.token={SECRET}");
    for args in [&["--honcho.token", SECRET][..], &[inline.as_str()][..]] {
        let error = error(args, &[]);
        assert_eq!(
            error.to_string(),
            "--honcho.token: the token is not accepted on the command line (other users can read it \
             in the process list); use --honcho.token-file or HONCHO_EXPORTER_HONCHO_TOKEN"
        );
        assert_eq!(error.exit_code(), 2);
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let error = error(&["--poll.intervall", "15s"], &[]);
    assert!(matches!(error, ConfigError::Usage(_)), "{error:?}");
    assert!(error.to_string().contains("--poll.intervall"), "{error}");
    assert!(
        error.to_string().contains("Usage: honcho_exporter"),
        "{error}"
    );
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn help_is_reported_with_exit_code_zero() {
    let help = error(&["--help"], &[]);
    assert!(help.is_help());
    assert_eq!(help.exit_code(), 0);
    for flag in [
        "--web.listen-address",
        "--honcho.token-file",
        "--config.check",
        "HONCHO_EXPORTER_",
    ] {
        assert!(help.to_string().contains(flag), "help lacks {flag}");
    }
    assert!(
        !help.to_string().contains("--honcho.token "),
        "the refused flag is hidden"
    );
}

#[test]
fn version_flag_wins_over_everything_else() {
    assert!(matches!(parse(&["--version"], &[]), Ok(Command::Version)));
    assert!(matches!(
        parse(
            &["--version", "--config.file", "tests/data/config/nope.yml"],
            &[]
        ),
        Ok(Command::Version)
    ));
}

#[test]
fn config_check_validates_like_run() {
    let ok = parse(
        &[
            "--config.check",
            "--config.file",
            "tests/data/config/full.yml",
        ],
        &[],
    );
    assert!(matches!(ok, Ok(Command::Check(_))), "{ok:?}");
    let file = format!("{BAD}/timeout-not-shorter.yml");
    let bad = error(&["--config.check", "--config.file", &file], &[]);
    assert_eq!(bad.exit_code(), 2);
}

#[test]
fn no_configuration_gives_the_documented_defaults() {
    let settings = settings(&[], &[]);
    assert_eq!(settings.honcho.url.as_str(), "http://127.0.0.1:8000/");
    assert_eq!(
        settings.web.listen_addresses,
        vec!["0.0.0.0:21794".parse().expect("valid")]
    );
    assert_eq!(settings.poll.interval, Duration::from_secs(15));
    assert_eq!(settings.poll.timeout, Duration::from_secs(10));
    assert_eq!(settings.poll.max_staleness, Duration::from_secs(45));
    assert_eq!(settings.classify.overdue_after, Duration::from_secs(1815));
    assert!(settings.honcho.token.is_none());
    assert!(settings.scopes.is_empty());
}

#[test]
fn minimal_file_sets_only_the_url() {
    let settings = settings(&["--config.file", "tests/data/config/minimal.yml"], &[]);
    assert_eq!(settings.honcho.url.as_str(), "http://honcho.internal:8000/");
    assert_eq!(settings.poll.interval, Duration::from_secs(15));
    assert_eq!(settings.work_units.page_size, 100);
    assert_eq!(settings.log.format, LogFormat::Logfmt);
}

#[test]
fn full_file_sets_every_key() {
    let settings = settings(&["--config.file", "tests/data/config/full.yml"], &[]);
    let web = &settings.web;
    assert_eq!(
        web.listen_addresses,
        vec![
            "127.0.0.1:9911".parse().expect("v4"),
            "[::1]:9911".parse().expect("v6")
        ]
    );
    assert_eq!(web.telemetry_path, "/custom-metrics");
    assert_eq!(
        web.config_file.as_deref(),
        Some(std::path::Path::new(
            "tests/data/config/../web/basic-auth.yml"
        ))
    );
    assert_eq!(web.max_concurrent_requests, 8);
    assert_eq!(web.request_timeout, Duration::from_secs(20));

    let honcho = &settings.honcho;
    assert_eq!(honcho.url.as_str(), "https://honcho.example.com:8443/api");
    match &honcho.token {
        Some(TokenSource::File(path)) => {
            assert_eq!(path, std::path::Path::new("tests/data/config/token"))
        }
        other => panic!("expected the token file, got {other:?}"),
    }
    assert_eq!(honcho.api_generation, GenerationOverride::B);
    assert_eq!(
        honcho.ca_file.as_deref(),
        Some(std::path::Path::new("tests/data/config/../web/ca.crt"))
    );
    assert_eq!(honcho.max_response_bytes, 1_048_576);
    assert_eq!(honcho.max_requests_per_second, 12.5);
    assert_eq!(honcho.retries, 5);
    assert_eq!(honcho.retry_initial_backoff, Duration::from_millis(100));
    assert_eq!(honcho.retry_max_backoff, Duration::from_secs(10));
    assert_eq!(honcho.deriver_representation_batch_max_tokens, 2048);
    assert!(honcho.deriver_flush_enabled);

    assert_eq!(settings.source, honcho_exporter::config::Source::Postgres);
    let postgres = &settings.postgres;
    assert_eq!(
        postgres.url.as_ref().map(|url| url.as_str()),
        Some("postgres://honcho_exporter@db.example.com:5432/honcho?sslmode=verify-full")
    );
    match &postgres.password {
        Some(TokenSource::File(path)) => assert_eq!(
            path,
            std::path::Path::new("tests/data/config/postgres-password")
        ),
        other => panic!("expected the password file, got {other:?}"),
    }
    assert_eq!(
        postgres.ca_file.as_deref(),
        Some(std::path::Path::new("tests/data/config/../web/ca.crt"))
    );
    assert_eq!(postgres.statement_timeout, Duration::from_secs(20));

    assert_eq!(settings.poll.interval, Duration::from_secs(60));
    assert_eq!(settings.poll.timeout, Duration::from_secs(30));
    assert_eq!(settings.poll.concurrency, 2);
    assert_eq!(settings.poll.duty_factor, 6.0);
    assert_eq!(settings.poll.max_staleness, Duration::from_secs(300));

    let workspaces = &settings.workspaces;
    assert_eq!(workspaces.static_list, ["acme-support", "globex-research"]);
    let allow = workspaces.allow.as_ref().expect("allow set");
    assert!(allow.is_match("acme-support") && !allow.is_match("initech"));
    let deny = workspaces.deny.as_ref().expect("deny set");
    assert!(deny.is_match("umbrella-archive") && !deny.is_match("archive-umbrella"));

    assert_eq!(settings.sessions.max_per_workspace, 10);
    assert!(!settings.work_units.enabled);
    assert_eq!(settings.work_units.page_size, 50);
    assert_eq!(settings.work_units.max_pages, 100);
    assert_eq!(settings.work_units.detail_limit, 5);
    assert_eq!(
        settings.classify.overdue_after,
        Duration::from_secs(45 * 60)
    );
    assert_eq!(
        settings.scopes,
        vec![
            Scope {
                name: "dan-as-observer".into(),
                workspaces: vec!["globex-research".into()],
                observer_id: Some("subject-dan".into()),
                sender_id: None,
                session_id: None,
            },
            Scope {
                name: "interview".into(),
                workspaces: vec![],
                observer_id: None,
                sender_id: Some("subject-dan".into()),
                session_id: Some("interview-01".into()),
            },
        ]
    );
    assert_eq!(settings.log.level, "debug");
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!(settings.shard.count, 3);
    assert_eq!(settings.shard.index, 2);
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let file = ["--config.file", "tests/data/config/full.yml"];
    // file (1m) beats the default (15s)
    assert_eq!(settings(&file, &[]).poll.interval, Duration::from_secs(60));
    // env beats file
    let env = [("HONCHO_EXPORTER_POLL_INTERVAL", "2m")];
    assert_eq!(
        settings(&file, &env).poll.interval,
        Duration::from_secs(120)
    );
    // flag beats env
    let with_flag = [&file[..], &["--poll.interval", "3m"]].concat();
    assert_eq!(
        settings(&with_flag, &env).poll.interval,
        Duration::from_secs(180)
    );
    // a list: flags replace, not append to, the file's list
    let listen = [&file[..], &["--web.listen-address", ":9999"]].concat();
    assert_eq!(
        settings(&listen, &[]).web.listen_addresses,
        vec!["0.0.0.0:9999".parse().expect("valid")]
    );
    // the config file itself can come from the environment
    let from_env = settings(
        &[],
        &[(
            "HONCHO_EXPORTER_CONFIG_FILE",
            "tests/data/config/minimal.yml",
        )],
    );
    assert_eq!(from_env.honcho.url.host_str(), Some("honcho.internal"));
}

#[test]
fn derived_defaults_follow_an_overridden_interval_unless_set() {
    let settings_60 = settings(&["--poll.interval", "1m"], &[]);
    assert_eq!(settings_60.poll.max_staleness, Duration::from_secs(180));
    assert_eq!(
        settings_60.classify.overdue_after,
        Duration::from_secs(1860)
    );
    let explicit = settings(
        &[
            "--poll.interval",
            "1m",
            "--poll.max-staleness",
            "10m",
            "--classify.overdue-after",
            "1h",
        ],
        &[],
    );
    assert_eq!(explicit.poll.max_staleness, Duration::from_secs(600));
    // The timeout follows a short interval (min(10 s, 0.8 × interval)) unless set.
    let short = settings(&["--poll.interval", "5s"], &[]);
    assert_eq!(short.poll.timeout, Duration::from_secs(4));
    assert_eq!(settings_60.poll.timeout, Duration::from_secs(10));
    let set = settings(&["--poll.interval", "5s", "--poll.timeout", "2s"], &[]);
    assert_eq!(set.poll.timeout, Duration::from_secs(2));
    assert_eq!(explicit.classify.overdue_after, Duration::from_secs(3600));
}

#[test]
fn every_setting_has_an_environment_variable() {
    let env = [
        (
            "HONCHO_EXPORTER_WEB_LISTEN_ADDRESSES",
            "127.0.0.1:1,127.0.0.1:2",
        ),
        ("HONCHO_EXPORTER_WEB_TELEMETRY_PATH", "/m"),
        ("HONCHO_EXPORTER_WEB_CONFIG_FILE", "tests/data/web/tls.yml"),
        ("HONCHO_EXPORTER_WEB_MAX_CONCURRENT_REQUESTS", "3"),
        ("HONCHO_EXPORTER_WEB_REQUEST_TIMEOUT", "3s"),
        ("HONCHO_EXPORTER_HONCHO_URL", "http://h:1"),
        (
            "HONCHO_EXPORTER_HONCHO_TOKEN_FILE",
            "tests/data/config/token",
        ),
        ("HONCHO_EXPORTER_HONCHO_API_GENERATION", "A"),
        ("HONCHO_EXPORTER_HONCHO_CA_FILE", "tests/data/web/ca.crt"),
        ("HONCHO_EXPORTER_HONCHO_MAX_RESPONSE_BYTES", "1000"),
        ("HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND", "2"),
        ("HONCHO_EXPORTER_HONCHO_RETRIES", "0"),
        ("HONCHO_EXPORTER_HONCHO_RETRY_INITIAL_BACKOFF", "1s"),
        ("HONCHO_EXPORTER_HONCHO_RETRY_MAX_BACKOFF", "2s"),
        ("HONCHO_EXPORTER_POLL_INTERVAL", "30s"),
        ("HONCHO_EXPORTER_POLL_TIMEOUT", "5s"),
        ("HONCHO_EXPORTER_POLL_CONCURRENCY", "7"),
        ("HONCHO_EXPORTER_POLL_MAX_STALENESS", "2m"),
        ("HONCHO_EXPORTER_WORKSPACES_STATIC", "a, b"),
        ("HONCHO_EXPORTER_WORKSPACES_ALLOW", "a"),
        ("HONCHO_EXPORTER_WORKSPACES_DENY", "b"),
        ("HONCHO_EXPORTER_SESSIONS_MAX_PER_WORKSPACE", "0"),
        ("HONCHO_EXPORTER_WORK_UNITS_ENABLED", "false"),
        ("HONCHO_EXPORTER_WORK_UNITS_PAGE_SIZE", "1"),
        ("HONCHO_EXPORTER_WORK_UNITS_MAX_PAGES", "9"),
        ("HONCHO_EXPORTER_WORK_UNITS_DETAIL_LIMIT", "0"),
        ("HONCHO_EXPORTER_CLASSIFY_OVERDUE_AFTER", "1h"),
        ("HONCHO_EXPORTER_LOG_LEVEL", "warn"),
        ("HONCHO_EXPORTER_LOG_FORMAT", "json"),
        ("HONCHO_EXPORTER_SHARD_COUNT", "2"),
        ("HONCHO_EXPORTER_SHARD_INDEX", "1"),
        ("HONCHO_EXPORTER_POLL_DUTY_FACTOR", "2.5"),
        // Not for this program: ignored.
        ("PATH", "/usr/bin"),
    ];
    let settings = settings(&[], &env);
    assert_eq!(settings.web.listen_addresses.len(), 2);
    assert_eq!(settings.web.telemetry_path, "/m");
    assert!(settings.web.config_file.is_some());
    assert_eq!(settings.web.max_concurrent_requests, 3);
    assert_eq!(settings.web.request_timeout, Duration::from_secs(3));
    assert_eq!(settings.honcho.url.as_str(), "http://h:1/");
    assert!(matches!(settings.honcho.token, Some(TokenSource::File(_))));
    assert_eq!(settings.honcho.api_generation, GenerationOverride::A);
    assert!(settings.honcho.ca_file.is_some());
    assert_eq!(settings.honcho.max_response_bytes, 1000);
    assert_eq!(settings.honcho.max_requests_per_second, 2.0);
    assert_eq!(settings.honcho.retries, 0);
    assert_eq!(
        settings.honcho.retry_initial_backoff,
        Duration::from_secs(1)
    );
    assert_eq!(settings.honcho.retry_max_backoff, Duration::from_secs(2));
    assert_eq!(settings.poll.interval, Duration::from_secs(30));
    assert_eq!(settings.poll.timeout, Duration::from_secs(5));
    assert_eq!(settings.poll.concurrency, 7);
    assert_eq!(settings.poll.max_staleness, Duration::from_secs(120));
    assert_eq!(settings.workspaces.static_list, ["a", "b"]);
    assert!(settings.workspaces.allow.is_some() && settings.workspaces.deny.is_some());
    assert_eq!(settings.sessions.max_per_workspace, 0);
    assert!(!settings.work_units.enabled);
    assert_eq!(settings.work_units.page_size, 1);
    assert_eq!(settings.work_units.max_pages, 9);
    assert_eq!(settings.work_units.detail_limit, 0);
    assert_eq!(settings.classify.overdue_after, Duration::from_secs(3600));
    assert_eq!(settings.log.level, "warn");
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!((settings.shard.count, settings.shard.index), (2, 1));
    assert_eq!(settings.poll.duty_factor, 2.5);
}

#[test]
fn token_from_env_is_redacted_in_debug_output() {
    let settings = settings(&[], &[("HONCHO_EXPORTER_HONCHO_TOKEN", SECRET)]);
    match &settings.honcho.token {
        Some(TokenSource::Env(secret)) => assert_eq!(secret.expose(), SECRET),
        other => panic!("expected the env token, got {other:?}"),
    }
    let debug = format!("{settings:?}");
    assert_no_secret(&debug);
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn token_file_contents_never_appear_in_debug_output() {
    let settings = settings(&["--honcho.token-file", "tests/data/config/token"], &[]);
    assert_no_secret(&format!("{settings:?}"));
}

#[test]
fn token_precedence_follows_the_layers() {
    let env_token = [("HONCHO_EXPORTER_HONCHO_TOKEN", SECRET)];
    // env token beats the file's token_file
    let from_env = settings(&["--config.file", "tests/data/config/full.yml"], &env_token);
    assert!(matches!(from_env.honcho.token, Some(TokenSource::Env(_))));
    // the flag beats the env token
    let from_flag = settings(
        &["--honcho.token-file", "tests/data/config/token"],
        &env_token,
    );
    assert!(matches!(from_flag.honcho.token, Some(TokenSource::File(_))));
    // two environment sources are ambiguous
    let both = error(
        &[],
        &[
            ("HONCHO_EXPORTER_HONCHO_TOKEN", SECRET),
            (
                "HONCHO_EXPORTER_HONCHO_TOKEN_FILE",
                "tests/data/config/token",
            ),
        ],
    );
    assert_eq!(
        both.to_string(),
        "HONCHO_EXPORTER_HONCHO_TOKEN and HONCHO_EXPORTER_HONCHO_TOKEN_FILE are both set; set only one"
    );
    assert_no_secret(&both.to_string());
}

#[test]
fn errors_alongside_a_token_never_show_it() {
    let env = [
        ("HONCHO_EXPORTER_HONCHO_TOKEN", SECRET),
        ("HONCHO_EXPORTER_POLL_TIMEOUT", "1h"),
    ];
    let error = error(&["--honcho.token-file", "tests/data/config/token"], &env);
    assert_no_secret(&error.to_string());
    assert_no_secret(&format!("{error:?}"));
}

#[test]
fn demo_has_its_own_defaults_and_flags() {
    match parse(&["demo"], &[]) {
        Ok(Command::Demo(options)) => assert_eq!(
            options,
            DemoOptions {
                listen_address: "127.0.0.1:21794".parse().expect("valid"),
                sim_listen_address: "127.0.0.1:0".parse().expect("valid"),
                generation: 'c',
                seed: honcho_exporter::config::DEFAULT_DEMO_SEED,
                poll_interval: Duration::from_secs(5),
            }
        ),
        other => panic!("expected demo, got {other:?}"),
    }
    match parse(
        &[
            "demo",
            "--sim.generation",
            "a",
            "--sim.seed",
            "42",
            "--poll.interval",
            "1s",
            "--web.listen-address",
            "127.0.0.1:0",
            "--sim.listen-address",
            "127.0.0.1:18000",
        ],
        &[],
    ) {
        Ok(Command::Demo(options)) => {
            assert_eq!(options.generation, 'a');
            assert_eq!(options.seed, 42);
            assert_eq!(options.poll_interval, Duration::from_secs(1));
            assert_eq!(options.listen_address.port(), 0);
            assert_eq!(options.sim_listen_address.port(), 18000);
        }
        other => panic!("expected demo, got {other:?}"),
    }
    let bad = error(&["demo", "--sim.generation", "d"], &[]);
    assert!(
        matches!(bad, ConfigError::Usage(_)) && bad.exit_code() == 2,
        "{bad:?}"
    );
}

#[test]
fn the_statement_timeout_default_follows_a_short_poll_interval() {
    let url = "postgres://honcho_exporter@127.0.0.1:5432/honcho?sslmode=disable";
    let short = settings(
        &[
            "--source",
            "postgres",
            "--postgres.url",
            url,
            "--poll.interval",
            "5s",
        ],
        &[],
    );
    assert_eq!(short.poll.timeout, Duration::from_secs(4));
    assert_eq!(short.postgres.statement_timeout, Duration::from_secs(2));
    let default = settings(&["--source", "postgres", "--postgres.url", url], &[]);
    assert_eq!(default.postgres.statement_timeout, Duration::from_secs(5));
    let explicit = error(
        &[
            "--source",
            "postgres",
            "--postgres.url",
            url,
            "--poll.interval",
            "5s",
            "--postgres.statement-timeout",
            "4s",
        ],
        &[],
    );
    assert_eq!(
        explicit.to_string(),
        "postgres.statement_timeout (4s) must be shorter than poll.timeout (4s)"
    );
}

#[test]
fn an_unknown_postgres_url_option_is_named() {
    let error = error(
        &[
            "--source",
            "postgres",
            "--postgres.url",
            "postgres://u@h/db?sslmod=require",
        ],
        &[],
    );
    assert!(
        error.to_string().starts_with(
            "--postgres.url: unknown option \"sslmod\"; expected one of sslmode, user,"
        ),
        "{error}"
    );
}
