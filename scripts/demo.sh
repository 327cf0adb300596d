#!/usr/bin/env bash
# The main job on a fresh machine: build Tributary, make sure MariaDB runs (installing it from
# Debian's packages where absent), start `tributary standalone` (a scheduler and two executors
# in one process) on the repository's etc/, and answer the seed's federated query over Flight
# SQL with the `tributary sql` client:
#   products: the seed's verbatim CREATE TABLE mysql.productsdb.products, filled from TPC-H parts;
#   orders:   TPC-H order lines shifted into 2019-2025, written as Parquet files partitioned by
#             year/month under data/lake/orders/, and declared with the seed's verbatim CREATE TABLE
#             hive.default.orders (a local location instead of s3a://your-bucket/orders/; the
#             embedded hive catalog keeps its file metastore in data/hive/).
# Pass a query to run it instead. Stops the server afterwards (KEEP=1 leaves it running).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)"; exit 1; }
cargo build --bin tributary
bash scripts/start-databases.sh
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
echo "tributary standalone is serving Flight SQL on grpc://127.0.0.1:50051 (log: $log)"
sql() { echo "tributary> $1"; "$bin" sql -e "$1"; }
if [ $# -gt 0 ]; then sql "$1"; exit; fi

sql "CREATE SCHEMA IF NOT EXISTS mysql.productsdb"
sql "DROP TABLE IF EXISTS mysql.productsdb.products"
sql "CREATE TABLE mysql.productsdb.products (
      product_id BIGINT,
      product_name VARCHAR,
      price DECIMAL(10,2),
      category VARCHAR
  )"
sql "INSERT INTO mysql.productsdb.products
     SELECT p_partkey, p_name, CAST(p_retailprice AS DECIMAL(10,2)), p_type FROM tpch.tiny.part"
# Order files as a data lake holds them: Parquet in year=/month= directories. Written here by
# Tributary itself (an external table over the directory, then dropped: the files stay).
orders="file://$PWD/data/lake/orders/"
rm -rf data/lake/orders
sql "DROP TABLE IF EXISTS hive.default.orders"
sql "DROP TABLE IF EXISTS hive.default.orders_export"
sql "CREATE TABLE hive.default.orders_export
     WITH (format = 'PARQUET', external_location = '$orders', partitioned_by = ARRAY['year', 'month'])
     AS SELECT l_orderkey * 10 + l_linenumber AS order_id, l_partkey AS product_id, o_custkey AS customer_id,
               CAST(l_quantity AS INT) AS quantity, o_orderdate + INTERVAL '27' YEAR + INTERVAL '1' MONTH AS order_date,
               CAST(EXTRACT(YEAR FROM o_orderdate + INTERVAL '27' YEAR + INTERVAL '1' MONTH) AS INT) AS year,
               CAST(EXTRACT(MONTH FROM o_orderdate + INTERVAL '27' YEAR + INTERVAL '1' MONTH) AS INT) AS month
        FROM tpch.tiny.lineitem JOIN tpch.tiny.orders ON l_orderkey = o_orderkey"
sql "DROP TABLE hive.default.orders_export"
# The seed's statement, verbatim but for the location (s3a://your-bucket/orders/ with an S3 catalog).
sql "CREATE TABLE hive.default.orders (
      order_id BIGINT,
      product_id BIGINT,
      customer_id BIGINT,
      quantity INT,
      order_date DATE
  )
  WITH (
      format = 'PARQUET',
      external_location = '$orders'
  )"
sql "SELECT 
    o.order_id,
    o.customer_id,
    o.order_date,
    p.product_name,
    p.category,
    o.quantity,
    (o.quantity * p.price) AS total_value
FROM hive.default.orders o
JOIN mysql.productsdb.products p
    ON o.product_id = p.product_id
WHERE o.order_date >= DATE '2025-01-01'
ORDER BY o.order_date DESC
LIMIT 20"
# Partition pruning: only the year=2025/month=9 directory is read (see the DataSourceExec's files).
sql "SELECT count(*) FROM hive.default.orders WHERE order_date >= DATE '2025-09-01'"
sql "EXPLAIN SELECT * FROM hive.default.orders WHERE order_date >= DATE '2025-09-01'"
sql "EXPLAIN SELECT product_name, category, price FROM mysql.productsdb.products WHERE product_id = 42"
if [ -n "${KEEP:-}" ]; then echo "left running (pid $pid)"; fi
