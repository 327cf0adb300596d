#!/usr/bin/env bash
# The main job on a fresh machine: build Tributary, start `tributary standalone` (a scheduler
# and two executors in one process) on the repository's etc/, and answer a query over Flight SQL
# with the `tributary sql` client. Stops the server afterwards (set KEEP=1 to leave it running).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)"; exit 1; }
cargo build --bin tributary
bin="$CARGO_TARGET_DIR/debug/tributary"
log="$(mktemp -t tributary-standalone.XXXXXX.log)"
"$bin" standalone --etc etc >"$log" 2>&1 &
pid=$!
trap '[ -z "${KEEP:-}" ] && kill $pid 2>/dev/null; true' EXIT
for _ in $(seq 1 100); do
  if "$bin" sql -e "SELECT 1" >/dev/null 2>&1; then break; fi
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.3
done
query="${1:-SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
FROM tpch.tiny.customer, tpch.tiny.orders, tpch.tiny.lineitem
WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
  AND o_orderdate < DATE '1995-03-15' AND l_shipdate > DATE '1995-03-15'
GROUP BY l_orderkey, o_orderdate, o_shippriority
ORDER BY revenue DESC, o_orderdate
LIMIT 10}"
echo "tributary standalone is serving Flight SQL on grpc://127.0.0.1:50051 (log: $log)"
echo "$query"
"$bin" sql -e "$query"
if [ -n "${KEEP:-}" ]; then echo "left running (pid $pid)"; fi
