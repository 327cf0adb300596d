#!/usr/bin/env bash
# Every test: installs what they need, builds, runs the Rust tests (unit tests and the
# in-process cluster tests) with nextest, then the Python client suite (ADBC, pyarrow,
# TPC-H against DuckDB) against a multi-process cluster started from the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
venv="${TRIBUTARY_VENV:-$HOME/.cache/tributary/venv}"
bash scripts/install-test-deps.sh
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast
export TRIBUTARY_BIN="$CARGO_TARGET_DIR/debug/tributary"
"$venv/bin/python" -m pytest tests/clients -v --timeout 900 -p no:cacheprovider
