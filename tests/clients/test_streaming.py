"""Results that stream (`streaming_results`, on by default), from `tributary standalone` (whose
executors run in the scheduler's process: their files are read from their work directories)
and from a cluster of separate executor processes (their files read through the executors'
Flight ports while written): a query's result is announced when its final stage starts (no
row count yet) and its rows are read while that stage computes them, as Trino's clients
receive rows before the query has finished; the answer is the one announced once the query
has finished; a query failing while its rows stream fails its stream, never a silently short
result; so does an executor lost after its rows were sent; a client closing its stream early
(ADBC's cancel, a gRPC deadline) cancels the query."""
import datetime
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from conftest import BIN, REPO, Cluster, connect, query
from ports import free_port
from test_adbc import encode_statement_query

ORDERS = 1_500_000
KEYS = "SELECT o_orderkey, o_orderdate, o_comment FROM tpch.sf1.orders"


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def standalone(request):
    """The Flight SQL address of `tributary standalone`, then of the multi-process cluster."""
    if request.param == "cluster":
        yield request.getfixturevalue("cluster").uri
        return
    yield from running_standalone()


def running_standalone(config=None):
    """Runs `tributary standalone` on the TPC-H catalog (and `config` as its
    etc/config.properties) while the generator is suspended: yields its address."""
    etc = Path(tempfile.mkdtemp(prefix="tributary-streaming-etc-"))
    (etc / "catalog").mkdir()
    (etc / "catalog" / "tpch.properties").write_text((REPO / "etc/catalog/tpch.properties").read_text())
    if config is not None:
        (etc / "config.properties").write_text(config)
    port = free_port()
    log = open(etc / "standalone.log", "wb")
    proc = subprocess.Popen([BIN, "standalone", "--etc", str(etc), "--executors", "2",
                             "--flight-sql-addr", f"127.0.0.1:{port}",
                             "--scheduler-addr", f"127.0.0.1:{free_port()}",
                             "--http-addr", "off"], stdout=log, stderr=subprocess.STDOUT)
    uri = f"grpc://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            conn = connect(uri)
            query(conn, "SELECT 1")
            conn.close()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("tributary standalone did not start: "
                                   + (etc / "standalone.log").read_text()[-2000:])
            time.sleep(0.3)
    yield uri
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def flight_client(uri):
    client = flight.FlightClient(uri)
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("tester", "secret")])
    return client, options


def epoch(value):
    """Seconds since the epoch of a timestamp from system.runtime (UTC when naive)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def ended(conn, text):
    """(state, end in epoch seconds) of the newest query whose text contains `text`, once it
    has ended."""
    for _ in range(600):
        rows = query(conn, "SELECT state, \"end\" FROM system.runtime.queries "
                           f"WHERE query LIKE '%{text}%' AND query NOT LIKE '%system.runtime%' "
                           "ORDER BY created DESC LIMIT 1")
        if rows and rows[0][0] in ("FINISHED", "FAILED"):
            return rows[0][0], epoch(rows[0][1])
        time.sleep(0.1)
    raise AssertionError(f"the query with {text!r} did not end: {rows}")


def test_rows_arrive_while_the_query_still_runs(standalone):
    client, options = flight_client(standalone)
    sql = KEYS + " WHERE o_orderkey > 0"
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    assert info.total_records == -1, "announced before its row count is known"
    assert len(info.endpoints) >= 2, info
    first_batch_at = None
    tables = []
    for endpoint in info.endpoints:
        reader = client.do_get(endpoint.ticket, options)
        assert reader.schema == info.schema
        batches = []
        for chunk in reader:
            if first_batch_at is None:
                first_batch_at = time.time()
            batches.append(chunk.data)
        tables.append(pa.Table.from_batches(batches, schema=info.schema))
    table = pa.concat_tables(tables)
    conn = connect(standalone)
    try:
        state, end = ended(conn, "WHERE o_orderkey > 0")
        assert state == "FINISHED"
        assert first_batch_at < end, "the first rows came before the query had finished"
        # The answer is the query's: every order once.
        [(count, total)] = query(conn, "SELECT count(*), sum(o_orderkey) FROM tpch.sf1.orders")
        assert table.num_rows == count == ORDERS
        assert pa.compute.sum(table["o_orderkey"]).as_py() == total
        assert len(set(table["o_orderkey"].to_pylist())) == ORDERS
    finally:
        conn.close()


def test_a_session_can_wait_for_the_row_count(standalone):
    """With streaming_results = false the result is announced once the query has finished,
    with its row count (ADBC's rowcount); the rows are the same."""
    conn = connect(standalone)
    try:
        with conn.cursor() as cur:
            cur.execute(KEYS + " WHERE o_orderkey % 3 = 0")
            assert cur.rowcount == -1
            streamed = cur.fetch_arrow_table()
            cur.execute("SET SESSION streaming_results = false")
            cur.execute(KEYS + " WHERE o_orderkey % 3 = 0")
            assert cur.rowcount == streamed.num_rows > 0
            waited = cur.fetch_arrow_table()
        assert sorted(waited["o_orderkey"].to_pylist()) == sorted(streamed["o_orderkey"].to_pylist())
        [(name, value, default, *_)] = [r for r in query(conn, "SHOW SESSION") if r[0] == "streaming_results"]
        assert (value, default) == ("false", "true")
    finally:
        conn.close()


def test_an_ordered_result_streams_in_order(standalone):
    """ORDER BY: the sorted partitions are merged by the scheduler as their tasks write them."""
    conn = connect(standalone)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT o_orderdate, o_orderkey FROM tpch.sf1.orders "
                        "WHERE o_orderkey % 2 = 0 ORDER BY o_orderdate DESC, o_orderkey")
            assert cur.rowcount == -1
            table = cur.fetch_arrow_table()
        rows = list(zip(table["o_orderdate"].to_pylist(), table["o_orderkey"].to_pylist()))
        assert len(rows) == len(set(k for _, k in rows)) > ORDERS // 3
        assert rows == sorted(rows, key=lambda r: (-r[0].toordinal(), r[1]))
    finally:
        conn.close()


def test_a_query_failing_while_its_rows_stream_fails_the_stream(standalone):
    """A division by zero in the last orders (keys near 5,000,000): the stream of its partition
    ends with the query's error, not early; the query is FAILED."""
    client, options = flight_client(standalone)
    sql = "SELECT o_orderkey, 100 / (o_orderkey - 5000000) AS x FROM tpch.sf1.orders"
    rows = 0
    with pytest.raises(flight.FlightError, match="(?i)divide ?by ?zero"):
        descriptor = flight.FlightDescriptor.for_command(encode_statement_query(sql))
        info = client.get_flight_info(descriptor, options)
        assert info.total_records == -1
        for endpoint in info.endpoints:
            for chunk in client.do_get(endpoint.ticket, options):
                rows += chunk.data.num_rows
    assert rows < ORDERS
    conn = connect(standalone)
    try:
        state, _ = ended(conn, "o_orderkey - 5000000")
        assert state == "FAILED"
        # The cluster answers on.
        assert query(conn, "SELECT count(*) FROM tpch.tiny.nation") == [(25,)]
    finally:
        conn.close()


def test_a_query_killed_while_its_rows_stream_ends_its_streams(standalone):
    client, options = flight_client(standalone)
    sql = "SELECT l_orderkey, l_comment FROM tpch.sf1.lineitem WHERE l_orderkey > 0"
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    readers = [client.do_get(e.ticket, options) for e in info.endpoints]
    assert readers[0].read_chunk().data.num_rows > 0
    conn = connect(standalone)
    try:
        [(query_id,)] = query(conn, "SELECT query_id FROM system.runtime.queries WHERE state = 'RUNNING' "
                                    "AND query LIKE '%l_comment FROM tpch.sf1.lineitem%' "
                                    "AND query NOT LIKE '%system.runtime%'")
        query(conn, f"CALL system.runtime.kill_query(query_id => '{query_id}', message => 'enough rows')")
        # (Read chunk by chunk: pyarrow's read_all turns a CANCELLED status into a
        # KeyboardInterrupt.)
        with pytest.raises(flight.FlightCancelledError, match="Query killed. Message: enough rows"):
            for reader in readers:
                for _ in reader:
                    pass
        state, _ = ended(conn, "l_comment FROM tpch.sf1.lineitem")
        assert state == "FAILED"
        assert query(conn, "SELECT error_code FROM system.runtime.queries "
                           f"WHERE query_id = '{query_id}'") == [("ADMINISTRATIVELY_KILLED",)]
    finally:
        conn.close()


def stopped_for_its_client(conn, text, code="USER_CANCELED", why="the client closed the stream of"):
    """The newest query whose text contains `text` failed with `code` because of its client
    (the message says `why`), and none of its tasks runs on."""
    state, _ = ended(conn, text)
    [(query_id, error_code, message)] = query(
        conn, "SELECT query_id, error_code, error_message FROM system.runtime.queries "
              f"WHERE query LIKE '%{text}%' AND query NOT LIKE '%system.runtime%' "
              "ORDER BY created DESC LIMIT 1")
    assert (state, error_code) == ("FAILED", code), (state, error_code, message)
    assert why in message, message
    for _ in range(300):
        running = query(conn, "SELECT count(*) FROM system.runtime.tasks "
                              f"WHERE query_id = '{query_id}' AND state = 'RUNNING'")
        if running == [(0,)]:
            break
        time.sleep(0.1)
    assert running == [(0,)], f"tasks of the {code} query ran on"
    # The cluster answers on.
    assert query(conn, "SELECT count(*) FROM tpch.tiny.nation") == [(25,)]


def test_adbc_cancelling_a_streaming_result_cancels_its_query(standalone):
    """ADBC (as the JDBC driver) cancels a query whose rows stream by cancelling its DoGet: a
    scan that would run for minutes stops, cancelled by the user, its tasks ended."""
    conn = connect(standalone)
    try:
        cur = conn.cursor()
        cur.execute("SELECT l_orderkey, l_comment FROM tpch.sf10.lineitem WHERE l_suppkey > 1")
        reader = cur.fetch_record_batch()
        assert reader.read_next_batch().num_rows > 0
        cur.adbc_cancel()
        with pytest.raises(Exception):  # noqa: B017 - the driver's cancelled error
            reader.read_all()
        cur.close()
        stopped_for_its_client(conn, "WHERE l_suppkey > 1")
    finally:
        conn.close()


def test_a_deadline_running_out_on_an_ordered_stream_cancels_its_query(standalone):
    """An ordered result (merged by the scheduler) whose DoGet's gRPC deadline runs out while
    the sorts still run: the query is cancelled; one read to its end (its LIMIT) is not."""
    client = flight.FlightClient(standalone)
    header = client.authenticate_basic_token("tester", "secret")
    options = flight.FlightCallOptions(headers=[header])
    sql = ("SELECT l_orderkey, l_comment FROM tpch.sf10.lineitem WHERE l_partkey > 2 "
           "ORDER BY l_comment")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    assert info.total_records == -1
    [endpoint] = info.endpoints
    with pytest.raises(flight.FlightTimedOutError):
        client.do_get(endpoint.ticket, flight.FlightCallOptions(headers=[header], timeout=2)).read_all()
    conn = connect(standalone)
    try:
        stopped_for_its_client(conn, "WHERE l_partkey > 2")
        limited = ("SELECT o_orderkey FROM tpch.sf1.orders WHERE o_custkey > 3 "
                   "ORDER BY o_orderkey LIMIT 5")
        info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(limited)), options)
        assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 5
        state, _ = ended(conn, "o_custkey > 3")
        assert state == "FINISHED"
    finally:
        conn.close()


def test_a_result_left_unread_for_the_client_timeout_is_abandoned():
    """etc/config.properties sets Trino's query.client.timeout: a streaming result none of
    whose streams is open for that long is abandoned (ABANDONED_QUERY, its tasks ended); a
    client reading slowly, one endpoint after the other, holds a stream open and is not."""
    server = running_standalone("query.client.timeout=3s\n")
    uri = next(server)
    try:
        client, options = flight_client(uri)
        sql = "SELECT l_orderkey, l_comment FROM tpch.sf10.lineitem WHERE l_suppkey > 3"
        info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
        assert info.total_records == -1
        conn = connect(uri)
        try:
            stopped_for_its_client(conn, "l_suppkey > 3", "ABANDONED_QUERY", "query.client.timeout")

            # A slow client: its first stream opened, then left unread longer than the timeout
            # while its task writes on (a scan of 60 M rows); then it reads on.
            slow = "SELECT l_orderkey, l_comment FROM tpch.sf10.lineitem WHERE l_orderkey % 50 = 7"
            info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(slow)), options)
            assert info.total_records == -1
            rows = 0
            for i, endpoint in enumerate(info.endpoints):
                reader = client.do_get(endpoint.ticket, options)
                if i == 0:
                    time.sleep(4)
                    assert query(conn, "SELECT state FROM system.runtime.queries "
                                       "WHERE query LIKE '%l_orderkey % 50 = 7%' "
                                       "AND query NOT LIKE '%system.runtime%' "
                                       "ORDER BY created DESC LIMIT 1") == [("RUNNING",)]
                for chunk in reader:
                    rows += chunk.data.num_rows
            assert ended(conn, "l_orderkey % 50 = 7")[0] == "FINISHED"
            [(output_rows,)] = query(conn, "SELECT output_rows FROM system.runtime.queries "
                                           "WHERE query LIKE '%l_orderkey % 50 = 7%' "
                                           "AND query NOT LIKE '%system.runtime%' "
                                           "ORDER BY created DESC LIMIT 1")
            assert rows == output_rows > 0
        finally:
            conn.close()
    finally:
        next(server, None)


def test_a_result_read_after_its_query_ended_is_the_whole_result(standalone):
    """Endpoints read only once the query has finished: fetched as finished partitions."""
    client, options = flight_client(standalone)
    sql = KEYS + " WHERE o_orderkey % 5 = 1"
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
    assert info.total_records == -1
    conn = connect(standalone)
    try:
        state, _ = ended(conn, "o_orderkey % 5 = 1")
        assert state == "FINISHED"
        table = pa.concat_tables([client.do_get(e.ticket, options).read_all() for e in info.endpoints])
        [(count,)] = query(conn, "SELECT count(*) FROM tpch.sf1.orders WHERE o_orderkey % 5 = 1")
        assert table.num_rows == count > 0
    finally:
        conn.close()


def test_an_executor_lost_after_its_rows_were_sent_fails_the_stream_clearly():
    """A cluster of two executor processes: every partition of a long scan has sent rows when
    one executor is killed; the streams of its partitions end with an error naming the
    partition (a rerun elsewhere cannot continue a stream half read), never a short result, and
    the query fails with it; the cluster answers on with the executor left."""
    cluster = Cluster(REPO / "etc")
    try:
        cluster.wait_ready()
        client, options = flight_client(cluster.uri)
        sql = "SELECT l_orderkey, l_comment FROM tpch.sf1.lineitem WHERE l_partkey > 0"
        info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(sql)), options)
        assert info.total_records == -1
        readers = [client.do_get(e.ticket, options) for e in info.endpoints]
        for reader in readers:
            assert reader.read_chunk().data.num_rows > 0
        victim = next(p for name, p in cluster.procs if name == "executor0")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        errors = []
        for reader in readers:
            try:
                for _ in reader:
                    pass
            except flight.FlightError as e:
                errors.append(str(e))
        assert errors, "a partition of the killed executor ended without an error"
        assert all("result partition" in e for e in errors), errors
        conn = connect(cluster.uri)
        try:
            # The query failed with its broken stream (its job cancelled), not FINISHED.
            state, _ = ended(conn, "l_partkey > 0")
            assert state == "FAILED"
            assert query(conn, "SELECT error_code FROM system.runtime.queries "
                               "WHERE query LIKE '%l_partkey > 0%' AND query NOT LIKE '%system.runtime%'"
                               ) == [("REMOTE_HOST_GONE",)]
            assert query(conn, "SELECT count(*) FROM tpch.tiny.nation") == [(25,)]
        finally:
            conn.close()
    finally:
        cluster.stop()
