#!/usr/bin/env bash
# Validates the deployment kit (examples/deploy) offline, each file with its own ecosystem's
# checker: hadolint (Dockerfile), the Compose specification's JSON schema, `kubectl kustomize`
# output against the Kubernetes schemas, cfn-lint (AWS), promtool (Prometheus config, alert
# rules and their unit tests) and the Grafana dashboard's JSON. The Python tools are pinned in
# scripts/deploy-tools.txt and installed in a virtualenv on first use. nginx's config is checked
# (`nginx -t`) and run by tests/fleet.rs; the settings the files hold by tests/deploy_kit.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${RUSTFORGE_TOOLS_VENV:-$HOME/.cache/rustforge-prod/deploy-tools}"
stamp="$venv/.requirements-sha256"
sum=$(sha256sum scripts/deploy-tools.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
  echo "installing the deployment kit's validators in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/deploy-tools.txt
  echo "$sum" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
kit=examples/deploy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "Dockerfile (hadolint)"
hadolint "$kit/Dockerfile"

echo "Compose file (Compose specification schema)"
check-jsonschema --builtin-schema vendor.compose-spec "$kit/compose/compose.yaml"

echo "Kubernetes (kustomize build, then the Kubernetes schemas, strict)"
kubectl kustomize "$kit/kubernetes" > "$tmp/kubernetes.yaml"
kubernetes-validate --strict --quiet "$tmp/kubernetes.yaml"
# kubernetes-validate has no schema for custom resources (it warns and skips the PodMonitor):
# check it against the Prometheus Operator's CRD schema (npm, installed in tests/js). That
# schema checks types, enums and required fields, but not unknown field names.
node tests/js/validate-podmonitor.mjs "$tmp/kubernetes.yaml"

echo "AWS (cfn-lint)"
cfn-lint "$kit/aws/ecs-fargate.yaml"

echo "Prometheus config, alert rules and their tests (promtool)"
promtool check config "$kit/monitoring/prometheus.yml" >/dev/null
promtool test rules "$kit/monitoring/alerts.test.yml"

echo "Grafana dashboard (JSON)"
python3 -m json.tool "$kit/monitoring/grafana-dashboard.json" >/dev/null

echo "deployment kit: every check passed"
