//! The plain file checks of the deployment artefacts (`deploy/kubernetes`, `deploy/systemd`,
//! `deploy/compose`, `Dockerfile`, `.dockerignore`), formerly half of
//! `scripts/validate_deploy.py`: kustomization references, the prometheus-operator resources'
//! structure, the workloads' hardening and wiring, the systemd unit's directives, the
//! Dockerfile's stages and the `.dockerignore` matcher, the compose file's services and mounts,
//! and the built binary answering on the paths the manifests probe. YAML is read with
//! `yaml-rust2` and compared as JSON values (mapping order does not matter).
//!
//! What needs a tool that exists only in Python stays in `scripts/validate_deploy.py`
//! (`scripts/checks/deploy.sh`): the Kubernetes schemas (kubernetes-validate), the kustomize
//! render, `systemd-analyze`, hadolint and `docker-compose config`. Consistency with the command
//! line (flags, variables, ports, paths, the ConfigMap's config) is `deploy.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use crate::util::truthy;

/// The exporter's container identity (distroless "nonroot").
const NONROOT_UID: i64 = 65532;
const HEALTH_PATH: &str = "/-/healthy";
const READY_PATH: &str = "/-/ready";
/// The StatefulSet's shard wiring: the index comes from the pod-index label.
const SHARD_INDEX_ENV: &str = "HONCHO_EXPORTER_SHARD_INDEX";
const POD_INDEX_FIELD: &str = "metadata.labels['apps.kubernetes.io/pod-index']";
/// The systemd unit's hardening: directive → the value it must have.
const SYSTEMD_REQUIRED: [(&str, &str); 13] = [
    ("DynamicUser", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("NoNewPrivileges", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("MemoryDenyWriteExecute", "yes"),
    ("CapabilityBoundingSet", ""),
];

fn repository() -> PathBuf {
    std::fs::canonicalize(env!("CARGO_MANIFEST_DIR")).expect("the repository exists")
}

fn kubernetes() -> PathBuf {
    repository().join("deploy/kubernetes")
}

/// `path` relative to the repository, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(repository())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

/// `path` with `.` and `..` resolved lexically (like Python's `os.path.normpath`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// YAML as JSON values

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(text.clone()), Value::Number),
        Yaml::Integer(number) => json!(number),
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Boolean(flag) => Value::Bool(*flag),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| {
                    let key = match to_json(key) {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// The non-empty documents of a YAML file, as JSON values.
fn documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", rel(path)))?;
    let documents = YamlLoader::load_from_str(&text)
        .map_err(|error| format!("{} does not parse: {error}", rel(path)))?;
    Ok(documents
        .iter()
        .map(to_json)
        .filter(|document| !document.is_null())
        .collect())
}

fn document_of_kind(path: &Path, kind: &str) -> Value {
    documents(path)
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .find(|document| document["kind"] == kind)
        .unwrap_or_else(|| panic!("{} has no {kind}", rel(path)))
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// A scalar as text (`"9"` for 9), empty for anything else.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}

/// Whether every `key: value` of `wanted` is in `labels`.
fn selects(wanted: &Value, labels: &Value) -> bool {
    wanted
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| &labels[key] == value)
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: kustomizations

fn kustomization_dirs() -> Vec<PathBuf> {
    fn walk(directory: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(directory).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .file_name()
                .is_some_and(|name| name == "kustomization.yaml")
            {
                out.push(directory.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(&kubernetes(), &mut out);
    out.sort();
    out
}

/// What one kustomization names, its bases' included.
#[derive(Default)]
struct KustomizeInputs {
    resources: Vec<PathBuf>,
    patches: Vec<PathBuf>,
    problems: Vec<String>,
}

fn kustomize_inputs(directory: &Path) -> KustomizeInputs {
    let mut inputs = KustomizeInputs::default();
    let file = directory.join("kustomization.yaml");
    let kustomization = match documents(&file) {
        Ok(documents) => documents.into_iter().next().unwrap_or(Value::Null),
        Err(error) => {
            inputs.problems.push(error);
            return inputs;
        }
    };
    let here = rel(directory);
    if kustomization["apiVersion"] != "kustomize.config.k8s.io/v1beta1"
        || kustomization["kind"] != "Kustomization"
    {
        inputs.problems.push(format!(
            "{here}/kustomization.yaml: apiVersion/kind is not kustomize.config.k8s.io/v1beta1 Kustomization"
        ));
    }
    for entry in list(&kustomization["resources"]) {
        let entry = text(entry);
        let target = normalize(&directory.join(entry));
        if target.is_dir() {
            if !target.join("kustomization.yaml").is_file() {
                inputs.problems.push(format!(
                    "{here}: resource directory {entry} has no kustomization.yaml"
                ));
                continue;
            }
            let nested = kustomize_inputs(&target);
            inputs.resources.extend(nested.resources);
            inputs.patches.extend(nested.patches);
            inputs.problems.extend(nested.problems);
        } else if target.is_file() {
            inputs.resources.push(target);
        } else {
            inputs
                .problems
                .push(format!("{here}: resource {entry} does not exist"));
        }
    }
    let patch_entries = list(&kustomization["patches"])
        .iter()
        .map(|patch| &patch["path"])
        .chain(list(&kustomization["patchesStrategicMerge"]));
    for entry in patch_entries.filter_map(Value::as_str) {
        let target = normalize(&directory.join(entry));
        if target.is_file() {
            inputs.patches.push(target);
        } else {
            inputs
                .problems
                .push(format!("{here}: patch {entry} does not exist"));
        }
    }
    for unsupported in ["configMapGenerator", "secretGenerator", "components"] {
        if kustomization.get(unsupported).is_some() {
            inputs.problems.push(format!(
                "{here}: {unsupported} is not checked by this test: extend it"
            ));
        }
    }
    inputs
}

fn kind_and_name(document: &Value) -> (String, String) {
    (
        scalar_text(&document["kind"]),
        scalar_text(&document["metadata"]["name"]),
    )
}

fn kustomize_reference_problems() -> Vec<String> {
    let mut problems = Vec::new();
    for directory in kustomization_dirs() {
        let inputs = kustomize_inputs(&directory);
        problems.extend(inputs.problems);
        let mut targets = BTreeSet::new();
        for path in &inputs.resources {
            match documents(path) {
                Ok(documents) => targets.extend(documents.iter().map(kind_and_name)),
                Err(error) => problems.push(error),
            }
        }
        for path in &inputs.patches {
            match documents(path) {
                Ok(documents) => {
                    for document in &documents {
                        let (kind, name) = kind_and_name(document);
                        if !targets.contains(&(kind.clone(), name.clone())) {
                            problems.push(format!(
                                "{} patches {kind}/{name}, which {} does not contain",
                                rel(path),
                                rel(&directory)
                            ));
                        }
                    }
                }
                Err(error) => problems.push(error),
            }
        }
    }
    problems
}

/// Every resource document under `deploy/kubernetes` (not kustomizations, not patches), with
/// the file it is in.
fn source_documents() -> Vec<(Value, String)> {
    let patches: BTreeSet<PathBuf> = kustomization_dirs()
        .iter()
        .flat_map(|directory| kustomize_inputs(directory).patches)
        .collect();
    let mut files = Vec::new();
    fn walk(directory: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(directory).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "yaml")
            {
                out.push(path);
            }
        }
    }
    walk(&kubernetes(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name != "kustomization.yaml")
                && !patches.contains(path)
        })
        .flat_map(|path| {
            let where_ = rel(&path);
            documents(&path)
                .unwrap_or_else(|error| panic!("{error}"))
                .into_iter()
                .map(move |document| (document, where_.clone()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: prometheus-operator resources (no schema ships for them)

/// The structural problems of a ServiceMonitor, PodMonitor or PrometheusRule; `None` for other
/// kinds (the Python schema check covers those).
fn custom_resource_problems(document: &Value, where_: &str) -> Option<Vec<String>> {
    let kind = text(&document["kind"]);
    let required: &[(&str, &str)] = match kind {
        "ServiceMonitor" => &[("selector", "dict"), ("endpoints", "list")],
        "PrometheusRule" => &[("groups", "list")],
        "PodMonitor" => &[("selector", "dict"), ("podMetricsEndpoints", "list")],
        _ => return None,
    };
    let mut problems = Vec::new();
    if document["apiVersion"] != "monitoring.coreos.com/v1" {
        problems.push(format!(
            "{where_}: {kind} apiVersion is {}, expected monitoring.coreos.com/v1",
            document["apiVersion"]
        ));
    }
    if !truthy(&document["metadata"]["name"]) {
        problems.push(format!("{where_}: {kind} has no metadata.name"));
    }
    let spec = &document["spec"];
    if !spec.is_object() {
        problems.push(format!("{where_}: {kind} has no spec"));
        return Some(problems);
    }
    for (key, shape) in required {
        let right = match *shape {
            "dict" => spec[key].is_object(),
            _ => spec[key].is_array(),
        };
        if !right {
            problems.push(format!("{where_}: {kind} spec.{key} must be a {shape}"));
        }
    }
    match kind {
        "ServiceMonitor" => {
            for (index, endpoint) in list(&spec["endpoints"]).iter().enumerate() {
                if !truthy(&endpoint["port"]) && !truthy(&endpoint["targetPort"]) {
                    problems.push(format!(
                        "{where_}: ServiceMonitor endpoint #{index} names no port"
                    ));
                }
            }
        }
        "PodMonitor" => {
            for (index, endpoint) in list(&spec["podMetricsEndpoints"]).iter().enumerate() {
                if !["port", "portNumber", "targetPort"]
                    .iter()
                    .any(|key| truthy(&endpoint[key]))
                {
                    problems.push(format!(
                        "{where_}: PodMonitor endpoint #{index} names no port"
                    ));
                }
                // Honcho labels its series namespace="honcho": without honorLabels the
                // Kubernetes namespace target label would rename it exported_namespace.
                if endpoint["honorLabels"] != true {
                    problems.push(format!("{where_}: PodMonitor endpoint #{index} must set honorLabels: true (keeps Honcho's namespace label)"));
                }
            }
        }
        _ => {
            for group in list(&spec["groups"]) {
                if !truthy(&group["name"]) || !group["rules"].is_array() {
                    problems.push(format!(
                        "{where_}: PrometheusRule group needs a name and a rules list"
                    ));
                    continue;
                }
                for rule in list(&group["rules"]) {
                    let alert = rule.get("alert").is_some();
                    let record = rule.get("record").is_some();
                    if alert == record || !truthy(&rule["expr"]) {
                        problems.push(format!(
                            "{where_}: rule {rule} needs exactly one of alert/record, and an expr"
                        ));
                    }
                }
            }
        }
    }
    Some(problems)
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: hardening and wiring

fn container_of(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// The value of the first `--<flag>=` argument of a container.
fn argument<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let prefix = format!("--{flag}=");
    list(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .find_map(|argument| argument.strip_prefix(&prefix))
}

fn hardening_problems(workload: &Value, where_: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |condition: bool, message: String| {
        if !condition {
            problems.push(format!("{where_}: {message}"));
        }
    };
    let pod = &workload["spec"]["template"]["spec"];
    let container = container_of(workload);
    let pod_context = &pod["securityContext"];
    let context = &container["securityContext"];
    // A container setting wins over the pod's.
    let effective = |key: &str| context.get(key).unwrap_or(&pod_context[key]).clone();
    expect(
        pod["automountServiceAccountToken"] == false,
        "automountServiceAccountToken must be false".into(),
    );
    expect(
        effective("runAsUser") == NONROOT_UID,
        format!("runAsUser must be {NONROOT_UID}"),
    );
    expect(
        effective("runAsNonRoot") == true,
        "runAsNonRoot must be true".into(),
    );
    expect(
        context["readOnlyRootFilesystem"] == true,
        "readOnlyRootFilesystem must be true".into(),
    );
    expect(
        context["allowPrivilegeEscalation"] == false,
        "allowPrivilegeEscalation must be false".into(),
    );
    expect(
        context["capabilities"]["drop"] == json!(["ALL"]),
        "capabilities.drop must be [ALL]".into(),
    );
    expect(
        effective("seccompProfile")["type"] == "RuntimeDefault",
        "seccompProfile must be RuntimeDefault".into(),
    );
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            expect(
                container["resources"][bound].get(resource).is_some(),
                format!("resources.{bound}.{resource} missing"),
            );
        }
    }
    expect(
        container["livenessProbe"]["httpGet"]["path"] == HEALTH_PATH,
        format!("livenessProbe must GET {HEALTH_PATH}"),
    );
    expect(
        container["readinessProbe"]["httpGet"]["path"] == READY_PATH,
        format!("readinessProbe must GET {READY_PATH}"),
    );
    let mounts: BTreeMap<&str, &Value> = list(&container["volumeMounts"])
        .iter()
        .map(|mount| (text(&mount["name"]), mount))
        .collect();
    let volumes = list(&pod["volumes"]);
    let token_volume = volumes.iter().find(|volume| volume.get("secret").is_some());
    expect(
        token_volume
            .is_some_and(|volume| volume["secret"]["secretName"] == "honcho-exporter-token"),
        "the token must come from Secret honcho-exporter-token".into(),
    );
    if let Some(volume) = token_volume {
        let mount = mounts
            .get(text(&volume["name"]))
            .copied()
            .unwrap_or(&Value::Null);
        let token_file = argument(container, "honcho.token-file");
        let items = match list(&volume["secret"]["items"]) {
            [] => vec![json!({"path": "token"})],
            items => items.to_vec(),
        };
        let mount_path = mount["mountPath"].as_str().unwrap_or("?");
        let mounted: BTreeSet<String> = items
            .iter()
            .map(|item| format!("{mount_path}/{}", text(&item["path"])))
            .collect();
        expect(
            token_file.is_some_and(|file| mounted.contains(file)),
            format!(
                "--honcho.token-file={} is not a file of the mounted Secret ({mounted:?})",
                token_file.unwrap_or("None")
            ),
        );
        expect(
            mount["readOnly"] == true,
            "the Secret mount must be readOnly".into(),
        );
    }
    let config_volume = volumes
        .iter()
        .find(|volume| volume.get("configMap").is_some());
    match (config_volume, argument(container, "config.file")) {
        (Some(volume), Some(config_file)) => {
            let mount = mounts
                .get(text(&volume["name"]))
                .copied()
                .unwrap_or(&Value::Null);
            let mount_path = mount["mountPath"].as_str().unwrap_or("?");
            expect(
                config_file.starts_with(&format!("{mount_path}/")),
                format!(
                    "--config.file={config_file} is not under the ConfigMap mount {mount_path}"
                ),
            );
        }
        _ => expect(
            false,
            "--config.file must point into the mounted ConfigMap".into(),
        ),
    }
    problems
}

/// The base and sharded manifests as one set, for the wiring checks (and their tests, which
/// break one of them).
struct Manifests {
    deployment: Value,
    statefulset: Value,
    service: Value,
    headless: Value,
    monitor: Value,
    configmap: Value,
}

impl Manifests {
    fn shipped() -> Manifests {
        let base = kubernetes().join("base");
        let sharded = kubernetes().join("sharded");
        Manifests {
            deployment: document_of_kind(&base.join("deployment.yaml"), "Deployment"),
            statefulset: document_of_kind(&sharded.join("statefulset.yaml"), "StatefulSet"),
            service: document_of_kind(&base.join("service.yaml"), "Service"),
            headless: document_of_kind(&sharded.join("service-headless.yaml"), "Service"),
            monitor: document_of_kind(&base.join("servicemonitor.yaml"), "ServiceMonitor"),
            configmap: document_of_kind(&base.join("configmap.yaml"), "ConfigMap"),
        }
    }

    fn wiring_problems(&self) -> Vec<String> {
        let Manifests {
            deployment,
            statefulset,
            service,
            headless,
            monitor,
            configmap,
        } = self;
        let mut problems = hardening_problems(deployment, "base Deployment");
        problems.extend(hardening_problems(statefulset, "sharded StatefulSet"));
        if deployment["spec"]["replicas"] != 1 {
            problems.push("base Deployment: replicas must be 1 (two would double Honcho's load; see README HA)".into());
        }
        // The ConfigMap's file name is --config.file's.
        let config_file = argument(container_of(deployment), "config.file").unwrap_or("");
        let config_name = Path::new(config_file)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if configmap["data"].get(&config_name).is_none() {
            problems.push(format!(
                "ConfigMap has no key {config_name} for --config.file={config_file}"
            ));
        }
        // Service → pods, ServiceMonitor → Service, port names.
        if !selects(
            &service["spec"]["selector"],
            &deployment["spec"]["template"]["metadata"]["labels"],
        ) {
            problems.push("Service selector does not select the Deployment's pods".into());
        }
        let container_ports: Vec<(&Value, &Value)> = list(&container_of(deployment)["ports"])
            .iter()
            .map(|port| (&port["name"], &port["containerPort"]))
            .collect();
        for port in list(&service["spec"]["ports"]) {
            let target = &port["targetPort"];
            if !container_ports
                .iter()
                .any(|(name, number)| *name == target || *number == target)
            {
                problems.push(format!(
                    "Service port {} targets {target}, not a container port",
                    scalar_text(&port["name"])
                ));
            }
        }
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        if !selects(selector, &service["metadata"]["labels"]) {
            problems
                .push("ServiceMonitor selector does not select the honcho-exporter Service".into());
        }
        if selects(selector, &headless["metadata"]["labels"]) {
            problems.push("ServiceMonitor also selects the headless shard Service: every shard would be scraped twice".into());
        }
        let port_names: Vec<&Value> = list(&service["spec"]["ports"])
            .iter()
            .map(|port| &port["name"])
            .collect();
        for endpoint in list(&monitor["spec"]["endpoints"]) {
            if !port_names.contains(&&endpoint["port"]) {
                problems.push(format!(
                    "ServiceMonitor endpoint port {} is not a Service port name",
                    endpoint["port"]
                ));
            }
        }
        problems.extend(self.shard_problems());
        problems
    }

    /// The sharded StatefulSet: replicas = `--shard.count`, the index from the pod-index label,
    /// the headless Service, and the base's pod template otherwise.
    fn shard_problems(&self) -> Vec<String> {
        let Manifests {
            deployment,
            statefulset,
            headless,
            ..
        } = self;
        let mut problems = Vec::new();
        let container = container_of(statefulset);
        let arguments: Vec<&str> = list(&container["args"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let shard_count: Vec<&str> = arguments
            .iter()
            .filter_map(|argument| argument.strip_prefix("--shard.count="))
            .collect();
        let replicas = scalar_text(&statefulset["spec"]["replicas"]);
        if shard_count != [replicas.as_str()] {
            problems.push(format!(
                "StatefulSet replicas {replicas} must equal --shard.count ({shard_count:?})"
            ));
        }
        if arguments
            .iter()
            .any(|argument| argument.starts_with("--shard.index"))
        {
            problems.push("StatefulSet passes --shard.index: a flag beats the env, so every pod would get the same shard".into());
        }
        let field_path = list(&container["env"])
            .iter()
            .find(|variable| variable["name"] == SHARD_INDEX_ENV)
            .map(|variable| &variable["valueFrom"]["fieldRef"]["fieldPath"]);
        if field_path.is_none_or(|path| path != POD_INDEX_FIELD) {
            problems.push(format!(
                "StatefulSet: {SHARD_INDEX_ENV} must come from fieldRef {POD_INDEX_FIELD} (got {field_path:?})"
            ));
        }
        if statefulset["spec"]["serviceName"] != headless["metadata"]["name"]
            || headless["spec"]["clusterIP"] != "None"
        {
            problems
                .push("StatefulSet serviceName must be the headless Service in sharded/".into());
        }
        // The pod template stays the base's, plus the shard wiring only.
        let expected = deployment["spec"]["template"].clone();
        let mut actual = statefulset["spec"]["template"].clone();
        if let Some(container) = actual["spec"]["containers"]
            .get_mut(0)
            .and_then(Value::as_object_mut)
        {
            if let Some(Value::Array(arguments)) = container.get_mut("args") {
                arguments.retain(|argument| !text(argument).starts_with("--shard."));
            }
            container.remove("env");
        }
        if expected != actual {
            problems.push("the StatefulSet pod template drifted from the base Deployment's (beyond --shard.count and the env): copy the change over".into());
        }
        problems
    }
}

// ---------------------------------------------------------------------------------------------
// systemd

/// Directive → values (a directive may repeat). Sections are not distinguished.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut directives: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        directives
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    directives
}

fn systemd_problems(unit_text: &str, env_text: &str) -> Vec<String> {
    let unit = parse_unit(unit_text);
    let values = |key: &str| unit.get(key).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for (key, value) in SYSTEMD_REQUIRED {
        if !values(key).iter().any(|found| found == value) {
            problems.push(format!("{key}={value} missing"));
        }
    }
    if !values("SystemCallFilter")
        .iter()
        .any(|value| value.starts_with("@system-service"))
    {
        problems.push("SystemCallFilter=@system-service missing".into());
    }
    let exec_start = values("ExecStart").join(" ");
    if !exec_start.starts_with("/usr/local/bin/honcho_exporter") {
        problems.push("ExecStart must run /usr/local/bin/honcho_exporter".into());
    }
    if !values("LoadCredential")
        .iter()
        .any(|value| value.starts_with("honcho-token:"))
    {
        problems.push("LoadCredential=honcho-token:… missing".into());
    }
    if !exec_start.contains("--honcho.token-file=${CREDENTIALS_DIRECTORY}/honcho-token") {
        problems.push(
            "ExecStart must pass --honcho.token-file=${CREDENTIALS_DIRECTORY}/honcho-token".into(),
        );
    }
    if unit.contains_key("ExecReload") {
        problems.push("ExecReload is set, but a SIGHUP cannot apply EnvironmentFile= settings (systemd reads them only at start)".into());
    }
    let assignment = regex(r"^[A-Z][A-Z0-9_]*=.*$");
    for (number, line) in env_text.lines().enumerate() {
        let stripped = line.trim();
        if !stripped.is_empty() && !stripped.starts_with('#') && !assignment.is_match(stripped) {
            problems.push(format!(
                "deploy/systemd/honcho_exporter.env:{} is not KEY=value: {line:?}",
                number + 1
            ));
        }
    }
    if !env_text.contains("HONCHO_EXPORTER_HONCHO_URL=") {
        problems
            .push("deploy/systemd/honcho_exporter.env must set HONCHO_EXPORTER_HONCHO_URL".into());
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore

/// (KEYWORD, rest) of every instruction, continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    text.replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            (keyword.to_uppercase(), rest.trim().to_string())
        })
        .collect()
}

/// fnmatch of one path component: `*`, `?` and `[...]` (`[!...]` negated).
fn component_matches(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|skip| component_matches(rest, &name[skip..])),
        Some(('?', rest)) => !name.is_empty() && component_matches(rest, &name[1..]),
        Some(('[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                return name.first() == Some(&'[') && component_matches(rest, &name[1..]);
            };
            let Some(first) = name.first() else {
                return false;
            };
            let (negated, class) = match rest[..close].split_first() {
                Some(('!', class)) => (true, class),
                _ => (false, &rest[..close]),
            };
            let mut inside = false;
            let mut index = 0;
            while index < class.len() {
                if index + 2 < class.len() && class[index + 1] == '-' {
                    inside |= (class[index]..=class[index + 2]).contains(first);
                    index += 3;
                } else {
                    inside |= class[index] == *first;
                    index += 1;
                }
            }
            inside != negated && component_matches(&rest[close + 1..], &name[1..])
        }
        Some((literal, rest)) => {
            name.first() == Some(literal) && component_matches(rest, &name[1..])
        }
    }
}

/// Python's `PurePosixPath(path).match(pattern)`: a relative pattern matches the path's last
/// components, one glob per component (`**` is `*`).
fn path_matches(path: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let pattern_parts: Vec<&str> = pattern.split('/').filter(|part| !part.is_empty()).collect();
    if pattern_parts.is_empty() || pattern_parts.len() > parts.len() {
        return false;
    }
    let tail = &parts[parts.len() - pattern_parts.len()..];
    tail.iter().zip(&pattern_parts).all(|(part, glob)| {
        let glob: Vec<char> = glob.chars().collect();
        let part: Vec<char> = part.chars().collect();
        component_matches(&glob, &part)
    })
}

/// Whether `.dockerignore`'s patterns (last match wins, `!` re-includes) exclude this path (or
/// one of its parent directories).
fn dockerignore_excludes(patterns: &[String], path: &str) -> bool {
    let mut candidates = vec![path.to_string()];
    let mut parent = Path::new(path).parent();
    while let Some(directory) = parent.filter(|directory| !directory.as_os_str().is_empty()) {
        candidates.push(directory.display().to_string());
        parent = directory.parent();
    }
    let mut excluded = false;
    for pattern in patterns {
        let (negate, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, pattern.as_str()),
        };
        let pattern = pattern.trim_end_matches('/');
        let matched = candidates.iter().any(|candidate| {
            path_matches(candidate, pattern)
                || candidate == pattern
                || pattern
                    .strip_prefix("**/")
                    .is_some_and(|rest| path_matches(candidate, rest))
        });
        if matched {
            excluded = !negate;
        }
    }
    excluded
}

fn dockerignore_patterns(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.trim().to_string())
        .collect()
}

fn rust_files(directory: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

fn dockerfile_problems(dockerfile: &str, dockerignore: &str) -> Vec<String> {
    let instructions = dockerfile_instructions(dockerfile);
    let mut problems = Vec::new();
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(keyword, _)| keyword == "FROM")
        .map(|(_, rest)| rest.as_str())
        .collect();
    if froms.len() < 2 {
        problems.push("not multi-stage (needs a builder and a final stage)".into());
    }
    for image in &froms {
        let reference = image.split_whitespace().next().unwrap_or("");
        let last = reference.rsplit('/').next().unwrap_or("");
        if !last.contains(':') || reference.ends_with(":latest") {
            problems.push(format!("FROM {reference}: pin a tag other than latest"));
        }
    }
    if froms.first().is_some_and(|from| !from.starts_with("rust:")) {
        problems.push("the builder stage must be a rust image".into());
    }
    if let Some(last) = froms.last()
        && !(last.starts_with("scratch") || last.starts_with("gcr.io/distroless/static"))
    {
        problems.push(format!(
            "final stage {last} is neither scratch nor distroless/static"
        ));
    }
    let final_from = instructions
        .iter()
        .rposition(|(keyword, _)| keyword == "FROM")
        .unwrap_or(0);
    let final_stage = &instructions[final_from..];
    let user = final_stage
        .iter()
        .filter(|(keyword, _)| keyword == "USER")
        .map(|(_, rest)| rest.split(':').next().unwrap_or(""))
        .next_back();
    if user != Some(NONROOT_UID.to_string().as_str()) {
        problems.push(format!("final stage must run as USER {NONROOT_UID}"));
    }
    let build = instructions
        .iter()
        .find(|(keyword, rest)| keyword == "RUN" && rest.contains("cargo build"));
    let flags = [
        "--release",
        "--locked",
        "--target x86_64-unknown-linux-musl",
        "--bin honcho_exporter",
    ];
    if !build.is_some_and(|(_, rest)| flags.iter().all(|flag| rest.contains(flag))) {
        problems.push("builder must run `cargo build --release --locked --target x86_64-unknown-linux-musl --bin honcho_exporter`".into());
    }
    let entrypoint = final_stage
        .iter()
        .rfind(|(keyword, _)| keyword == "ENTRYPOINT");
    if !entrypoint.is_some_and(|(_, rest)| rest.starts_with('[')) {
        problems.push("ENTRYPOINT must be in exec form (JSON array)".into());
    }
    // EXPOSE is the default listen port: deploy.rs. .dockerignore must keep everything `cargo
    // build --locked` reads, and drop target/ and .git.
    let patterns = dockerignore_patterns(dockerignore);
    for needed in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"] {
        if dockerignore_excludes(&patterns, needed) {
            problems.push(format!(
                ".dockerignore excludes {needed}, which the build needs"
            ));
        }
    }
    let root = repository();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    for captures in regex(r#"(?m)^path\s*=\s*"([^"]+)""#).captures_iter(&manifest) {
        if dockerignore_excludes(&patterns, &captures[1]) {
            problems.push(format!(".dockerignore excludes {}, a target Cargo.toml declares (cargo refuses a manifest with missing targets)", &captures[1]));
        }
    }
    for captures in regex(r#"\[\[bench\]\]\s*\nname\s*=\s*"([^"]+)""#).captures_iter(&manifest) {
        let bench = format!("benches/{}.rs", &captures[1]);
        if dockerignore_excludes(&patterns, &bench) {
            problems.push(format!(
                ".dockerignore excludes {bench}, declared in Cargo.toml"
            ));
        }
    }
    let mut sources = Vec::new();
    rust_files(&root.join("src"), &mut sources);
    let include = regex(r#"include_(?:str|bytes)!\(\s*"([^"]+)""#);
    for source in sources {
        let text = std::fs::read_to_string(&source).expect("a source file");
        for captures in include.captures_iter(&text) {
            let directory = source.parent().expect("a parent");
            let target = normalize(&Path::new(&rel(directory)).join(&captures[1]));
            let target = target.display().to_string();
            if dockerignore_excludes(&patterns, &target) {
                problems.push(format!(
                    ".dockerignore excludes {target}, which {} includes at compile time",
                    rel(&source)
                ));
            }
        }
    }
    for must_exclude in ["target", ".git"] {
        if !dockerignore_excludes(&patterns, &format!("{must_exclude}/x")) {
            problems.push(format!(".dockerignore must exclude {must_exclude}/"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// docker compose

/// (host source, container target) of a bind mount; (None, target) for a named volume.
fn volume_source(volume: &Value) -> (Option<String>, String) {
    if volume.is_object() {
        let source = (volume["type"] == "bind").then(|| text(&volume["source"]).to_string());
        return (source, text(&volume["target"]).to_string());
    }
    let volume = text(volume);
    let mut parts = volume.split(':');
    let source = parts.next().unwrap_or("").to_string();
    let target = parts.next().map_or(source.clone(), str::to_string);
    if source.starts_with(['.', '/', '~']) {
        (Some(source), target)
    } else {
        (None, target)
    }
}

/// The files matching a glob (`*`, `?`, `[...]` per component) of an absolute path.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut matches = vec![PathBuf::from("/")];
    for component in pattern.components().skip(1) {
        let part = component.as_os_str().to_string_lossy().into_owned();
        let glob: Vec<char> = part.chars().collect();
        matches = matches
            .into_iter()
            .flat_map(|directory| {
                if !part.contains(['*', '?', '[']) {
                    let next = directory.join(&part);
                    return if next.exists() { vec![next] } else { vec![] };
                }
                std::fs::read_dir(&directory)
                    .map(|entries| {
                        entries
                            .filter_map(Result::ok)
                            .map(|entry| entry.path())
                            .filter(|path| {
                                let name: Vec<char> = path
                                    .file_name()
                                    .map(|name| name.to_string_lossy().chars().collect())
                                    .unwrap_or_default();
                                component_matches(&glob, &name)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
    }
    matches
}

fn shipped_compose() -> Value {
    documents(&repository().join("deploy/compose/docker-compose.yml"))
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// The problems of a compose file (read as `deploy/compose/docker-compose.yml`: its relative
/// paths are resolved from `deploy/compose`).
fn compose_problems(compose: &Value) -> Vec<String> {
    let root = repository();
    let base = root.join("deploy/compose");
    let services = compose["services"].as_object().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for needed in [
        "database",
        "honcho-api",
        "honcho-deriver",
        "honcho-exporter",
        "prometheus",
        "grafana",
    ] {
        if !services.contains_key(needed) {
            problems.push(format!("service {needed} missing"));
        }
    }
    let database_image = services
        .get("database")
        .map_or("", |database| text(&database["image"]));
    if database_image.split(':').next() != Some("pgvector/pgvector") {
        problems.push("database must be pgvector/pgvector".into());
    }
    let mut mounts: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (name, service) in &services {
        let image = text(&service["image"]);
        let last = image.rsplit('/').next().unwrap_or("");
        if image.ends_with(":latest")
            || (!image.is_empty() && !last.contains(':') && !image.contains("${"))
        {
            problems.push(format!("{name}: image {image} needs a pinned tag"));
        }
        for port in list(&service["ports"]) {
            let port = scalar_text(port);
            if !port.starts_with("127.0.0.1:") {
                problems.push(format!("{name}: port {port} is not bound to 127.0.0.1"));
            }
        }
        for volume in list(&service["volumes"]) {
            let (Some(source), target) = volume_source(volume) else {
                continue;
            };
            let host = normalize(&base.join(&source));
            if !host.exists() {
                problems.push(format!(
                    "{name}: bind-mount source {source} ({}) does not exist",
                    rel(&host)
                ));
            }
            mounts.entry(name.clone()).or_default().insert(target, host);
        }
        let build = &service["build"];
        if !build.is_null() {
            let (context, dockerfile) = match build {
                Value::String(context) => (context.as_str(), "Dockerfile"),
                build => (
                    build["context"].as_str().unwrap_or("."),
                    build["dockerfile"].as_str().unwrap_or("Dockerfile"),
                ),
            };
            let dockerfile = normalize(&base.join(context)).join(dockerfile);
            if !dockerfile.is_file() {
                problems.push(format!(
                    "{name}: build Dockerfile {} does not exist",
                    rel(&dockerfile)
                ));
            }
        }
        let env_files = match &service["env_file"] {
            Value::String(path) => vec![json!(path)],
            other => list(other).to_vec(),
        };
        for env_file in env_files {
            let (path, required) = match &env_file {
                Value::String(path) => (path.clone(), true),
                entry => (
                    text(&entry["path"]).to_string(),
                    entry["required"].as_bool().unwrap_or(true),
                ),
            };
            if required && !base.join(&path).is_file() {
                problems.push(format!("{name}: required env_file {path} does not exist"));
            }
        }
    }
    let exporter_build = services
        .get("honcho-exporter")
        .map_or(Value::Null, |exporter| exporter["build"].clone());
    if exporter_build["dockerfile"] != "Dockerfile"
        || normalize(&base.join(text(&exporter_build["context"]))) != root
    {
        problems.push("honcho-exporter must be built from the repository's Dockerfile".into());
    }

    // Prometheus: its config's rule_files globs find the exporter's rules through the mount.
    let empty = BTreeMap::new();
    let prometheus_mounts = mounts.get("prometheus").unwrap_or(&empty);
    match prometheus_mounts.get("/etc/prometheus/prometheus.yml") {
        None => problems.push(
            "prometheus: ./prometheus.yml is not mounted at /etc/prometheus/prometheus.yml".into(),
        ),
        Some(config) if config.is_file() => {
            let config = documents(config)
                .unwrap_or_else(|error| panic!("{error}"))
                .into_iter()
                .next()
                .unwrap_or(Value::Null);
            for pattern in list(&config["rule_files"]).iter().map(text) {
                let mapped = prometheus_mounts.iter().rev().find_map(|(target, host)| {
                    let target = target.trim_end_matches('/');
                    pattern
                        .strip_prefix(&format!("{target}/"))
                        .map(|rest| host.join(rest))
                });
                match mapped {
                    None => problems.push(format!(
                        "prometheus: rule_files {pattern} is not inside a mounted directory"
                    )),
                    Some(mapped) if glob(&mapped).is_empty() => problems.push(format!(
                        "prometheus: rule_files {pattern} matches no file (looked in {})",
                        rel(mapped.parent().unwrap_or(&mapped))
                    )),
                    Some(_) => {}
                }
            }
        }
        Some(_) => {}
    }

    // Grafana: provisioning mounted, the datasource is the prometheus service, dashboards found.
    let grafana_mounts = mounts.get("grafana").unwrap_or(&empty);
    match grafana_mounts.get("/etc/grafana/provisioning") {
        Some(provisioning) if provisioning.is_dir() => {
            let yml = |directory: &str| glob(&provisioning.join(directory).join("*.yml"));
            let (datasources, dashboards) = (yml("datasources"), yml("dashboards"));
            if datasources.is_empty() || dashboards.is_empty() {
                problems.push(
                    "grafana: provisioning needs datasources/*.yml and dashboards/*.yml".into(),
                );
            }
            for path in &datasources {
                for document in documents(path).unwrap_or_else(|error| panic!("{error}")) {
                    for source in list(&document["datasources"]) {
                        if source["url"] != "http://prometheus:9090" {
                            problems.push(format!(
                                "{}: datasource url {} is not the prometheus service",
                                rel(path),
                                source["url"]
                            ));
                        }
                    }
                }
            }
            for path in &dashboards {
                for document in documents(path).unwrap_or_else(|error| panic!("{error}")) {
                    for provider in list(&document["providers"]) {
                        let container_path = text(&provider["options"]["path"]);
                        match grafana_mounts.get(container_path) {
                            None => problems.push(format!(
                                "{}: dashboards path {container_path} is not a mounted directory",
                                rel(path)
                            )),
                            Some(host) if glob(&host.join("*.json")).is_empty() => problems
                                .push(format!("{}: no dashboard JSON in {}", rel(path), rel(host))),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        _ => problems.push(
            "grafana: ./grafana/provisioning is not mounted at /etc/grafana/provisioning".into(),
        ),
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Tests

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_file_a_kustomization_names_exists_parses_and_patches_a_resource_it_has() {
    assert!(
        kustomization_dirs().len() >= 3,
        "base, sharded, honcho-metrics"
    );
    assert_no_problems("kustomizations", &kustomize_reference_problems());
}

#[test]
fn the_prometheus_operator_resources_have_their_required_structure() {
    let documents = source_documents();
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for (document, where_) in &documents {
        if let Some(found) = custom_resource_problems(document, where_) {
            checked.insert(text(&document["kind"]).to_string());
            problems.extend(found);
        }
    }
    assert_eq!(
        checked,
        BTreeSet::from([
            "PodMonitor".into(),
            "PrometheusRule".into(),
            "ServiceMonitor".into()
        ]),
        "every prometheus-operator kind shipped is checked"
    );
    assert_no_problems("prometheus-operator resources", &problems);
}

#[test]
fn a_broken_prometheus_operator_resource_is_reported() {
    let (mut monitor, where_) = source_documents()
        .into_iter()
        .find(|(document, _)| document["kind"] == "PodMonitor")
        .expect("a PodMonitor");
    monitor["spec"]["podMetricsEndpoints"][0]["honorLabels"] = json!(false);
    monitor["apiVersion"] = json!("monitoring.coreos.com/v2");
    let problems = custom_resource_problems(&monitor, &where_).expect("a checked kind");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("apiVersion is \"monitoring.coreos.com/v2\""));
    assert!(problems[1].contains("must set honorLabels: true"));
}

#[test]
fn the_workloads_are_hardened_and_wired_to_their_service_monitor_config_and_shards() {
    assert_no_problems("kubernetes wiring", &Manifests::shipped().wiring_problems());
}

#[test]
fn a_weakened_or_miswired_workload_is_reported() {
    let mut manifests = Manifests::shipped();
    let container = &mut manifests.deployment["spec"]["template"]["spec"]["containers"][0];
    container["securityContext"]["readOnlyRootFilesystem"] = json!(false);
    container["readinessProbe"]["httpGet"]["path"] = json!("/ready");
    manifests.statefulset["spec"]["replicas"] = json!(4);
    let problems = manifests.wiring_problems();
    let expected = [
        "base Deployment: readOnlyRootFilesystem must be true",
        "base Deployment: readinessProbe must GET /-/ready",
        "StatefulSet replicas 4 must equal --shard.count",
        "the StatefulSet pod template drifted from the base Deployment's",
    ];
    for needle in expected {
        assert!(
            problems.iter().any(|problem| problem.contains(needle)),
            "not reported: {needle}\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn the_systemd_unit_has_its_hardening_directives_and_token_credential() {
    let root = repository();
    let unit = std::fs::read_to_string(root.join("deploy/systemd/honcho_exporter.service"))
        .expect("the unit");
    let env = std::fs::read_to_string(root.join("deploy/systemd/honcho_exporter.env"))
        .expect("the env file");
    assert_no_problems("systemd", &systemd_problems(&unit, &env));
    let weakened = unit.replace("ProtectSystem=strict", "ProtectSystem=full")
        + "ExecReload=/bin/kill -HUP $MAINPID\n";
    let problems = systemd_problems(&weakened, &format!("{env}not an assignment\n"));
    assert!(
        problems.contains(&"ProtectSystem=strict missing".to_string()),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|problem| problem.starts_with("ExecReload is set")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|problem| problem.ends_with("is not KEY=value: \"not an assignment\"")),
        "{problems:?}"
    );
}

#[test]
fn the_dockerfile_builds_static_and_runs_non_root_with_a_dockerignore_keeping_the_inputs() {
    let root = repository();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let dockerignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    assert_no_problems(
        "Dockerfile",
        &dockerfile_problems(&dockerfile, &dockerignore),
    );
    let problems = dockerfile_problems(
        &dockerfile.replace("USER 65532", "USER 0"),
        &format!("{dockerignore}src/\n!target/\n"),
    );
    for needle in [
        "final stage must run as USER 65532",
        ".dockerignore excludes src/main.rs, which the build needs",
        ".dockerignore must exclude target/",
    ] {
        assert!(
            problems.iter().any(|problem| problem.contains(needle)),
            "not reported: {needle}\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn the_dockerignore_matcher_follows_last_match_wins_and_reinclusion() {
    let patterns: Vec<String> = ["target/", ".git/", "*.md", "!README.md", "**/*.log"]
        .map(String::from)
        .to_vec();
    assert!(dockerignore_excludes(&patterns, "target/debug/x"));
    assert!(!dockerignore_excludes(&patterns, "README.md"));
    assert!(dockerignore_excludes(&patterns, "NOTES.md"));
    assert!(dockerignore_excludes(&patterns, "docs/NOTES.md"));
    assert!(!dockerignore_excludes(&patterns, "src/main.rs"));
    assert!(dockerignore_excludes(&patterns, "a/b/run.log"));
    assert!(!dockerignore_excludes(&patterns, "targets/x"));
    assert!(component_matches(
        &['[', 'a', '-', 'c', ']', '*'],
        &['b', 'x']
    ));
    assert!(!component_matches(&['[', '!', 'a', ']'], &['a']));
}

#[test]
fn the_compose_file_has_its_services_pinned_images_loopback_ports_and_every_mounted_file() {
    assert_no_problems("compose", &compose_problems(&shipped_compose()));
}

#[test]
fn a_compose_file_with_an_open_port_a_floating_image_or_a_missing_mount_is_reported() {
    let mut compose = shipped_compose();
    let services = compose["services"]
        .as_object_mut()
        .expect("compose services");
    services.remove("grafana");
    let prometheus = services
        .get_mut("prometheus")
        .expect("a prometheus service");
    prometheus["ports"] = json!(["9090:9090"]);
    prometheus["image"] = json!("prom/prometheus:latest");
    prometheus["volumes"]
        .as_array_mut()
        .expect("prometheus volumes")
        .push(json!("./no-such-file.yml:/etc/prometheus/extra.yml:ro"));
    let problems = compose_problems(&compose);
    for needle in [
        "service grafana missing",
        "prometheus: port 9090:9090 is not bound to 127.0.0.1",
        "prometheus: image prom/prometheus:latest needs a pinned tag",
        "prometheus: bind-mount source ./no-such-file.yml (deploy/compose/no-such-file.yml) does not exist",
        "grafana: ./grafana/provisioning is not mounted at /etc/grafana/provisioning",
    ] {
        assert!(
            problems.iter().any(|problem| problem == needle),
            "not reported: {needle}\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn the_compose_prometheus_config_passes_promtool_check_config() {
    if !crate::util::require_tool("promtool", "Debian package `prometheus`") {
        return;
    }
    let config = repository().join("deploy/compose/prometheus.yml");
    let output = std::process::Command::new("promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(&config)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool check config rejected {}:\n{}{}",
        rel(&config),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_binary_answers_on_the_paths_the_manifests_probe() {
    let monitor = document_of_kind(
        &kubernetes().join("base/servicemonitor.yaml"),
        "ServiceMonitor",
    );
    let telemetry_path = monitor["spec"]["endpoints"][0]["path"]
        .as_str()
        .unwrap_or("/metrics")
        .to_string();
    // Honcho unreachable (nothing listens on port 9): the probes must still answer.
    let (exporter, base) =
        crate::daemon::start_exporter(&["--honcho.url=http://127.0.0.1:9"], &[]).await;
    honcho_exporter::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    // /-/ready may be 200 or 503 (whether a cycle whose every request failed counts as complete
    // is the binary's call); a 404 would mean the probe path is wrong.
    for (path, accepted) in [
        (HEALTH_PATH, &[200][..]),
        (READY_PATH, &[200, 503][..]),
        (telemetry_path.as_str(), &[200][..]),
    ] {
        let status = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
            .status()
            .as_u16();
        assert!(
            accepted.contains(&status),
            "GET {path} answered {status}, expected {accepted:?}; stderr:\n{}",
            exporter.stderr()
        );
    }
    drop(exporter);
}
