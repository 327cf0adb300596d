"""The Hive and Delta Lake connectors against a real S3 server (SeaweedFS) through a
multi-process cluster: the seed's orders table on S3 (verbatim CREATE TABLE) joined with MySQL
products, partition pruning shown by EXPLAIN ANALYZE's read statistics, partitioned
CTAS/INSERT read back equal, atomic writes (a killed write leaves the table as it was),
CSV/JSON tables, byte-range splits, the seed's join materialised into a Delta table on S3 (its
log checked independently), and bad inputs each with a clear error."""
import datetime
import io
import json
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import adbc_driver_manager
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pymysql
import pytest

from conftest import BIN, REPO, Cluster, connect, newest_finished, query, running
from s3 import SECRET_KEY, S3Server
from seed import question_1
from test_adbc import encode_statement_query, flight_read

LAKE = "lake"            # data bucket
META = "hivemeta"        # metastore bucket
MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")

SEED_CREATE_ORDERS = """CREATE TABLE hive.default.orders (
      order_id BIGINT,
      product_id BIGINT,
      customer_id BIGINT,
      quantity INT,
      order_date DATE
  )
  WITH (
      format = 'PARQUET',
      external_location = 's3a://lake/orders/'
  )"""

SEED_QUERY = question_1()


def orders_table() -> pa.Table:
    """Orders from July 2024 to September 2025, a few hundred per month."""
    rng = random.Random(7)
    rows = []
    order_id = 1
    for year, month in [(2024, m) for m in range(7, 13)] + [(2025, m) for m in range(1, 10)]:
        for _ in range(300):
            day = rng.randint(1, 28)
            rows.append((order_id, rng.randint(1, 200), rng.randint(1, 1000), rng.randint(1, 50),
                         datetime.date(year, month, day)))
            order_id += 1
    cols = list(zip(*rows))
    return pa.table({
        "order_id": pa.array(cols[0], pa.int64()),
        "product_id": pa.array(cols[1], pa.int64()),
        "customer_id": pa.array(cols[2], pa.int64()),
        "quantity": pa.array(cols[3], pa.int32()),
        "order_date": pa.array(cols[4], pa.date32()),
    })


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    try:
        for bucket in (LAKE, META):
            server.client.create_bucket(Bucket=bucket)
        yield server
    finally:
        server.stop()


def hive_etc(s3: S3Server, work: Path) -> Path:
    etc = work / "etc"
    (etc / "catalog").mkdir(parents=True)
    shutil.copy(REPO / "etc" / "catalog" / "tpch.properties", etc / "catalog")
    (etc / "catalog" / "mysql.properties").write_text(
        "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/productsdb\n"
        "connection-user=root\nconnection-password=\n")
    catalogs = {
        "hive": s3.catalog(META, "hive.non-managed-table-writes-enabled=true\n"
                                 "hive.target-max-file-size=1MB\n"),
        "hive_splits": s3.catalog(META, "hive.max-split-size=1MB\n"),
        "hive_badsecret": s3.catalog(META, secret="not-the-secret-" + "x" * 8),
        "hive_nobucket": s3.catalog("no-such-bucket"),
        # The same metastore read through Trino's file system cache.
        "hive_cached": s3.catalog(META, "fs.cache.enabled=true\n"
                                        f"fs.cache.directories={work / 'fs-cache'}\n"
                                        "fs.cache.max-sizes=256MB\nfs.cache.page-size=64kB\n"),
        # Trino's newer s3.* names.
        "delta": s3.catalog(META, connector="delta_lake", prefix="delta-metastore")
                 .replace("hive.s3.", "s3.") + "fs.native-s3.enabled=true\n",
    }
    for name, text in catalogs.items():
        (etc / "catalog" / f"{name}.properties").write_text(text)
    return etc


@pytest.fixture(scope="module")
def hive_cluster(request, s3):
    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS productsdb")
        cur.execute("CREATE DATABASE productsdb")
    conn.close()
    work = Path(tempfile.mkdtemp(prefix="tributary-hive-"))
    yield from running(request, hive_etc(s3, work), work)


@pytest.fixture
def hconn(hive_cluster):
    c = connect(hive_cluster.uri)
    yield c
    c.close()


def arrow(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def failure(conn, sql):
    with pytest.raises(adbc_driver_manager.Error) as err:
        query(conn, sql)
    return str(err.value)


def plan_text(conn, sql):
    return "\n".join(r[1] for r in query(conn, sql))


# --- the seed's Question 1 ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def seed_orders(hive_cluster, s3):
    """The seed's orders on S3, partitioned by year and month the way Hive writes them."""
    orders = orders_table()
    years, months = pc.year(orders["order_date"]), pc.month(orders["order_date"])
    for year, month in sorted(set(zip(years.to_pylist(), months.to_pylist()))):
        part = orders.filter(pc.and_(pc.equal(years, year), pc.equal(months, month)))
        s3.put(LAKE, f"orders/year={year}/month={month}/part-00000.parquet", parquet_bytes(part))
    # Hidden and marker files are not data.
    s3.put(LAKE, "orders/_SUCCESS", b"")
    s3.put(LAKE, "orders/year=2025/month=9/.part-00000.parquet.crc", b"crc")
    conn = connect(hive_cluster.uri)
    try:
        query(conn, "DROP TABLE IF EXISTS hive.default.orders")
        query(conn, SEED_CREATE_ORDERS)
        query(conn, "CREATE TABLE mysql.productsdb.products (product_id BIGINT, product_name VARCHAR, "
                    "price DECIMAL(10,2), category VARCHAR)")
        query(conn, "INSERT INTO mysql.productsdb.products SELECT p_partkey, p_name, "
                    "CAST(p_retailprice AS DECIMAL(10,2)), p_type FROM tpch.tiny.part WHERE p_partkey <= 200")
    finally:
        conn.close()
    return orders


def test_seed_orders_table_answers_the_seed_query(hconn, seed_orders):
    products = arrow(hconn, "SELECT * FROM mysql.productsdb.products")
    ref = duckdb.connect()
    ref.register("orders_t", seed_orders)
    ref.register("products_t", products)
    expected = ref.execute(question_1(orders="orders_t", products="products_t")
                           + ", o.order_id").fetchall()
    got = query(hconn, SEED_QUERY + ", o.order_id")
    assert len(got) == len(expected) == 9 * 300
    assert [tuple(r) for r in got] == [tuple(r) for r in expected]
    assert query(hconn, "SELECT count(*) FROM hive.default.orders") == [(seed_orders.num_rows,)]


def test_an_order_the_files_keep_apart_is_sent_without_a_merge(hive_cluster, hconn, seed_orders):
    """ORDER BY the date the monthly files hold apart (their footers' bounds): the scan's
    files are dealt into partitions by ranges of months, each partition is sorted, and the
    result is the partitions one after the other: an endpoint each, in order, no merge; the
    same answer as the merge gives. An order the files do not keep apart is merged."""
    sql = SEED_QUERY + ", o.order_id"
    info, tables = endpoint_tables(hive_cluster, sql)
    table = pa.concat_tables(tables)
    assert info.ordered and len(info.endpoints) > 1, info
    # (No row count when announced as the final stage started, streaming_results.)
    assert info.total_records in (-1, 9 * 300) and table.num_rows == 9 * 300
    rows = list(zip(table["order_date"].to_pylist(), table["order_id"].to_pylist()))
    assert rows == sorted(rows, key=lambda r: (-r[0].toordinal(), r[1]))
    # Each endpoint holds whole months, later ones first.
    client_months = []
    for endpoint_table in tables:
        months = sorted({(d.year, d.month) for d in endpoint_table["order_date"].to_pylist()}, reverse=True)
        client_months.extend(months)
    assert client_months == sorted(set(client_months), reverse=True), client_months
    analyzed = plan_text(hconn, "EXPLAIN ANALYZE " + sql)
    assert "one after the other" in analyzed and "merges" not in analyzed, analyzed
    scan = next(line for line in analyzed.splitlines() if "DataSourceExec" in line and "orders/" in line)
    groups = scan.split("file_groups={")[1].split("]]}")[0]
    for group in groups.split("], ["):
        months = [int(m) for m in re.findall(r"month=(\d+)/", group)]
        if not months:  # DataFusion shows the first groups and elides the rest ("...")
            continue
        assert months == list(range(max(months), min(months) - 1, -1)), scan

    # Ascending: the same partitions, the other way round.
    info, table = flight_read(hive_cluster, "SELECT order_date, order_id FROM hive.default.orders "
                                            "ORDER BY order_date, order_id")
    assert len(info.endpoints) > 1 and table.num_rows == seed_orders.num_rows
    rows = list(zip(table["order_date"].to_pylist(), table["order_id"].to_pylist()))
    assert rows == sorted(rows)

    # Customers are in every file: merged, one endpoint. A LIMIT is merged too.
    info, table = flight_read(hive_cluster, "SELECT customer_id, order_id FROM hive.default.orders "
                                            "ORDER BY customer_id, order_id")
    assert len(info.endpoints) == 1 and table.num_rows == seed_orders.num_rows
    rows = list(zip(table["customer_id"].to_pylist(), table["order_id"].to_pylist()))
    assert rows == sorted(rows)
    info, table = flight_read(hive_cluster, sql + " LIMIT 5 OFFSET 2")
    assert len(info.endpoints) == 1
    assert list(zip(table["order_date"].to_pylist(), table["order_id"].to_pylist())) == rows_of(
        query(hconn, sql))[2:7]


def test_an_ordered_join_sorts_its_probe_rows_before_the_join(hive_cluster, seed_orders):
    """ORDER BY columns of the join's probe side (the orders), the products broadcast: each
    task sorts the orders' narrow rows below the join, which keeps their order, instead of the
    wide joined rows; EXPLAIN ANALYZE shows the sort where the plan has it, with the probe rows
    it sorted. A join forced partitioned sorts after the join. The same ordered answer."""
    sql = SEED_QUERY + ", o.order_id"
    answers = {}
    for distribution in ["AUTOMATIC", "PARTITIONED"]:
        conn = connect(hive_cluster.uri)
        try:
            query(conn, f"SET SESSION join_distribution_type = '{distribution}'")
            table = arrow(conn, sql)
            analyzed = plan_text(conn, "EXPLAIN ANALYZE " + sql)
        finally:
            conn.close()
        rows = list(zip(table["order_date"].to_pylist(), table["order_id"].to_pylist()))
        assert rows == sorted(rows, key=lambda r: (-r[0].toordinal(), r[1])), distribution
        assert table.num_rows == 9 * 300
        answers[distribution] = table
        # The stage that joins: its sort, above the join in the plan.
        stage = next(s for s in re.split(r"\n(?=tasks: )", analyzed) if "HashJoinExec" in s)
        above, below = stage.split("HashJoinExec", 1)
        sort = next((line for line in above.splitlines() if "SortExec: expr=[order_date" in line), "")
        if distribution == "AUTOMATIC":
            assert "mode=CollectLeft" in below.splitlines()[0], stage
            assert "presorted_probe_rows=2.70 K" in sort, stage
        else:
            assert sort and "presorted_probe_rows" not in analyzed, stage
    assert answers["AUTOMATIC"].equals(answers["PARTITIONED"])


def endpoint_tables(cluster, sql):
    """(FlightInfo, each endpoint's rows) over raw pyarrow.flight."""
    client = flight.FlightClient(cluster.uri)
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("tester", "secret")])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    return info, [client.do_get(e.ticket, options).read_all() for e in info.endpoints]


def rows_of(rows):
    """(order_date, order_id) of the seed query's rows."""
    return [(r[2], r[0]) for r in rows]


def test_date_filter_reads_only_september_2025(hconn, seed_orders):
    sql = "SELECT * FROM hive.default.orders WHERE order_date >= DATE '2025-09-01'"
    rows = query(hconn, sql)
    assert len(rows) == 300 and all(r[4] >= datetime.date(2025, 9, 1) for r in rows)
    analyzed = plan_text(hconn, "EXPLAIN ANALYZE " + sql)
    scan = next(line for line in analyzed.splitlines() if "DataSourceExec" in line)
    files = scan.split("file_groups=")[1].split("]]}")[0]
    assert files.count(".parquet") == 1 and "year=2025/month=9/" in files, scan
    assert "files_opened=1," in scan and "bytes_scanned=" in scan, scan
    # The same with the partition keys named explicitly (Trino's way) and a closed range.
    rows = query(hconn, "SELECT count(*) FROM hive.default.orders "
                        "WHERE order_date BETWEEN DATE '2025-03-01' AND DATE '2025-04-30'")
    assert rows == [(600,)]
    analyzed = plan_text(hconn, "EXPLAIN ANALYZE SELECT count(*) FROM hive.default.orders "
                                "WHERE order_date BETWEEN DATE '2025-03-01' AND DATE '2025-04-30'")
    assert "files_opened=2," in analyzed


def cache_pages(hive_cluster) -> dict:
    """Page files of the file system cache, by path: each process's own directory."""
    root = hive_cluster.work / "fs-cache" / "hive_cached"
    return {p: p.stat().st_size for p in root.glob("*/*") if not p.name.endswith(".partial")}


def test_the_file_system_cache_keeps_s3_reads_and_sees_rewrites(hive_cluster, hconn, seed_orders, s3):
    # The seed's orders, read through the cached catalog: the same answer, pages kept on disk.
    sql = ("SELECT count(*), sum(quantity), sum(customer_id), min(order_date), max(order_date) "
           "FROM {}.default.orders")
    expected = query(hconn, sql.format("hive"))
    assert query(hconn, sql.format("hive_cached")) == expected
    deadline = time.time() + 30
    while not cache_pages(hive_cluster) and time.time() < deadline:
        time.sleep(0.1)
    pages = cache_pages(hive_cluster)
    owners = {p.parent.name for p in pages}
    assert pages and all(re.fullmatch(r".+\.\d+", o) for o in owners), owners
    assert all(size <= 64 * 1024 for size in pages.values())
    for _ in range(3):
        assert query(hconn, sql.format("hive_cached")) == expected
    # The executors answered from their pages: their metrics say so.
    served = {"cache": 0, "store": 0}
    for url in hive_cluster.executor_http:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
        for source in served:
            m = re.search(r'tributary_fs_cache_read_bytes_total\{catalog="hive_cached",source="%s"\} (\d+)' % source, text)
            served[source] += int(m.group(1)) if m else 0
    assert served["cache"] > 0 and served["store"] > 0, served
    assert query(hconn, "SELECT count(*) FROM hive_cached.default.orders WHERE order_date >= DATE '2025-09-01'") \
        == [(300,)]

    # A file rewritten in place (same name, other values) is read anew.
    table = orders_table().slice(0, 1000)
    s3.put(LAKE, "cached_rewrite/part-0.parquet", parquet_bytes(table))
    query(hconn, "DROP TABLE IF EXISTS hive.default.cached_rewrite")
    query(hconn, "CREATE TABLE hive.default.cached_rewrite (order_id BIGINT, product_id BIGINT, "
                 "customer_id BIGINT, quantity INT, order_date DATE) "
                 "WITH (format = 'PARQUET', external_location = 's3a://lake/cached_rewrite/')")
    total = "SELECT sum(order_id), sum(quantity) FROM hive_cached.default.cached_rewrite"
    assert query(hconn, total) == [(sum(range(1, 1001)), pc.sum(table["quantity"]).as_py())]
    shifted = table.set_column(0, "order_id", pc.add(table["order_id"], 1_000_000))
    shifted = shifted.set_column(3, "quantity", pc.subtract(pa.scalar(51, pa.int32()), table["quantity"]))
    rewritten = parquet_bytes(shifted)
    s3.put(LAKE, "cached_rewrite/part-0.parquet", rewritten)
    time.sleep(1.2)  # fs_cache::REVALIDATE_AFTER: how long a version is trusted unchecked
    assert query(hconn, total) == [(sum(range(1_000_001, 1_001_001)), pc.sum(shifted["quantity"]).as_py())]
    query(hconn, "DROP TABLE hive.default.cached_rewrite")


def test_partitions_listing_and_show_create(hconn, seed_orders):
    parts = query(hconn, 'SELECT * FROM hive.default."orders$partitions" ORDER BY year, CAST(month AS INT)')
    assert len(parts) == 15 and parts[0] == ("2024", "7") and parts[-1] == ("2025", "9")
    assert query(hconn, "SHOW PARTITIONS FROM hive.default.orders")[0] in parts
    ddl = query(hconn, "SHOW CREATE TABLE hive.default.orders")[0][0]
    assert "external_location = 's3a://lake/orders/'" in ddl and "format = 'PARQUET'" in ddl
    assert "order_date date" in ddl
    # Inferred at CREATE TABLE from the directories and checked against every file's statistics.
    assert "partition_date_column = 'order_date'" in ddl
    assert ("orders",) in query(hconn, "SHOW TABLES FROM hive.default")


def test_directories_that_do_not_follow_the_date_column_are_not_pruned_by_it(hconn, s3):
    """year=/month= directories of ingestion dates, rows of other dates: no date derivation
    is inferred, and the date filter still finds every row."""
    rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                     "d": pa.array([datetime.date(2025, 9, 5), datetime.date(2021, 1, 1), datetime.date(2025, 10, 1)])})
    s3.put(LAKE, "ingest/year=2020/month=1/f.parquet", parquet_bytes(rows.slice(0, 2)))
    s3.put(LAKE, "ingest/year=2020/month=2/f.parquet", parquet_bytes(rows.slice(2, 1)))
    query(hconn, "DROP TABLE IF EXISTS hive.default.ingest")
    query(hconn, "CREATE TABLE hive.default.ingest (id BIGINT, d DATE) WITH (external_location = 's3://lake/ingest/')")
    assert "partition_date_column" not in query(hconn, "SHOW CREATE TABLE hive.default.ingest")[0][0]
    assert query(hconn, "SELECT id FROM hive.default.ingest WHERE d >= DATE '2025-09-01' ORDER BY id") == [(1,), (3,)]


# --- writes --------------------------------------------------------------------------------------

def test_partitioned_ctas_and_insert_read_back_equal(hconn, s3):
    query(hconn, "CREATE SCHEMA IF NOT EXISTS hive.sales WITH (location = 's3://lake/sales/')")
    query(hconn, "DROP TABLE IF EXISTS hive.sales.lineitem")
    query(hconn, """CREATE TABLE hive.sales.lineitem
                    WITH (format = 'PARQUET', partitioned_by = ARRAY['l_returnflag', 'l_linestatus'])
                    AS SELECT l_orderkey, l_partkey, l_quantity, l_extendedprice, l_shipdate, l_comment,
                              l_returnflag, l_linestatus
                       FROM tpch.tiny.lineitem WHERE l_orderkey < 30000""")
    check = """SELECT l_returnflag, l_linestatus, count(*), sum(l_quantity), sum(l_extendedprice),
                      min(l_shipdate), max(l_comment) FROM {} GROUP BY 1, 2 ORDER BY 1, 2"""
    assert query(hconn, check.format("hive.sales.lineitem")) == query(
        hconn, check.format("(SELECT * FROM tpch.tiny.lineitem WHERE l_orderkey < 30000)"))
    keys = s3.keys(LAKE, "sales/lineitem/")
    assert keys and all("/l_returnflag=" in k and "/l_linestatus=" in k for k in keys), keys
    assert len({k.rsplit("/", 1)[0] for k in keys}) == 4
    query(hconn, """INSERT INTO hive.sales.lineitem
                    SELECT l_orderkey, l_partkey, l_quantity, l_extendedprice, l_shipdate, l_comment,
                           l_returnflag, l_linestatus FROM tpch.tiny.lineitem WHERE l_orderkey >= 30000""")
    assert query(hconn, check.format("hive.sales.lineitem")) == query(hconn, check.format("tpch.tiny.lineitem"))
    # Partition filters prune whole directories and are answered exactly.
    assert query(hconn, "SELECT count(*) FROM hive.sales.lineitem WHERE l_returnflag = 'R'") == query(
        hconn, "SELECT count(*) FROM tpch.tiny.lineitem WHERE l_returnflag = 'R'")
    analyzed = plan_text(hconn, "EXPLAIN ANALYZE SELECT count(*) FROM hive.sales.lineitem WHERE l_returnflag = 'R'")
    assert "l_returnflag=A" not in analyzed and "l_returnflag=N" not in analyzed
    parts = query(hconn, 'SELECT * FROM hive.sales."lineitem$partitions" ORDER BY 1, 2')
    assert parts == [("A", "F"), ("N", "F"), ("N", "O"), ("R", "F")]
    ddl = query(hconn, "SHOW CREATE TABLE hive.sales.lineitem")[0][0]
    assert "partitioned_by = ARRAY['l_returnflag', 'l_linestatus']" in ddl
    # A managed table's files go with it.
    query(hconn, "DROP TABLE hive.sales.lineitem")
    assert s3.keys(LAKE, "sales/lineitem/") == []
    assert "lineitem" not in [r[0] for r in query(hconn, "SHOW TABLES FROM hive.sales")]


def writer_nodes(conn, statement_start):
    """How many executors ran the tasks of the newest statement starting so."""
    query_id, = newest_finished(conn, f"query LIKE '{statement_start}%'", "query_id")
    return query(conn, f"SELECT count(DISTINCT node_id) FROM system.runtime.tasks WHERE query_id = '{query_id}'")[0][0]


def test_each_executor_writes_its_own_files(hconn, s3):
    """CTAS and INSERT into Hive and Delta tables run as one job whose tasks, on every executor,
    write their own files (Hive: <write id>_<task>-<attempt>_<n>.parquet); the scheduler commits
    what the tasks report, once."""
    check = "SELECT l_linestatus, count(*), sum(l_quantity), max(l_comment) FROM {} GROUP BY 1 ORDER BY 1"
    expected = query(hconn, check.format("tpch.tiny.lineitem"))
    query(hconn, "DROP TABLE IF EXISTS hive.default.dist")
    query(hconn, "CREATE TABLE hive.default.dist WITH (partitioned_by = ARRAY['l_linestatus']) AS "
                 "SELECT l_orderkey, l_partkey, l_quantity, l_comment, l_linestatus FROM tpch.tiny.lineitem")
    assert query(hconn, check.format("hive.default.dist")) == expected
    assert writer_nodes(hconn, "CREATE TABLE hive.default.dist") == 2
    names = [k.rsplit("/", 1)[1] for k in s3.keys(META, "metastore/default/dist/") if k.endswith(".parquet")]
    pattern = re.compile(r"\d{8}_\d{6}_[0-9a-f]{12}_(\d+)-[0-9a-f]{8}_\d+\.parquet")
    assert all(pattern.fullmatch(n) for n in names), names
    assert len({pattern.fullmatch(n).group(1) for n in names}) >= 2, names
    query(hconn, "INSERT INTO hive.default.dist SELECT l_orderkey, l_partkey, l_quantity, l_comment, "
                 "l_linestatus FROM tpch.tiny.lineitem")
    assert writer_nodes(hconn, "INSERT INTO hive.default.dist") == 2
    assert query(hconn, "SELECT count(*) FROM hive.default.dist") == [(2 * expected[0][1] + 2 * expected[1][1],)]
    meta = json.loads(s3.client.get_object(Bucket=META, Key="metastore/default/dist/.trinoTable")["Body"].read())
    assert not meta["parameters"].get("tributary.pending-writes")
    # Delta: every task's files in ONE new version.
    query(hconn, "DROP TABLE IF EXISTS delta.default.dist")
    query(hconn, "CREATE TABLE delta.default.dist WITH (location = 's3://lake/delta/dist/') AS "
                 "SELECT l_orderkey, l_partkey, l_quantity, l_comment, l_linestatus FROM tpch.tiny.lineitem")
    assert query(hconn, check.format("delta.default.dist")) == expected
    assert writer_nodes(hconn, "CREATE TABLE delta.default.dist") == 2
    log = delta_log(s3, "delta/dist/")
    assert len(log) == 2 and len([a for a in log[1] if "add" in a]) >= 2, log[1]
    query(hconn, "DROP TABLE hive.default.dist")
    query(hconn, "DROP TABLE delta.default.dist")


def ended(process, timeout=120):
    """A client process's exit code and what it printed on stderr, once it has ended."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        err = f"(still running after {timeout} s, killed) {err}"
    return process.returncode, err


def stuck_write_report(conn, cluster, statement):
    """The scheduler's view of a statement that never started running: its state and job,
    its tasks, the executors, and the processes' log tails."""
    rows = query(conn, "SELECT query_id, state, job_id, queued_time_ms, planning_time_ms, error_message "
                       f"FROM system.runtime.queries WHERE query = '{statement}'")
    report = [f"queries: {rows}"]
    for query_id, *_ in rows:
        report.append(f"tasks of {query_id}: " + str(query(
            conn, f"SELECT task_id, state, node_id FROM system.runtime.tasks WHERE query_id = '{query_id}'")))
    report.append(f"nodes: {query(conn, 'SELECT * FROM system.runtime.nodes')}")
    unfinished = "SELECT query_id, state, query FROM system.runtime.queries WHERE state <> 'FINISHED'"
    report.append(f"unfinished: {query(conn, unfinished)}")
    return "\n".join(report) + "\n" + cluster.logs(60)


@pytest.mark.parametrize("target", ["hive.default.killed_w", "delta.default.killed_w"])
def test_write_killed_half_way_leaves_the_table_as_it_was(hconn, hive_cluster, s3, target):
    """An INSERT killed while the executors' tasks write: nothing of it becomes visible (Hive:
    its files deleted, its id kept pending; Delta: no new version in the log)."""
    delta = target.startswith("delta")
    bucket, prefix = (LAKE, "delta/killed_w/") if delta else (META, "metastore/default/killed_w/")
    query(hconn, f"DROP TABLE IF EXISTS {target}")
    where = " WITH (location = 's3://lake/delta/killed_w/')" if delta else ""
    query(hconn, f"CREATE TABLE {target}{where} AS SELECT l_orderkey, l_comment FROM tpch.tiny.lineitem")
    rows_before = query(hconn, f"SELECT count(*), sum(l_orderkey) FROM {target}")
    files_before = {k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")}
    log_before = s3.keys(LAKE, prefix + "_delta_log/") if delta else None
    statement = f"INSERT INTO {target} SELECT l_orderkey, l_comment FROM tpch.sf1.lineitem"
    for attempt in range(4):
        # The write runs in a client process of its own, as from trino-cli; the kill's message
        # is what it prints on stderr.
        writer = subprocess.Popen([BIN, "sql", "--server", hive_cluster.uri, "--user", "tester",
                                   "--password", "secret", "-e", statement],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        query_id, deadline = None, time.time() + 120
        while query_id is None and time.time() < deadline and writer.poll() is None:
            rows = query(hconn, "SELECT query_id FROM system.runtime.queries WHERE state = 'RUNNING' "
                                f"AND query = '{statement}'")
            query_id = rows[0][0] if rows else None
            time.sleep(0.05)
        # (What the cluster knew of it says why, should a write wait that long again.)
        assert query_id, f"the INSERT never ran: {ended(writer)}\n{stuck_write_report(hconn, hive_cluster, statement)}"
        # Killed while its tasks write: Hive's files reach storage as they roll over (1MB
        # here); deltalake's writer keeps a task's files in memory until the task ends.
        deadline = time.time() + 120
        while not delta and time.time() < deadline and not [
                k for k in s3.keys(bucket, prefix) if k.endswith(".parquet") and k not in files_before]:
            time.sleep(0.1)
        try:
            query(hconn, f"CALL system.runtime.kill_query(query_id => '{query_id}', message => 'stop the write')")
            break
        except adbc_driver_manager.Error as e:
            # Too late (the write had begun its commit, or ended): it is committed, whole.
            assert "is committing its write and can no longer be killed" in str(e) or \
                f"query '{query_id}' is not running" in str(e), e
            code, error = ended(writer)
            assert code == 0, error
            rows_after = query(hconn, f"SELECT count(*) FROM {target}")[0][0]
            assert rows_after == rows_before[0][0] + 6_001_215
            rows_before = query(hconn, f"SELECT count(*), sum(l_orderkey) FROM {target}")
            files_before = {k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")}
            log_before = s3.keys(LAKE, prefix + "_delta_log/") if delta else None
    else:
        pytest.fail("each of 4 kills came too late")
    code, error = ended(writer)
    assert code != 0 and "stop the write" in error, (code, error)
    assert query(hconn, f"SELECT count(*), sum(l_orderkey) FROM {target}") == rows_before
    if delta:
        assert s3.keys(LAKE, prefix + "_delta_log/") == log_before
    else:
        meta = json.loads(s3.client.get_object(Bucket=META, Key=prefix + ".trinoTable")["Body"].read())
        assert meta["parameters"]["tributary.pending-writes"]
    query(hconn, f"DROP TABLE {target}")


def test_external_table_drop_keeps_data(hconn, s3):
    query(hconn, "DROP TABLE IF EXISTS hive.default.nation_ext")
    query(hconn, "CREATE TABLE hive.default.nation_ext WITH (external_location = 's3://lake/nation_ext/') "
                 "AS SELECT * FROM tpch.tiny.nation")
    assert query(hconn, "SELECT count(*) FROM hive.default.nation_ext") == [(25,)]
    query(hconn, "DROP TABLE hive.default.nation_ext")
    assert len(s3.keys(LAKE, "nation_ext/")) >= 1
    query(hconn, "CREATE TABLE hive.default.nation_ext (n_nationkey BIGINT, n_name VARCHAR, n_regionkey BIGINT, "
                 "n_comment VARCHAR) WITH (external_location = 's3://lake/nation_ext/')")
    assert query(hconn, "SELECT sum(n_nationkey), max(n_name) FROM hive.default.nation_ext") == [(300, "VIETNAM")]


def test_failed_statement_writes_nothing(hconn, s3):
    query(hconn, "DROP TABLE IF EXISTS hive.default.t_fail")
    query(hconn, "CREATE TABLE hive.default.t_fail AS SELECT n_nationkey, n_name FROM tpch.tiny.nation")
    before = s3.keys(META, "metastore/default/t_fail/")
    message = failure(hconn, "INSERT INTO hive.default.t_fail SELECT n_nationkey, "
                             "CAST(CAST(n_name AS INT) AS VARCHAR) FROM tpch.tiny.nation")
    assert "Cannot cast" in message or "cast" in message.lower(), message
    assert query(hconn, "SELECT count(*) FROM hive.default.t_fail") == [(25,)]
    assert s3.keys(META, "metastore/default/t_fail/") == before
    # A failing CTAS leaves no table behind.
    message = failure(hconn, "CREATE TABLE hive.default.t_fail2 AS SELECT CAST(n_name AS INT) AS x FROM tpch.tiny.nation")
    assert ("t_fail2",) not in query(hconn, "SHOW TABLES FROM hive.default")


def test_killed_write_leaves_table_as_it_was(request, hive_cluster, s3):
    """A scheduler killed while it writes: the write's files were never committed, so a
    restarted cluster reads the table as it was before."""
    work = Path(tempfile.mkdtemp(prefix="tributary-hive-kill-"))
    etc = hive_etc(s3, work)
    victim = Cluster(etc)
    request.addfinalizer(victim.stop)
    victim.wait_ready()
    conn = connect(victim.uri)
    query(conn, "DROP TABLE IF EXISTS hive.default.big")
    query(conn, "CREATE TABLE hive.default.big AS SELECT * FROM tpch.tiny.orders")
    conn.close()
    committed = set(s3.keys(META, "metastore/default/big/"))

    def write():
        # Its own connection: the server under it is killed mid-statement.
        wconn = connect(victim.uri)
        try:
            query(wconn, "INSERT INTO hive.default.big SELECT * FROM tpch.sf1.orders")
        except Exception:
            pass
        finally:
            try:
                wconn.close()
            except Exception:
                pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    deadline = time.time() + 600
    new_files = []
    while time.time() < deadline and not new_files:
        new_files = [k for k in s3.keys(META, "metastore/default/big/") if k not in committed and k.endswith(".parquet")]
        time.sleep(0.2)
    assert new_files, "the write never started:\n" + victim.logs()
    victim.procs[0][1].send_signal(signal.SIGKILL)
    victim.stop()
    writer.join(60)
    # Some files of the killed write are in storage, and none of them is visible.
    left = [k for k in s3.keys(META, "metastore/default/big/") if k not in committed and k.endswith(".parquet")]
    assert left
    hconn = connect(hive_cluster.uri)
    try:
        assert query(hconn, "SELECT count(*), sum(o_totalprice) FROM hive.default.big") == query(
            hconn, "SELECT count(*), sum(o_totalprice) FROM tpch.tiny.orders")
        meta = json.loads(s3.client.get_object(Bucket=META, Key="metastore/default/big/.trinoTable")["Body"].read())
        assert meta["parameters"]["tributary.pending-writes"]
        query(hconn, "DROP TABLE hive.default.big")
    finally:
        hconn.close()


# --- formats and splits --------------------------------------------------------------------------

def test_csv_and_json_tables(hconn, s3):
    s3.put(LAKE, "csv/people/part-0.csv", b"id,name,born\n1,Ada,1815-12-10\n2,Grace,1906-12-09\n")
    s3.put(LAKE, "csv/people/part-1.csv", b"id,name,born\n3,\"Hopper, Jr\",1950-01-01\n")
    query(hconn, "DROP TABLE IF EXISTS hive.default.people")
    query(hconn, "CREATE TABLE hive.default.people (id BIGINT, name VARCHAR, born DATE) WITH (format = 'CSV', "
                 "external_location = 's3://lake/csv/people/', skip_header_line_count = 1)")
    assert query(hconn, "SELECT id, name, born FROM hive.default.people ORDER BY id") == [
        (1, "Ada", datetime.date(1815, 12, 10)), (2, "Grace", datetime.date(1906, 12, 9)),
        (3, "Hopper, Jr", datetime.date(1950, 1, 1))]
    s3.put(LAKE, "json/events/day=2025-09-01/e.json",
           b'{"id": 1, "kind": "click", "score": 1.5}\n{"id": 2, "kind": "view", "score": null}\n')
    s3.put(LAKE, "json/events/day=2025-09-02/e.json", b'{"id": 3, "kind": "click", "score": 4}\n')
    query(hconn, "DROP TABLE IF EXISTS hive.default.events")
    query(hconn, "CREATE TABLE hive.default.events (id BIGINT, kind VARCHAR, score DOUBLE, day DATE) "
                 "WITH (format = 'JSON', external_location = 's3://lake/json/events/', partitioned_by = ARRAY['day'])")
    assert query(hconn, "SELECT kind, count(*), sum(score) FROM hive.default.events GROUP BY kind ORDER BY kind") == [
        ("click", 2, 5.5), ("view", 1, None)]
    assert query(hconn, "SELECT id FROM hive.default.events WHERE day = DATE '2025-09-02'") == [(3,)]


def test_large_files_are_read_as_byte_range_splits(hconn, s3):
    rows = 400_000
    table = pa.table({"k": pa.array(range(rows), pa.int64()),
                      "v": pa.array([f"value-{i % 977:05d}-{i}" for i in range(rows)])})
    s3.put(LAKE, "big/one/data.parquet", parquet_bytes(table, row_group_size=20_000, compression="none"))
    size = s3.client.head_object(Bucket=LAKE, Key="big/one/data.parquet")["ContentLength"]
    assert size > 4 * 1024 * 1024
    query(hconn, "DROP TABLE IF EXISTS hive_splits.default.one")
    query(hconn, "CREATE TABLE hive_splits.default.one (k BIGINT, v VARCHAR) WITH (external_location = 's3://lake/big/one/')")
    assert query(hconn, "SELECT count(*), sum(k), count(DISTINCT v) FROM hive_splits.default.one") == [
        (rows, rows * (rows - 1) // 2, rows)]
    plan = plan_text(hconn, "EXPLAIN SELECT count(*) FROM hive_splits.default.one")
    assert plan.count("data.parquet:") >= 4, plan


# --- bad input -----------------------------------------------------------------------------------

def test_unknown_format_and_properties(hconn):
    message = failure(hconn, "CREATE TABLE hive.default.bad_fmt (a INT) WITH (format = 'AVROX')")
    assert "hive.default.bad_fmt" in message and "unknown format 'AVROX'" in message, message
    message = failure(hconn, "CREATE TABLE hive.default.bad_prop (a INT) WITH (formatt = 'PARQUET')")
    assert "unknown table property 'formatt'" in message, message
    message = failure(hconn, "CREATE TABLE hive.default.bad_part (a INT, b INT) WITH (partitioned_by = ARRAY['c'])")
    assert "partition column 'c'" in message, message


def test_missing_bucket(hconn):
    message = failure(hconn, "CREATE TABLE hive.default.nobucket (a INT) "
                             "WITH (external_location = 's3a://no-such-bucket/x/')")
    assert "hive.default.nobucket" in message and "NoSuchBucket" in message, message
    message = failure(hconn, "SHOW TABLES FROM hive_nobucket.default")
    assert "NoSuchBucket" in message and "no-such-bucket" in message, message


def test_wrong_credentials_do_not_leak_the_secret(hconn):
    message = failure(hconn, "SHOW TABLES FROM hive_badsecret.default")
    assert "SignatureDoesNotMatch" in message, message
    assert "not-the-secret" not in message and SECRET_KEY not in message


def test_corrupt_parquet_file_is_named(hconn, s3):
    good = pa.table({"a": pa.array([1, 2], pa.int64())})
    s3.put(LAKE, "corrupt/good.parquet", parquet_bytes(good))
    s3.put(LAKE, "corrupt/broken.parquet", b"PAR1 this is not parquet at all PAR1")
    query(hconn, "DROP TABLE IF EXISTS hive.default.corrupt")
    query(hconn, "CREATE TABLE hive.default.corrupt (a BIGINT) WITH (external_location = 's3://lake/corrupt/')")
    message = failure(hconn, "SELECT sum(a) FROM hive.default.corrupt")
    assert "hive.default.corrupt" in message and "s3://lake/corrupt/broken.parquet" in message, message
    assert "not a valid Parquet file" in message


def test_file_schema_disagreeing_with_table(hconn, s3):
    s3.put(LAKE, "mismatch/f.parquet", parquet_bytes(pa.table({"id": ["x", "y"], "n": [1, 2]})))
    query(hconn, "DROP TABLE IF EXISTS hive.default.mismatch")
    query(hconn, "CREATE TABLE hive.default.mismatch (id BIGINT, n BIGINT) WITH (external_location = 's3://lake/mismatch/')")
    message = failure(hconn, "SELECT * FROM hive.default.mismatch")
    assert "s3://lake/mismatch/f.parquet" in message and "column 'id' of type string" in message, message
    assert "bigint" in message


def test_partition_value_of_the_wrong_type(hconn, s3):
    s3.put(LAKE, "badpart/year=2025/f.parquet", parquet_bytes(pa.table({"v": [1]})))
    s3.put(LAKE, "badpart/year=twenty/f.parquet", parquet_bytes(pa.table({"v": [2]})))
    query(hconn, "DROP TABLE IF EXISTS hive.default.badpart")
    query(hconn, "CREATE TABLE hive.default.badpart (v BIGINT, year INT) "
                 "WITH (external_location = 's3://lake/badpart/', partitioned_by = ARRAY['year'])")
    message = failure(hconn, "SELECT * FROM hive.default.badpart")
    assert "hive.default.badpart" in message and "'year=twenty'" in message and "int" in message, message


def test_writes_to_external_tables_need_the_catalog_switch(hconn):
    message = failure(hconn, "CREATE TABLE hive_splits.default.ext_w WITH (external_location = 's3://lake/ext_w/') "
                             "AS SELECT 1 AS a")
    assert "hive.non-managed-table-writes-enabled" in message, message
    assert ("ext_w",) not in query(hconn, "SHOW TABLES FROM hive_splits.default")


# --- Delta Lake ----------------------------------------------------------------------------------

MATERIALISED = """SELECT o.order_id, o.customer_id, o.order_date, p.product_name, p.category, o.quantity,
       (o.quantity * p.price) AS total_value, EXTRACT(YEAR FROM o.order_date) AS year
FROM hive.default.orders o JOIN mysql.productsdb.products p ON o.product_id = p.product_id"""


def test_delta_reads_see_each_commit_and_a_table_made_again_at_its_location(hconn, s3):
    """A Delta table read before is brought up to date from its log (the commits after the
    version read) instead of being read whole at each of a statement's lookups: every read
    still sees the newest version, and a table dropped and made again at its location, up to
    the same version number, is read afresh (its commit file is another file)."""
    table, where = "delta.default.relog", "WITH (location = 's3://lake/delta/relog/')"
    query(hconn, f"DROP TABLE IF EXISTS {table}")
    query(hconn, f"CREATE TABLE {table} {where} AS SELECT n_nationkey AS k FROM tpch.tiny.nation")
    assert query(hconn, f"SELECT count(*), sum(k) FROM {table}") == [(25, 300)]
    query(hconn, f"INSERT INTO {table} VALUES (100)")
    assert query(hconn, f"SELECT count(*), sum(k) FROM {table}") == [(26, 400)]
    query(hconn, f"DROP TABLE {table}")
    # SeaweedFS then still lists an empty `_delta_log/`: no table there.
    for key in s3.keys(LAKE, "delta/relog/"):
        s3.client.delete_object(Bucket=LAKE, Key=key)
    query(hconn, f"CREATE TABLE {table} {where} AS SELECT r_regionkey AS k FROM tpch.tiny.region")
    query(hconn, f"INSERT INTO {table} VALUES (7)")
    # Versions 0-2 again (CREATE, its rows, the INSERT), as the first table had.
    assert len(delta_log(s3, "delta/relog/")) == 3
    assert query(hconn, f"SELECT count(*), sum(k) FROM {table}") == [(6, 17)]
    query(hconn, f"DROP TABLE {table}")


def delta_log(s3, prefix):
    """The commits of a Delta table, read straight from S3."""
    commits = sorted(k for k in s3.keys(LAKE, prefix + "_delta_log/") if k.endswith(".json"))
    return [[json.loads(line) for line in s3.client.get_object(Bucket=LAKE, Key=k)["Body"].read().splitlines()]
            for k in commits]


def test_seed_join_materialised_into_delta_on_s3(hconn, s3, seed_orders):
    query(hconn, "DROP TABLE IF EXISTS delta.default.order_values")
    query(hconn, f"""CREATE TABLE delta.default.order_values
                     WITH (location = 's3://lake/delta/order_values/', partitioned_by = ARRAY['year'])
                     AS {MATERIALISED}""")
    expected = query(hconn, f"SELECT count(*), sum(total_value), sum(quantity), min(order_date), max(product_name) FROM ({MATERIALISED})")
    got = query(hconn, "SELECT count(*), sum(total_value), sum(quantity), min(order_date), max(product_name) "
                       "FROM delta.default.order_values")
    assert got == expected and got[0][0] == seed_orders.num_rows
    # The log is a valid Delta table: version 0 creates it, version 1 adds the files, one
    # directory per year; the files hold exactly the rows.
    log = delta_log(s3, "delta/order_values/")
    assert len(log) == 2
    assert any("metaData" in a and a["metaData"]["partitionColumns"] == ["year"] for a in log[0])
    adds = [a["add"] for a in log[1] if "add" in a]
    assert {a["partitionValues"]["year"] for a in adds} == {"2024", "2025"}
    rows = 0
    for a in adds:
        body = s3.client.get_object(Bucket=LAKE, Key="delta/order_values/" + a["path"])["Body"].read()
        rows += pq.read_table(io.BytesIO(body)).num_rows
    assert rows == seed_orders.num_rows
    # Partition filters select files by the log's partition values.
    assert query(hconn, "SELECT count(*) FROM delta.default.order_values WHERE year = 2024") == [(6 * 300,)]
    analyzed = plan_text(hconn, "EXPLAIN ANALYZE SELECT count(*) FROM delta.default.order_values WHERE year = 2024")
    assert "year=2025" not in analyzed and "year=2024" in analyzed
    ddl = query(hconn, "SHOW CREATE TABLE delta.default.order_values")[0][0]
    assert "location = 's3://lake/delta/order_values/'" in ddl and "partitioned_by = ARRAY['year']" in ddl


def test_delta_insert_commits_and_failed_insert_leaves_table(hconn, s3):
    query(hconn, "DROP TABLE IF EXISTS delta.default.nations")
    query(hconn, "CREATE TABLE delta.default.nations (n_nationkey BIGINT, n_name VARCHAR, n_regionkey BIGINT) "
                 "WITH (location = 's3://lake/delta/nations/', partitioned_by = ARRAY['n_regionkey'])")
    assert query(hconn, "SELECT count(*) FROM delta.default.nations") == [(0,)]
    query(hconn, "INSERT INTO delta.default.nations SELECT n_nationkey, n_name, n_regionkey FROM tpch.tiny.nation")
    query(hconn, "INSERT INTO delta.default.nations SELECT n_nationkey + 100, n_name, n_regionkey FROM tpch.tiny.nation")
    assert query(hconn, "SELECT count(*), sum(n_nationkey) FROM delta.default.nations") == [(50, 300 + 2800)]
    versions = len(delta_log(s3, "delta/nations/"))
    assert versions == 3
    failure(hconn, "INSERT INTO delta.default.nations SELECT CAST(n_name AS BIGINT), n_name, n_regionkey FROM tpch.tiny.nation")
    assert len(delta_log(s3, "delta/nations/")) == versions
    assert query(hconn, "SELECT count(*) FROM delta.default.nations") == [(50,)]
    # An existing Delta table is registered by its location; dropping it keeps its files.
    query(hconn, "DROP TABLE IF EXISTS delta.default.nations_again")
    query(hconn, "CREATE TABLE delta.default.nations_again (n_nationkey BIGINT) WITH (location = 's3://lake/delta/nations/')")
    assert query(hconn, "SELECT count(*), sum(n_nationkey) FROM delta.default.nations_again") == [(50, 3100)]
    query(hconn, "DROP TABLE delta.default.nations_again")
    assert s3.keys(LAKE, "delta/nations/_delta_log/")
    message = failure(hconn, "CREATE TABLE delta.default.bad (n_nationkey BIGINT, nope INT) "
                             "WITH (location = 's3://lake/delta/nations/')")
    assert "delta.default.bad" in message and "no column 'nope'" in message, message


# --- ORC -----------------------------------------------------------------------------------------

def orc_bytes(table: pa.Table, **kwargs) -> bytes:
    import pyarrow.orc as orc
    buf = io.BytesIO()
    orc.write_table(table, buf, **kwargs)
    return buf.getvalue()


def test_orc_orders_partitioned_by_year_and_month(hconn, seed_orders, s3):
    """The seed's orders as ORC files in year=/month= directories (Hive's layout): the seed's
    query answers as DuckDB does on the same rows, partition filters prune directories."""
    orders = seed_orders
    years, months = pc.year(orders["order_date"]), pc.month(orders["order_date"])
    for year, month in sorted(set(zip(years.to_pylist(), months.to_pylist()))):
        part = orders.filter(pc.and_(pc.equal(years, year), pc.equal(months, month)))
        s3.put(LAKE, f"orc/orders/year={year}/month={month}/part-00000.orc",
               orc_bytes(part, compression="zstd"))
    query(hconn, "DROP TABLE IF EXISTS hive.default.orders_orc")
    query(hconn, "CREATE TABLE hive.default.orders_orc (order_id BIGINT, product_id BIGINT, customer_id BIGINT, "
                 "quantity INT, order_date DATE, year INT, month INT) WITH (format = 'ORC', "
                 "external_location = 's3a://lake/orc/orders/', partitioned_by = ARRAY['year', 'month'])")
    assert "format = 'ORC'" in query(hconn, "SHOW CREATE TABLE hive.default.orders_orc")[0][0]
    seed = question_1(orders="hive.default.orders_orc") + ", o.order_id"
    assert query(hconn, seed) == query(hconn, SEED_QUERY + ", o.order_id")
    assert len(query(hconn, seed)) == 9 * 300
    got = query(hconn, "SELECT year, month, count(*), sum(quantity), min(order_date), max(order_id) "
                       "FROM hive.default.orders_orc GROUP BY year, month ORDER BY year, month")
    ref = duckdb.connect()
    ref.register("o", orders)
    expected = ref.execute("SELECT CAST(year(order_date) AS INT) y, CAST(month(order_date) AS INT) m, count(*), "
                           "sum(quantity), min(order_date), max(order_id) FROM o GROUP BY y, m ORDER BY y, m").fetchall()
    assert [tuple(r) for r in got] == [tuple(r) for r in expected] and len(got) == 15
    # count(*) reads no column (rows from the files' footers); partition filters prune.
    assert query(hconn, "SELECT count(*) FROM hive.default.orders_orc") == [(orders.num_rows,)]
    assert query(hconn, "SELECT count(*) FROM hive.default.orders_orc WHERE year = 2025 AND month >= 8") == [(600,)]
    plan = plan_text(hconn, "EXPLAIN SELECT count(*) FROM hive.default.orders_orc WHERE year = 2025 AND month >= 8")
    assert "file_type=orc" in plan and plan.count("f0/") + plan.count("f1/") == 2, plan
    # Projection and a filter on a data column, with LIMIT.
    assert query(hconn, "SELECT order_id, quantity FROM hive.default.orders_orc WHERE order_id = 42") == [
        (42, orders["quantity"][41].as_py())]
    assert len(query(hconn, "SELECT * FROM hive.default.orders_orc LIMIT 7")) == 7


def test_orc_types_by_position_and_missing_columns(hconn, s3):
    """Every mapped type read back as written; Hive-written files name their columns _col0…
    (matched by position, Trino's default); a file with fewer columns than the table reads
    NULL for the others."""
    import decimal
    table = pa.table({
        "_col0": pa.array([True, False, None]),
        "_col1": pa.array([1, -2, None], pa.int8()),
        "_col2": pa.array([300, -300, None], pa.int16()),
        "_col3": pa.array([70000, -70000, None], pa.int32()),
        "_col4": pa.array([2**40, -(2**40), None], pa.int64()),
        "_col5": pa.array([1.5, -2.25, None], pa.float32()),
        "_col6": pa.array([1e100, -0.5, None], pa.float64()),
        "_col7": pa.array([decimal.Decimal("12345678.91"), decimal.Decimal("-0.01"), None], pa.decimal128(10, 2)),
        "_col8": pa.array(["Zoë", "", None]),
        "_col9": pa.array([datetime.date(2025, 9, 1), datetime.date(1970, 1, 1), None]),
        "_col10": pa.array([datetime.datetime(2025, 9, 1, 12, 30, 45, 123456), datetime.datetime(1999, 12, 31), None],
                           pa.timestamp("us")),
        "_col11": pa.array([b"\x00\x01", b"", None]),
    })
    s3.put(LAKE, "orc/types/a.orc", orc_bytes(table))
    s3.put(LAKE, "orc/types/b.orc", orc_bytes(table.select(["_col0", "_col1"]).slice(0, 1)))
    query(hconn, "DROP TABLE IF EXISTS hive.default.orc_types")
    query(hconn, "CREATE TABLE hive.default.orc_types (b BOOLEAN, t TINYINT, s SMALLINT, i INTEGER, l BIGINT, "
                 "r REAL, d DOUBLE, m DECIMAL(10,2), v VARCHAR, dt DATE, ts TIMESTAMP(6), bin VARBINARY) "
                 "WITH (format = 'ORC', external_location = 's3://lake/orc/types/')")
    got = query(hconn, "SELECT * FROM hive.default.orc_types ORDER BY l NULLS LAST, t")
    expected = [tuple(r.values()) for r in table.to_pylist()]
    assert got[0] == expected[1] and got[1] == expected[0], got
    assert got[2] == (True, 1) + (None,) * 10, got     # b.orc: two columns
    assert got[3] == expected[2]
    assert query(hconn, "SELECT sum(m), max(v), min(ts) FROM hive.default.orc_types") == [
        (decimal.Decimal("12345678.90"), "Zoë", datetime.datetime(1999, 12, 31))]


def test_large_orc_files_are_read_as_byte_range_splits(hconn, s3):
    rows = 400_000
    table = pa.table({"k": pa.array(range(rows), pa.int64()),
                      "v": pa.array([f"value-{i % 977:05d}-{i}" for i in range(rows)])})
    s3.put(LAKE, "orc/big/data.orc", orc_bytes(table, stripe_size=512 * 1024, compression="uncompressed"))
    size = s3.client.head_object(Bucket=LAKE, Key="orc/big/data.orc")["ContentLength"]
    assert size > 4 * 1024 * 1024
    query(hconn, "DROP TABLE IF EXISTS hive_splits.default.orc_big")
    query(hconn, "CREATE TABLE hive_splits.default.orc_big (k BIGINT, v VARCHAR) "
                 "WITH (format = 'ORC', external_location = 's3://lake/orc/big/')")
    # Every stripe read exactly once across the splits, on both executors.
    assert query(hconn, "SELECT count(*), sum(k), count(DISTINCT v) FROM hive_splits.default.orc_big") == [
        (rows, rows * (rows - 1) // 2, rows)]
    assert query(hconn, "SELECT count(*) FROM hive_splits.default.orc_big") == [(rows,)]
    plan = plan_text(hconn, "EXPLAIN SELECT count(*) FROM hive_splits.default.orc_big")
    assert plan.count("f0/") >= 4, plan


def test_corrupt_and_mismatched_orc_files_are_named(hconn, s3):
    s3.put(LAKE, "orc/corrupt/good.orc", orc_bytes(pa.table({"a": pa.array([1, 2], pa.int64())})))
    s3.put(LAKE, "orc/corrupt/broken.orc", b"ORC this is not an ORC file at all")
    query(hconn, "DROP TABLE IF EXISTS hive.default.orc_corrupt")
    query(hconn, "CREATE TABLE hive.default.orc_corrupt (a BIGINT) "
                 "WITH (format = 'ORC', external_location = 's3://lake/orc/corrupt/')")
    message = failure(hconn, "SELECT sum(a) FROM hive.default.orc_corrupt")
    assert "hive.default.orc_corrupt" in message and "s3://lake/orc/corrupt/broken.orc" in message, message
    s3.put(LAKE, "orc/mismatch/f.orc", orc_bytes(pa.table({"id": ["x", "y"], "n": [1, 2]})))
    query(hconn, "DROP TABLE IF EXISTS hive.default.orc_mismatch")
    query(hconn, "CREATE TABLE hive.default.orc_mismatch (id BIGINT, n BIGINT) "
                 "WITH (format = 'ORC', external_location = 's3://lake/orc/mismatch/')")
    message = failure(hconn, "SELECT * FROM hive.default.orc_mismatch")
    assert "s3://lake/orc/mismatch/f.orc" in message and "column 'id' of type string" in message, message
    assert "bigint" in message
    # Writes stay Parquet: an INSERT into an ORC table says so.
    message = failure(hconn, "INSERT INTO hive.default.orc_mismatch VALUES (1, 2)")
    assert "hive.default.orc_mismatch" in message and "ORC" in message, message
