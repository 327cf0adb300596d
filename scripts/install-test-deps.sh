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
bash scripts/start-databases.sh
echo "test dependencies ready (venv: $venv)"
