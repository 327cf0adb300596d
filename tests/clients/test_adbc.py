"""ADBC (the Flight SQL driver Python users have) and raw pyarrow.flight against a real cluster."""
import datetime
import decimal
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight

from conftest import connect, query


def test_queries_and_types(conn):
    rows = query(conn, "SELECT CAST(1 AS BIGINT) a, 'x' b, DATE '2025-01-01' d, CAST(1.5 AS DECIMAL(10,2)) e")
    assert rows == [(1, "x", datetime.date(2025, 1, 1), decimal.Decimal("1.50"))]
    assert query(conn, "SELECT count(*) FROM tpch.tiny.lineitem") == [(60_175,)]


def test_get_objects_lists_catalogs_schemas_tables_columns(conn):
    objects = conn.adbc_get_objects(depth="all", catalog_filter="tpch", db_schema_filter="tiny", table_name_filter="nation").read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["tpch"]
    schemas = objects[0]["catalog_db_schemas"]
    assert [s["db_schema_name"] for s in schemas] == ["tiny"]
    tables = schemas[0]["db_schema_tables"]
    assert [t["table_name"] for t in tables] == ["nation"]
    assert [c["column_name"] for c in tables[0]["table_columns"]] == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    schema = conn.adbc_get_table_schema("nation", catalog_filter="tpch", db_schema_filter="tiny")
    assert schema.field("n_name").type == pa.string()
    catalogs = conn.adbc_get_objects(depth="catalogs").read_all().to_pylist()
    assert "tpch" in [c["catalog_name"] for c in catalogs]


def test_prepared_statement_with_parameters(conn):
    with conn.cursor() as cur:
        sql = "SELECT n_name FROM tpch.tiny.nation WHERE n_nationkey = ?"
        cur.execute(sql, parameters=(3,))
        assert cur.fetchall() == [("CANADA",)]
        cur.execute(sql, parameters=(5,))
        assert cur.fetchall() == [("ETHIOPIA",)]


def test_session_properties_are_per_connection(cluster, conn):
    query(conn, "SET SESSION join_distribution_type = 'BROADCAST'")
    rows = {r[0]: r[1] for r in query(conn, "SHOW SESSION")}
    assert rows["join_distribution_type"] == "BROADCAST"
    other = connect(cluster.uri)
    try:
        assert {r[0]: r[1] for r in query(other, "SHOW SESSION")}["join_distribution_type"] == "AUTOMATIC"
    finally:
        other.close()
    query(conn, "RESET SESSION join_distribution_type")
    assert {r[0]: r[1] for r in query(conn, "SHOW SESSION")}["join_distribution_type"] == "AUTOMATIC"


def test_use_sets_default_catalog_and_schema(conn):
    query(conn, "USE tpch.tiny")
    assert query(conn, "SELECT count(*) FROM nation") == [(25,)]
    assert ("nation",) in query(conn, "SHOW TABLES")
    assert query(conn, "SHOW COLUMNS FROM region")[0][:2] == ("r_regionkey", "bigint")


def test_cancel_long_query(cluster):
    long_conn = connect(cluster.uri)
    cur = long_conn.cursor()
    outcome = {}

    def run():
        try:
            cur.execute("SELECT count(*), sum(l_quantity) FROM tpch.sf100.lineitem")
            outcome["rows"] = cur.fetchall()
        except Exception as e:  # the cancellation
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(2)
    started = time.time()
    cur.adbc_cancel()
    thread.join(20)
    assert not thread.is_alive(), "cancelled query did not return"
    assert "error" in outcome and "cancel" in str(outcome["error"]).lower(), outcome
    assert time.time() - started < 20
    probe = connect(cluster.uri)
    try:
        t = time.time()
        assert query(probe, "SELECT 1") == [(1,)]
        assert time.time() - t < 30
    finally:
        probe.close()


def encode_statement_query(sql: str) -> bytes:
    """A google.protobuf.Any holding a Flight SQL CommandStatementQuery."""
    def field(number, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    command = field(1, sql.encode())
    return field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + field(2, command)


def test_pyarrow_flight_client(cluster):
    client = flight.FlightClient(cluster.uri)
    header = client.authenticate_basic_token("tester", "secret")
    assert header[0] == b"authorization" and header[1].startswith(b"Bearer ")
    options = flight.FlightCallOptions(headers=[header])
    sql = "SELECT l_orderkey, l_linenumber FROM tpch.tiny.lineitem ORDER BY l_orderkey, l_linenumber"
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    tables = []
    for endpoint in info.endpoints:
        assert not endpoint.locations, "fetched on the same connection"
        reader = client.do_get(endpoint.ticket, options)
        assert reader.schema == info.schema
        tables.append(reader.read_all())
    table = pa.concat_tables(tables)
    assert table.num_rows == 60_175
    keys = table.column("l_orderkey").to_pylist()
    assert keys == sorted(keys)


def flight_read(cluster, sql):
    """(FlightInfo, the result read endpoint by endpoint) over raw pyarrow.flight."""
    client = flight.FlightClient(cluster.uri)
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("tester", "secret")])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    tables = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    return info, pa.concat_tables(tables) if tables else info.schema.empty_table()


def test_ordered_results_are_merged_by_the_scheduler(cluster, conn):
    """ORDER BY: every final partition is sorted by the executors' tasks and the scheduler
    merges them as it streams (no single-task merge stage): one endpoint, in order, NULLs
    where asked, LIMIT/OFFSET exact."""
    sql = ("SELECT CASE WHEN l_orderkey % 7 = 0 THEN NULL ELSE l_shipmode END AS mode, "
           "l_orderkey, l_linenumber, l_extendedprice FROM tpch.tiny.lineitem "
           "ORDER BY mode DESC NULLS FIRST, l_orderkey, l_linenumber")
    info, table = flight_read(cluster, sql)
    # (No row count when announced as the final stage started, streaming_results; a job this
    # small may have finished before.)
    assert len(info.endpoints) == 1 and info.total_records in (-1, 60_175)
    rows = list(zip(*(table.column(c).to_pylist() for c in ("mode", "l_orderkey", "l_linenumber"))))
    assert len(rows) == 60_175
    nulls = [r for r in rows if r[0] is None]
    assert nulls and rows[:len(nulls)] == sorted(nulls, key=lambda r: (r[1], r[2])), "NULLs first, then by key"
    rest = rows[len(nulls):]
    expected = sorted(rest, key=lambda r: (r[1], r[2]))
    expected.sort(key=lambda r: r[0], reverse=True)  # stable: mode DESC, then key ASC
    assert rest == expected

    # LIMIT and OFFSET are applied by the merge; each partition keeps only what it may need.
    # (A key the result does not have is merged by a stage as before: the reference here.)
    everything = query(conn, "SELECT l_orderkey, l_linenumber FROM tpch.tiny.lineitem "
                             "ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber")
    page_sql = ("SELECT l_orderkey, l_linenumber, l_extendedprice FROM tpch.tiny.lineitem "
                "ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 10 OFFSET 5")
    info, page = flight_read(cluster, page_sql)
    assert info.total_records in (-1, 10) and len(info.endpoints) == 1
    assert list(zip(page.column(0).to_pylist(), page.column(1).to_pylist())) == everything[5:15]
    assert [r[:2] for r in query(conn, page_sql.replace("OFFSET 5", "OFFSET 60170"))] == everything[60170:]
    assert query(conn, "SELECT l_orderkey FROM tpch.tiny.lineitem WHERE l_orderkey < 0 ORDER BY 1") == []

    # What ran: sorted partitions, no stage of one task merging them; EXPLAIN says who merges.
    plan = query(conn, "EXPLAIN ANALYZE " + page_sql)
    stages = [p for name, p in plan if name.startswith("Stage")]
    assert not any("SortPreservingMergeExec" in p for p in stages), stages
    assert any("SortExec: TopK(fetch=15)" in p and "preserve_partitioning=[true]" in p for p in stages), stages
    result = dict(plan)["Result"]
    assert "scheduler merges" in result and "offset 5, limit 10" in result, result
    distributed = dict(query(conn, "EXPLAIN (TYPE DISTRIBUTED) " + sql))
    assert "mode DESC NULLS FIRST, l_orderkey ASC NULLS LAST" in distributed["Result"], distributed


def test_grpc_deadline_stops_a_long_query(cluster):
    conn = connect(cluster.uri)
    try:
        cur = conn.cursor()
        # ADBC turns its query timeout into a gRPC deadline on GetFlightInfo.
        cur.adbc_statement.set_options(**{"adbc.flight.sql.rpc.timeout_seconds.query": "2"})
        started = time.time()
        try:
            cur.execute("SELECT count(*), sum(l_extendedprice) FROM tpch.sf100.lineitem")
            cur.fetchall()
            raised = None
        except Exception as e:  # the deadline
            raised = e
        assert raised is not None, "a 2 s deadline must stop an sf100 scan"
        assert time.time() - started < 30
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()


def test_many_large_partitions_fetched_in_parallel(cluster):
    """ADBC fetches every endpoint at once and hands them back in order: partitions read
    later must not stall the one read now (each fetch has its own executor connection)."""
    conn = connect(cluster.uri)
    try:
        for _ in range(2):
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM tpch.tiny.lineitem")
                assert cur.fetch_arrow_table().num_rows == 60_175
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()


def test_memory_tables_larger_than_a_grpc_message_reach_the_executors(conn):
    """A memory-catalog table travels to the executors inside the tasks' plans. At 48 MB a
    task was over gRPC's 16 MiB message limit: every launch failed, Ballista took both
    executors for lost and the query hung for three minutes."""
    rows = 3_000_000
    query(conn, "CREATE TABLE memory.default.adbc_big AS "
                f"SELECT value AS k, value * 2 AS v FROM range({rows})")
    try:
        started = time.monotonic()
        assert query(conn, "SELECT count(*), sum(v) FROM memory.default.adbc_big") == [
            (rows, rows * (rows - 1))]
        # Joined with a table of a connector: both reach the same tasks.
        assert query(conn, "SELECT count(*) FROM memory.default.adbc_big b "
                           "JOIN tpch.tiny.nation n ON b.k = n.n_nationkey") == [(25,)]
        assert time.monotonic() - started < 60
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        query(conn, "DROP TABLE memory.default.adbc_big")


def test_counts_over_generator_table_functions_run_on_executors(conn):
    """`range` and `generate_series` scans reach executors as datafusion-proto encodes them; a
    count reading no column of them failed on every executor ("number of columns(1) must
    match number of fields(0)")."""
    assert query(conn, "SELECT count(*) FROM range(100000)") == [(100_000,)]
    assert query(conn, "SELECT count(*) FROM generate_series(1, 10) WHERE 1 = 1") == [(10,)]
    assert query(conn, "SELECT count(*) FROM range(1000) r "
                       "JOIN tpch.tiny.nation n ON r.value = n.n_nationkey") == [(25,)]
    assert query(conn, "SELECT sum(value) FROM range(5)") == [(10,)]


def test_information_schema_queries(conn):
    """information_schema is computed from the session's catalogs on the scheduler (it cannot
    be sent to executors), as Trino users query it."""
    tables = query(conn, "SELECT table_name FROM information_schema.tables "
                         "WHERE table_catalog = 'tpch' AND table_schema = 'tiny' ORDER BY 1")
    assert [t for (t,) in tables] == ["customer", "lineitem", "nation", "orders", "part",
                                      "partsupp", "region", "supplier"]
    assert query(conn, "SELECT count(*) FROM tpch.information_schema.columns "
                       "WHERE table_schema = 'tiny'") == [(61,)]
    names = query(conn, "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'tpch' "
                        "AND table_schema = 'tiny' AND table_name = 'nation' ORDER BY ordinal_position")
    assert [c for (c,) in names] == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
