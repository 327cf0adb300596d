"""Views and materialized views on a multi-process cluster with real services: views stored in
the Hive file metastore on S3 (SeaweedFS) in Trino's format, a federated view, SHOW/DROP and
listings; the seed's join (orders on S3 x products in MariaDB) as a materialized view on
Delta: created, queried, refreshed after new order files (incrementally) and after a price
change (fully), answers equal to the query run directly; a Kafka-fed aggregate view (Tansu)
refreshed incrementally three times while messages keep arriving, each refresh reading only
the new offsets; a refresh killed half-way; and the seed's join with an extra filter answered
from the view while it is fresh."""
import base64
import datetime
import io
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest

from conftest import Background, connect, query, running
from kafka import KafkaBroker
from s3 import S3Server

LAKE, META = "mvlake", "mvmeta"
MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")

SEED_JOIN = """SELECT o.order_id, o.order_date, o.customer_id, p.product_name, p.category,
       o.quantity, (o.quantity * p.price) AS total_value
FROM hive.default.orders o
JOIN mysql.productsdb.products p ON o.product_id = p.product_id"""


def orders(first_id: int, month: datetime.date, n: int) -> pa.Table:
    rng = random.Random(first_id)
    ids = list(range(first_id, first_id + n))
    return pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "product_id": pa.array([rng.randint(1, 50) for _ in ids], pa.int64()),
        "customer_id": pa.array([rng.randint(1, 500) for _ in ids], pa.int64()),
        "quantity": pa.array([rng.randint(1, 20) for _ in ids], pa.int32()),
        "order_date": pa.array([month + datetime.timedelta(days=rng.randint(0, 27)) for _ in ids],
                               pa.date32()),
    })


def parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def put_month(s3, table: pa.Table, month: datetime.date):
    s3.put(LAKE, f"orders/year={month.year}/month={month.month}/part-{table['order_id'][0]}.parquet",
           parquet(table))


@pytest.fixture(scope="module")
def services():
    s3 = S3Server()
    broker = KafkaBroker()
    try:
        for bucket in (LAKE, META):
            s3.client.create_bucket(Bucket=bucket)
        broker.create_topic("orders", 3)
        yield s3, broker
    finally:
        broker.stop()
        s3.stop()


@pytest.fixture(scope="module")
def views_cluster(request, services):
    s3, broker = services
    db = pymysql.connect(**MYSQL, autocommit=True)
    with db.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS productsdb")
        cur.execute("CREATE DATABASE productsdb")
    db.close()
    work = Path(tempfile.mkdtemp(prefix="tributary-views-"))
    etc = work / "etc"
    (etc / "catalog").mkdir(parents=True)
    (etc / "kafka").mkdir()
    (etc / "catalog" / "tpch.properties").write_text(
        (Path(__file__).resolve().parents[2] / "etc" / "catalog" / "tpch.properties").read_text())
    (etc / "catalog" / "hive.properties").write_text(s3.catalog(META))
    (etc / "catalog" / "mysql.properties").write_text(
        "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/productsdb\n"
        "connection-user=root\nconnection-password=\n")
    (etc / "catalog" / "kafka.properties").write_text(
        f"connector.name=kafka\nkafka.nodes={broker.bootstrap}\nkafka.default-schema=default\n"
        "kafka.table-names=orders\n")
    (etc / "kafka" / "orders.json").write_text(
        (Path(__file__).resolve().parents[2] / "etc" / "kafka" / "orders.json").read_text())
    yield from running(request, etc, work)


@pytest.fixture(scope="module")
def seed(views_cluster, services):
    """The seed's orders on S3 (three months) and its products in MariaDB."""
    s3, _ = services
    conn = connect(views_cluster.uri)
    try:
        for i, month in enumerate([datetime.date(2025, 7, 1), datetime.date(2025, 8, 1),
                                   datetime.date(2025, 9, 1)]):
            put_month(s3, orders(1 + 1000 * i, month, 400), month)
        # The seed's statement, verbatim but for the bucket.
        query(conn, """CREATE TABLE hive.default.orders (
                           order_id BIGINT, product_id BIGINT, customer_id BIGINT,
                           quantity INT, order_date DATE)
                       WITH (format = 'PARQUET', external_location = 's3a://mvlake/orders/')""")
        query(conn, "CREATE TABLE mysql.productsdb.products (product_id BIGINT, product_name VARCHAR, "
                    "price DECIMAL(10,2), category VARCHAR)")
        query(conn, "INSERT INTO mysql.productsdb.products SELECT p_partkey, p_name, "
                    "CAST(p_retailprice AS DECIMAL(10,2)), p_type FROM tpch.tiny.part WHERE p_partkey <= 50")
        query(conn, "CREATE SCHEMA hive.analytics")
    finally:
        conn.close()


@pytest.fixture
def vconn(views_cluster):
    c = connect(views_cluster.uri)
    yield c
    c.close()


def plan_text(conn, sql) -> str:
    return "\n".join(str(r[1]) for r in query(conn, "EXPLAIN " + sql))


def mv_row(conn, name):
    rows = query(conn, "SELECT freshness, last_refresh_type, rows, last_refresh_read, source_versions, "
                       "stale_sources, last_fresh_time FROM system.metadata.materialized_views "
                       f"WHERE name = '{name}'")
    assert len(rows) == 1, rows
    return dict(zip(["freshness", "type", "rows", "read", "versions", "stale", "fresh_time"], rows[0]))


def sorted_rows(conn, sql):
    return sorted(tuple(r) for r in query(conn, sql))


# --- views ----------------------------------------------------------------------------------

def test_views_stored_in_the_metastore_listed_and_dropped(vconn, seed, services, views_cluster):
    s3, _ = services
    query(vconn, "USE hive.default")
    # Unqualified names resolve in the view's own catalog and schema, whoever reads it.
    query(vconn, """CREATE VIEW hive.analytics.big_orders COMMENT 'orders over 10 items' AS
                    SELECT o.order_id, o.quantity, p.product_name
                    FROM orders o JOIN mysql.productsdb.products p ON o.product_id = p.product_id
                    WHERE o.quantity > 10""")
    other = connect(views_cluster.uri)
    try:
        direct = sorted_rows(other, "SELECT o.order_id, o.quantity, p.product_name FROM hive.default.orders o "
                                    "JOIN mysql.productsdb.products p ON o.product_id = p.product_id "
                                    "WHERE o.quantity > 10")
        assert len(direct) > 100
        assert sorted_rows(other, "SELECT * FROM hive.analytics.big_orders") == direct
        # Filters, aggregates and joins over a view; a view over a view.
        assert query(other, "SELECT count(*) FROM hive.analytics.big_orders WHERE quantity = 20") == [
            (sum(1 for r in direct if r[1] == 20),)]
        query(other, "CREATE VIEW hive.analytics.huge AS SELECT order_id FROM hive.analytics.big_orders "
                     "WHERE quantity >= 19")
        assert query(other, "SELECT count(*) FROM hive.analytics.huge") == [
            (sum(1 for r in direct if r[1] >= 19),)]
    finally:
        other.close()
    # Listed as views: SHOW TABLES, information_schema, Flight SQL GetTables.
    assert ("big_orders",) in query(vconn, "SHOW TABLES FROM hive.analytics")
    assert query(vconn, "SELECT table_type FROM hive.information_schema.tables "
                        "WHERE table_schema = 'analytics' AND table_name = 'big_orders'") == [("VIEW",)]
    objects = vconn.adbc_get_objects(catalog_filter="hive", db_schema_filter="analytics",
                                     table_types_filter=["VIEW"]).read_all().to_pylist()
    names = [t["table_name"] for s in objects[0]["catalog_db_schemas"] for t in s["db_schema_tables"]]
    assert "big_orders" in names and "huge" in names
    ddl = query(vconn, "SHOW CREATE VIEW hive.analytics.big_orders")[0][0]
    assert ddl.startswith("CREATE VIEW hive.analytics.big_orders COMMENT 'orders over 10 items' SECURITY DEFINER AS")
    assert "WHERE o.quantity > 10" in ddl
    # Trino's file-metastore layout: a VIRTUAL_VIEW whose text is the definition in base64.
    meta = json.loads(s3.client.get_object(Bucket=META, Key="metastore/analytics/big_orders/.trinoTable")["Body"].read())
    assert meta["tableType"] == "VIRTUAL_VIEW"
    encoded = meta["viewOriginalText"].removeprefix("/* Presto View: ").removesuffix(" */")
    definition = json.loads(base64.b64decode(encoded))
    assert definition["catalog"] == "hive" and definition["schema"] == "default"
    assert [c["name"] for c in definition["columns"]] == ["order_id", "quantity", "product_name"]
    # Replacing, refusing, dropping.
    with pytest.raises(adbc_driver_manager.Error, match="already exists"):
        query(vconn, "CREATE VIEW hive.analytics.big_orders AS SELECT 1 AS x")
    query(vconn, "CREATE OR REPLACE VIEW hive.analytics.huge SECURITY INVOKER AS SELECT 42 AS answer")
    assert query(vconn, "SELECT * FROM hive.analytics.huge") == [(42,)]
    with pytest.raises(adbc_driver_manager.Error, match="is a table, not a view"):
        query(vconn, "DROP VIEW hive.default.orders")
    query(vconn, "DROP VIEW hive.analytics.huge")
    with pytest.raises(adbc_driver_manager.Error, match="does not exist"):
        query(vconn, "SELECT * FROM hive.analytics.huge")
    with pytest.raises(adbc_driver_manager.Error, match="view 'hive.analytics.huge' does not exist"):
        query(vconn, "DROP VIEW hive.analytics.huge")
    query(vconn, "DROP VIEW IF EXISTS hive.analytics.huge")
    # Views in the memory catalog, over any catalog.
    query(vconn, "CREATE VIEW memory.default.nations AS SELECT n_name FROM tpch.tiny.nation WHERE n_regionkey = 1")
    assert len(query(vconn, "SELECT * FROM memory.default.nations")) == 5


# --- the seed's join as a materialized view on Delta ----------------------------------------

def test_seed_join_materialized_on_delta_refreshed_and_rewritten(vconn, seed, services, views_cluster):
    s3, _ = services
    # The same queries straight from the sources, never rewritten to read the view.
    direct = connect(views_cluster.uri)
    query(direct, "SET SESSION materialized_view_rewrite_enabled = false")
    query(vconn, f"CREATE MATERIALIZED VIEW hive.analytics.order_values "
                 f"WITH (format = 'PARQUET', partitioned_by = ARRAY['category']) AS {SEED_JOIN}")
    assert mv_row(vconn, "order_values")["freshness"] == "STALE"
    # Before its first refresh the view reads its sources.
    assert "order_values$storage" not in plan_text(vconn, "SELECT * FROM hive.analytics.order_values")
    assert sorted_rows(vconn, "SELECT * FROM hive.analytics.order_values") == sorted_rows(direct, SEED_JOIN)

    query(vconn, "REFRESH MATERIALIZED VIEW hive.analytics.order_values")
    row = mv_row(vconn, "order_values")
    assert row["freshness"] == "FRESH" and row["type"] == "FULL" and row["rows"] == 1200, row
    assert any("/_delta_log/" in k for k in s3.keys(META, "metastore/analytics/order_values/"))
    assert "order_values$storage" in plan_text(vconn, "SELECT * FROM hive.analytics.order_values")
    assert sorted_rows(vconn, "SELECT * FROM hive.analytics.order_values") == sorted_rows(direct, SEED_JOIN)

    # The seed's join with an extra filter is answered from the fresh view…
    filtered = SEED_JOIN + " WHERE o.order_date >= DATE '2025-09-01'"
    plan = plan_text(vconn, filtered)
    assert "order_values$storage" in plan and "TableScan: hive.default.orders" not in plan, plan
    from_view = sorted_rows(vconn, filtered)
    assert "order_values$storage" not in plan_text(direct, filtered)
    assert sorted_rows(direct, filtered) == from_view and len(from_view) == 400

    # New orders arrive on S3: stale; the refresh reads only the new file and appends.
    october = datetime.date(2025, 10, 1)
    put_month(s3, orders(5001, october, 300), october)
    row = mv_row(vconn, "order_values")
    assert row["freshness"] == "STALE" and row["stale"] == "hive.default.orders", row
    # …and from the sources while stale.
    assert "order_values$storage" not in plan_text(vconn, filtered)
    # Reading the stale view: its storage, flagged, until past materialized_view_max_staleness.
    assert "order_values$storage(stale)" in plan_text(vconn, "SELECT * FROM hive.analytics.order_values")
    query(vconn, "SET SESSION materialized_view_max_staleness = '1s'")
    time.sleep(1.2)
    assert "$storage" not in plan_text(vconn, "SELECT * FROM hive.analytics.order_values")
    query(vconn, "RESET SESSION materialized_view_max_staleness")
    query(vconn, "REFRESH MATERIALIZED VIEW hive.analytics.order_values")
    row = mv_row(vconn, "order_values")
    assert row["freshness"] == "FRESH" and row["type"] == "INCREMENTAL" and row["rows"] == 1500, row
    assert sorted_rows(vconn, "SELECT * FROM hive.analytics.order_values") == sorted_rows(direct, SEED_JOIN)

    # A price changes in MariaDB: the MySQL side cannot be read incrementally: full refresh.
    db = pymysql.connect(**MYSQL, autocommit=True)
    with db.cursor() as cur:
        cur.execute("UPDATE productsdb.products SET price = price + 1 WHERE product_id = 7")
    db.close()
    row = mv_row(vconn, "order_values")
    assert row["freshness"] == "STALE" and row["stale"] == "mysql.productsdb.products", row
    query(vconn, "REFRESH MATERIALIZED VIEW hive.analytics.order_values")
    row = mv_row(vconn, "order_values")
    assert row["freshness"] == "FRESH" and row["type"] == "FULL" and row["rows"] == 1500, row
    assert sorted_rows(vconn, "SELECT * FROM hive.analytics.order_values") == sorted_rows(direct, SEED_JOIN)
    assert "order_values$storage" in plan_text(vconn, filtered)
    assert sorted_rows(vconn, filtered) == sorted_rows(direct, filtered)

    ddl = query(vconn, "SHOW CREATE MATERIALIZED VIEW hive.analytics.order_values")[0][0]
    assert "partitioned_by = ARRAY['category']" in ddl and "JOIN mysql.productsdb.products p" in ddl
    # A refresh with nothing new is a no-op.
    query(vconn, "REFRESH MATERIALIZED VIEW hive.analytics.order_values")
    assert mv_row(vconn, "order_values")["fresh_time"] == row["fresh_time"]
    direct.close()


# --- a Kafka-fed aggregate, refreshed incrementally -------------------------------------------

def offsets_of(versions: str, source: str) -> dict:
    """`kafka.default.orders: offsets 0:12,1:9,2:4; …` → {0: 12, 1: 9, 2: 4}."""
    for part in versions.split("; "):
        key, _, value = part.partition(": ")
        if key == source:
            return {int(p): int(o) for p, o in (kv.split(":") for kv in value.removeprefix("offsets ").split(","))}
    raise AssertionError(versions)


def test_kafka_aggregate_refreshed_incrementally_while_messages_arrive(vconn, seed, services):
    _, broker = services
    rng = random.Random(3)
    produced = [0]
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            batch = [(json.dumps({"order_id": produced[0] + i, "customer_id": 1,
                                  "product_id": rng.randint(1, 8), "quantity": rng.randint(1, 5),
                                  "order_date": "2025-09-01"}).encode(), None, None, None, i % 3)
                     for i in range(5)]
            broker.produce("orders", batch)
            produced[0] += len(batch)

    broker.produce("orders", [(json.dumps({"order_id": -i, "customer_id": 1, "product_id": 1 + i % 8,
                                           "quantity": 1, "order_date": "2025-09-01"}).encode(),
                               None, None, None, i % 3) for i in range(30)])
    query(vconn, """CREATE MATERIALIZED VIEW hive.analytics.product_totals AS
                    SELECT product_id, count(*) AS orders, sum(quantity) AS quantity
                    FROM kafka.default.orders GROUP BY product_id""")
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        previous = None
        for refresh in range(4):
            time.sleep(1.5)
            query(vconn, "REFRESH MATERIALIZED VIEW hive.analytics.product_totals")
            row = mv_row(vconn, "product_totals")
            ends = offsets_of(row["versions"], "kafka.default.orders")
            read = int(row["read"].split(": ")[1])
            if previous is None:
                assert row["type"] == "FULL" and read == sum(ends.values()), row
            else:
                # Only the offsets after the last refresh were read.
                assert row["type"] == "INCREMENTAL", row
                assert read == sum(ends[p] - previous.get(p, 0) for p in ends) > 0, (row, previous)
            # Equal to a full recomputation over the same offsets.
            bounds = " OR ".join(f"(_partition_id = {p} AND _partition_offset < {o})" for p, o in ends.items())
            expected = sorted_rows(vconn, "SELECT product_id, count(*), sum(quantity) FROM kafka.default.orders "
                                          f"WHERE {bounds} GROUP BY product_id")
            assert sorted_rows(vconn, "SELECT * FROM hive.analytics.product_totals") == expected
            previous = ends
    finally:
        stop.set()
        producer.join(30)


# --- a refresh killed half-way ----------------------------------------------------------------

def test_refresh_killed_half_way_leaves_the_view_as_it_was(vconn, seed, services, views_cluster):
    s3, _ = services
    s3.put(LAKE, "keys/a.parquet", parquet(pa.table({"k": pa.array([1, 2], pa.int32())})))
    query(vconn, "CREATE TABLE hive.default.keys (k INT) WITH (external_location = 's3://mvlake/keys/')")
    query(vconn, """CREATE MATERIALIZED VIEW hive.analytics.slow AS
                    SELECT k.k, count(*) AS n FROM hive.default.keys k
                    JOIN tpch.sf1.lineitem l ON l.l_linenumber = k.k GROUP BY k.k""")
    query(vconn, "REFRESH MATERIALIZED VIEW hive.analytics.slow")
    for attempt in range(4):
        before = sorted_rows(vconn, "SELECT * FROM hive.analytics.slow")
        state = mv_row(vconn, "slow")
        assert state["freshness"] == "FRESH" and len(before) == 2 + attempt
        log_before = sorted(k for k in s3.keys(META, "metastore/analytics/slow/_delta_log/"))

        key = 3 + attempt
        s3.put(LAKE, f"keys/b{attempt}.parquet", parquet(pa.table({"k": pa.array([key], pa.int32())})))
        refresh = Background(views_cluster.uri, "REFRESH MATERIALIZED VIEW hive.analytics.slow")
        query_id = None
        deadline = time.time() + 60
        while query_id is None and time.time() < deadline:
            # RUNNING: its job computes the new rows; FINISHING: they are being written.
            rows = query(vconn, "SELECT query_id FROM system.runtime.queries "
                                "WHERE state IN ('RUNNING', 'FINISHING') "
                                "AND query = 'REFRESH MATERIALIZED VIEW hive.analytics.slow'")
            query_id = rows[0][0] if rows else None
            time.sleep(0.05)
        assert query_id, "the refresh never ran"
        try:
            query(vconn, f"CALL system.runtime.kill_query(query_id => '{query_id}', "
                         "message => 'stop the refresh')")
            break
        except adbc_driver_manager.Error as e:
            # Too late: the refresh had begun its commit (the kill is refused and the refresh
            # reported as what it is, done) or had ended. Then once more, to kill one in time.
            assert "is committing its write and can no longer be killed" in str(e) or \
                f"query '{query_id}' is not running" in str(e), e
            refresh.join(120)
            assert refresh.error is None, refresh.error
            assert mv_row(vconn, "slow")["freshness"] == "FRESH"
            assert len(sorted_rows(vconn, "SELECT * FROM hive.analytics.slow")) == 3 + attempt
    else:
        pytest.fail("each of 4 kills came too late")
    refresh.join(120)
    assert refresh.error is not None and "stop the refresh" in str(refresh.error)
    # The previous rows and state are still what readers see; nothing was committed.
    after = mv_row(vconn, "slow")
    assert after["fresh_time"] == state["fresh_time"] and after["versions"] == state["versions"]
    assert after["freshness"] == "STALE"
    assert sorted(k for k in s3.keys(META, "metastore/analytics/slow/_delta_log/")) == log_before
    query(vconn, "SET SESSION materialized_view_max_staleness = ''")
    assert sorted_rows(vconn, "SELECT * FROM hive.analytics.slow") == before
    query(vconn, "DROP MATERIALIZED VIEW hive.analytics.slow")
    assert not s3.keys(META, "metastore/analytics/slow/")
    with pytest.raises(adbc_driver_manager.Error, match="does not exist"):
        query(vconn, "SELECT * FROM hive.analytics.slow")
