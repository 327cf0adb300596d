#!/usr/bin/env bash
# Benchmarks (not tests): builds the release binary into a kept target dir, installs the peers
# (DuckDB, DataFusion's Python package, tpchgen-cli) in a venv, generates the data once into
# bench/data, runs each benchmark and writes bench/results/<name>.json.
#   bench/run.sh [tpch|tpch-s3|latency|egress|sql-scan|kafka-scan|materialized-view|broadcast-join|skew-join|seed-query ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")"
export TRIBUTARY_RELEASE_TARGET="${TRIBUTARY_RELEASE_TARGET:-$HOME/.cache/tributary/target-release}"
venv="${TRIBUTARY_BENCH_VENV:-$HOME/.cache/tributary/bench-venv}"
(cd .. && CARGO_TARGET_DIR="$TRIBUTARY_RELEASE_TARGET" cargo build --release --bin tributary \
  && CARGO_TARGET_DIR="$TRIBUTARY_RELEASE_TARGET" cargo build --release --examples)
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r requirements.txt
export PATH="$venv/bin:$PATH"
benchmarks=("$@")
[ ${#benchmarks[@]} -gt 0 ] || benchmarks=(latency tpch tpch-s3 egress sql-scan kafka-scan materialized-view broadcast-join skew-join seed-query)
for b in "${benchmarks[@]}"; do
  case "$b" in
    tpch) "$venv/bin/python" tpch_sf1.py ;;
    tpch-s3) "$venv/bin/python" tpch_s3.py ;;
    latency) "$venv/bin/python" latency.py ;;
    egress) "$venv/bin/python" egress.py ;;
    sql-scan) bash ../scripts/start-databases.sh && "$venv/bin/python" sql_scan.py ;;
    kafka-scan) "$venv/bin/python" kafka_scan.py ;;
    materialized-view) bash ../scripts/start-databases.sh && "$venv/bin/python" materialized_view.py ;;
    broadcast-join) "$venv/bin/python" broadcast_join.py ;;
    skew-join) "$venv/bin/python" skew_join.py ;;
    seed-query) bash ../scripts/start-databases.sh && "$venv/bin/python" seed_query.py ;;
    *) echo "unknown benchmark '$b' (tpch, tpch-s3, latency, egress, sql-scan, kafka-scan, materialized-view, broadcast-join, skew-join, seed-query)"; exit 2 ;;
  esac
done
