"""Observability on a multi-process cluster: system.runtime tables (the seed's statement while a
query runs, skewed tasks), kill_query, query history across a scheduler restart, Prometheus
/metrics of the scheduler and the executors (parsed with prometheus_client), and OpenTelemetry
traces received by an OTLP/gRPC collector running in the test."""
import json
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, Background, Cluster, connect, free_port, query, running

# Long enough (about 10 s on the debug build) to be watched while it runs.
LONG_QUERY = ("SELECT l_returnflag, count(*), sum(l_extendedprice) FROM tpch.sf1.lineitem "
              "JOIN tpch.sf1.orders ON l_orderkey = o_orderkey GROUP BY l_returnflag")
SEED_STATEMENT = ("SELECT query_id, state, query, elapsed, cpu_time, memory_pool "
                  "FROM system.runtime.queries WHERE state = 'RUNNING'")


@pytest.fixture(scope="module")
def obs_cluster(request):
    yield from running(request, REPO / "etc")


def http_get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def metrics(url):
    """{(name, labels...): value} of a /metrics page, parsed by Prometheus' own parser."""
    out = {}
    for family in text_string_to_metric_families(http_get(url + "/metrics")):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def wait_running(conn, text, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = query(conn, "SELECT query_id FROM system.runtime.queries "
                           f"WHERE state = 'RUNNING' AND query LIKE '%{text}%' AND query NOT LIKE '%system.runtime%'")
        if rows:
            return rows[0][0]
        time.sleep(0.2)
    raise AssertionError(f"no RUNNING query matching {text}")


def test_seed_statement_shows_the_running_query(obs_cluster):
    conn = connect(obs_cluster.uri)
    try:
        bg = Background(obs_cluster.uri, LONG_QUERY)
        query_id = wait_running(conn, "tpch.sf1.lineitem")
        # The seed's statement, verbatim, until the query has run for a second and more.
        seen = None
        deadline = time.time() + 120
        while time.time() < deadline and bg.thread.is_alive():
            rows = query(conn, SEED_STATEMENT)
            mine = [r for r in rows if r[0] == query_id]
            if mine and mine[0][3].total_seconds() >= 1.0:
                seen = mine[0]
                break
            time.sleep(0.2)
        everything = query(conn, "SELECT query_id, state, elapsed FROM system.runtime.queries")
        assert seen is not None, (query_id, everything)
        _, state, text, elapsed, cpu_time, pool = seen
        assert state == "RUNNING" and text == LONG_QUERY and pool == "general"
        # elapsed is a duration since the query arrived; cpu_time the tasks' time so far.
        assert 1.0 <= elapsed.total_seconds() < 600, elapsed
        assert cpu_time.total_seconds() > 0, cpu_time
        assert cpu_time.total_seconds() <= elapsed.total_seconds() * 4 + 1  # 2 executors x 2 slots
        bg.join()
        assert bg.error is None and len(bg.rows) == 3
        done = query(conn, "SELECT state, input_rows, output_rows, cpu_time, \"end\" IS NOT NULL "
                           f"FROM system.runtime.queries WHERE query_id = '{query_id}'")
        assert done[0][0] == "FINISHED" and done[0][1] == 6001215 + 1500000 and done[0][2] == 3 \
            and done[0][4], done
    finally:
        conn.close()


def test_skewed_tasks_are_visible(obs_cluster):
    """One key holds 80% of the rows: after the shuffle by that key (a window partitioned by it,
    which cannot pre-aggregate), one task of the window's stage reads far more rows than the
    others, in system.runtime.tasks and in the stage's spread."""
    conn = connect(obs_cluster.uri)
    try:
        sql = ("SELECT count(*) FROM (SELECT k, row_number() OVER (PARTITION BY k ORDER BY l_partkey) AS rn "
               "FROM (SELECT CASE WHEN l_orderkey % 10 < 8 THEN 1 ELSE l_orderkey END AS k, l_partkey "
               "FROM tpch.tiny.lineitem) s) w WHERE rn = 1")
        rows = query(conn, sql)
        assert rows[0][0] == 3001  # key 1, plus the 3000 orders whose key ends in 8 or 9
        query_id = query(conn, "SELECT query_id FROM system.runtime.queries WHERE query LIKE '%CASE WHEN l_orderkey%' "
                               "AND query NOT LIKE '%system.runtime%' ORDER BY created DESC LIMIT 1")[0][0]
        tasks = query(conn, "SELECT stage_id, processed_input_rows FROM system.runtime.tasks "
                            f"WHERE query_id = '{query_id}' AND state = 'FINISHED'")
        by_stage = {}
        for stage, rows_in in tasks:
            by_stage.setdefault(stage, []).append(rows_in)
        spreads = [sorted(v) for v in by_stage.values() if len(v) >= 2]
        assert spreads, by_stage
        # The largest task reads at least 3x the (lower) median task.
        skewed = [v for v in spreads if v[-1] >= 3 * max(v[(len(v) - 1) // 2], 1) and v[-1] > 10000]
        assert skewed, by_stage
        info = json.loads(http_get(f"{obs_cluster.http}/v1/query/{query_id}"))
        assert any(s["skewed"] for s in info["stages"]), [(s["stageId"], s["rows"]) for s in info["stages"]]
        # EXPLAIN ANALYZE heads each stage with its tasks' spread and flags the skew.
        plan = "\n".join(r[1] for r in query(conn, "EXPLAIN ANALYZE " + sql))
        assert "input rows per task min/median/max" in plan and "SKEW: the largest task reads" in plan, plan
    finally:
        conn.close()


def test_system_tables_answer_while_every_slot_is_busy(obs_cluster):
    """system.runtime.* is the scheduler's own: a query of it runs there, never as a job waiting
    for an executor slot, so it answers while another query holds every slot (which is when one
    looks). Seen here as the busy query's running tasks holding all 2 x 2 slots (a task holds a
    slot per split it was given)."""
    conn = connect(obs_cluster.uri)
    try:
        bg = Background(obs_cluster.uri, LONG_QUERY + " ORDER BY 1")
        query_id = wait_running(conn, "ORDER BY 1")
        busiest, deadline = 0, time.time() + 120
        while busiest < 4 and time.time() < deadline and bg.thread.is_alive():
            busy = query(conn, "SELECT sum(running_splits) FROM system.runtime.tasks "
                               f"WHERE query_id = '{query_id}' AND state = 'RUNNING'")[0][0]
            busiest = max(busiest, busy or 0)
        assert busiest >= 4, busiest
        bg.join()
        assert bg.error is None, bg.error
        # None of those looks was a job.
        jobs = query(conn, "SELECT count(*), count(job_id) FROM system.runtime.queries "
                           "WHERE query LIKE 'SELECT sum(running_splits) FROM system.runtime.tasks%'")
        assert jobs[0][0] > 0 and jobs[0][1] == 0, jobs
    finally:
        conn.close()


def test_kill_query(obs_cluster):
    conn = connect(obs_cluster.uri)
    try:
        bg = Background(obs_cluster.uri, LONG_QUERY + " HAVING count(*) > 0")
        query_id = wait_running(conn, "HAVING count")
        query(conn, f"CALL system.runtime.kill_query(query_id => '{query_id}', message => 'too slow for the demo')")
        bg.join(60)
        assert bg.error is not None and "Query killed. Message: too slow for the demo" in str(bg.error)
        row = query(conn, "SELECT state, error_type, error_code FROM system.runtime.queries "
                          f"WHERE query_id = '{query_id}'")
        assert row == [("FAILED", "USER_ERROR", "ADMINISTRATIVELY_KILLED")]
        with pytest.raises(Exception, match="is not running"):
            query(conn, "CALL system.runtime.kill_query('20200101_000000_00000_xxxxx', 'x')")
        with pytest.raises(Exception, match="procedure 'system.runtime.nope' does not exist"):
            query(conn, "CALL system.runtime.nope()")
    finally:
        conn.close()


def test_a_client_that_goes_away_ends_its_query(obs_cluster):
    """The CLI is killed while its query runs: the query is cancelled and ends FAILED
    (USER_CANCELED), never left RUNNING."""
    import subprocess
    from conftest import BIN
    conn = connect(obs_cluster.uri)
    try:
        cli = subprocess.Popen([BIN, "sql", "--server", obs_cluster.uri, "-e", LONG_QUERY + " LIMIT 2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        query_id = wait_running(conn, "LIMIT 2")
        cli.kill()
        cli.wait(10)
        deadline = time.time() + 30
        row = None
        while time.time() < deadline:
            row = query(conn, f"SELECT state, error_code FROM system.runtime.queries WHERE query_id = '{query_id}'")
            if row and row[0][0] == "FAILED":
                break
            time.sleep(0.3)
        assert row == [("FAILED", "USER_CANCELED")], row
    finally:
        conn.close()


def test_metadata_tables(obs_cluster):
    conn = connect(obs_cluster.uri)
    try:
        catalogs = dict(query(conn, "SELECT catalog_name, connector_name FROM system.metadata.catalogs"))
        assert catalogs["tpch"] == "tpch" and catalogs["system"] == "system"
        props = query(conn, "SELECT property_name FROM system.metadata.table_properties WHERE catalog_name = 'hive'")
        assert {"format", "external_location", "partitioned_by"} <= {p[0] for p in props}
        session = query(conn, "SELECT property_name, default_value FROM system.metadata.session_properties")
        assert ("join_distribution_type", "AUTOMATIC") in session
        nodes = query(conn, "SELECT coordinator, state, count(*) FROM system.runtime.nodes GROUP BY 1, 2 ORDER BY 1")
        assert nodes == [(False, "active", 2), (True, "active", 1)]
        # System tables join like any table.
        joined = query(conn, "SELECT count(*) FROM system.runtime.tasks t JOIN system.runtime.queries q "
                             "ON t.query_id = q.query_id WHERE q.state = 'FINISHED'")
        assert joined[0][0] > 0
    finally:
        conn.close()


def test_metrics_move_with_load(obs_cluster):
    before = metrics(obs_cluster.http)
    exec_before = [metrics(u) for u in obs_cluster.executor_http]
    conn = connect(obs_cluster.uri)
    try:
        for _ in range(3):
            query(conn, "SELECT sum(o_totalprice) FROM tpch.tiny.orders")
        with pytest.raises(Exception):
            query(conn, "SELECT * FROM tpch.tiny.nope")
    finally:
        conn.close()
    after = metrics(obs_cluster.http)
    key = lambda name, **labels: (name, tuple(sorted(labels.items())))
    assert after[key("tributary_finished_queries_total")] >= before[key("tributary_finished_queries_total")] + 3
    assert after[key("tributary_failed_queries_total")] >= before[key("tributary_failed_queries_total")] + 1
    assert after[key("tributary_query_duration_seconds_count", state="finished")] >= \
        before.get(key("tributary_query_duration_seconds_count", state="finished"), 0) + 3
    assert after[key("tributary_input_rows_total", catalog="tpch")] >= \
        before.get(key("tributary_input_rows_total", catalog="tpch"), 0) + 3 * 15000
    assert after[key("tributary_executors")] == 2 and after[key("tributary_task_slots")] == 4
    assert key("tributary_running_queries") in after and key("tributary_queued_queries") in after
    exec_after = [metrics(u) for u in obs_cluster.executor_http]
    finished = lambda m: m.get(key("tributary_executor_tasks_total", state="finished"), 0)
    assert sum(finished(m) for m in exec_after) > sum(finished(m) for m in exec_before)
    rows = lambda m: m.get(key("tributary_executor_input_rows_total", catalog="tpch"), 0)
    assert sum(rows(m) for m in exec_after) >= sum(rows(m) for m in exec_before) + 3 * 15000
    for m in exec_after:
        assert m[key("tributary_executor_task_slots")] == 2
        assert key("tributary_executor_running_tasks") in m and key("tributary_executor_draining") in m
    for url in [obs_cluster.http] + obs_cluster.executor_http:
        assert http_get(url + "/healthz").strip() == "ok"
        assert http_get(url + "/readyz").strip() == "ready"
    assert json.loads(http_get(obs_cluster.http + "/v1/info/state")) == "ACTIVE"
    assert json.loads(http_get(obs_cluster.http + "/v1/info"))["coordinator"] is True


def pg_history_url():
    """A fresh PostgreSQL database for the history store (the machine's server, trust auth)."""
    import psycopg
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as pg:
        pg.execute("DROP DATABASE IF EXISTS tributary_history_test")
        pg.execute("CREATE DATABASE tributary_history_test")
    return "postgresql://postgres@127.0.0.1:5432/tributary_history_test"


def wait_recorded(store, count, timeout=30):
    """Waits until the history store holds the test's `count` ended queries (read with the
    store's own client, not through Tributary)."""
    deadline = time.time() + timeout
    n = 0
    while time.time() < deadline:
        sql = ("SELECT count(*) FROM tributary_query_history "
               "WHERE info LIKE '%AS remembered%' OR info LIKE '%SELEC 1%'")
        try:
            if store.startswith("postgresql://"):
                import psycopg
                with psycopg.connect(store) as pg:
                    n = pg.execute(sql).fetchone()[0]
            else:
                import sqlite3
                with sqlite3.connect(store) as db:
                    n = db.execute(sql).fetchone()[0]
        except Exception:  # not created yet
            n = 0
        if n >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"history store holds {n} queries, expected {count}")


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_history_survives_a_scheduler_restart(request, store):
    c = Cluster(REPO / "etc", history=pg_history_url() if store == "postgresql" else None)
    try:
        c.wait_ready()
        conn = connect(c.uri)
        query(conn, "SELECT count(*) AS remembered FROM tpch.tiny.nation")
        with pytest.raises(Exception):
            query(conn, "SELEC 1")
        conn.close()
        wait_recorded(c.history, 2)  # history is written right after a query ends
        c.restart_scheduler()
        c.wait_ready()
        conn = connect(c.uri)
        rows = query(conn, "SELECT state, output_rows, error_code FROM system.runtime.queries "
                           "WHERE query LIKE '%remembered%' OR query = 'SELEC 1' ORDER BY created")
        conn.close()
        assert ("FINISHED", 1, None) in rows and ("FAILED", 0, "SYNTAX_ERROR") in rows, rows
        listed = json.loads(http_get(c.http + "/v1/query?state=FINISHED&query=count(*)%20AS%20remembered"))
        assert len(listed) == 1 and listed[0]["stages"] == []
        detail = json.loads(http_get(c.http + "/v1/query/" + listed[0]["queryId"]))
        assert detail["stages"], "stages of a finished query are kept in the history"
    finally:
        if request.session.testsfailed:
            print(c.logs())
        c.stop()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver keeping every span it is sent."""

    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((service, span))
        return trace_service_pb2.ExportTraceServiceResponse()


def test_traces_link_query_stages_and_tasks(request):
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    c = Cluster(REPO / "etc", env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    try:
        c.wait_ready()
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        client_span = "00f067aa0ba902b7"
        conn = connect(c.uri)
        conn.close()
        import adbc_driver_flightsql.dbapi as flightsql
        conn = flightsql.connect(c.uri, db_kwargs={
            "username": "tester", "password": "secret",
            "adbc.flight.sql.rpc.call_header.traceparent": f"00-{trace_id}-{client_span}-01"}, autocommit=True)
        rows = query(conn, "SELECT o_orderpriority, count(*) FROM tpch.tiny.orders GROUP BY 1 ORDER BY 1")
        conn.close()
        assert len(rows) == 5
        deadline = time.time() + 30
        spans = []
        while time.time() < deadline:
            with collector.lock:
                spans = [(s, sp) for s, sp in collector.spans if sp.trace_id.hex() == trace_id]
            names = {sp.name for _, sp in spans}
            if "query" in names and any(n.startswith("stage") for n in names) and "task" in names \
                    and "split" in names:
                # give the executors' batches a moment to arrive
                time.sleep(2)
                with collector.lock:
                    spans = [(s, sp) for s, sp in collector.spans if sp.trace_id.hex() == trace_id]
                break
            time.sleep(0.5)
        by_id = {sp.span_id.hex(): (svc, sp) for svc, sp in spans}
        queries = [sp for svc, sp in spans if sp.name == "query"]
        stages = [sp for svc, sp in spans if sp.name.startswith("stage")]
        tasks = [(svc, sp) for svc, sp in spans if sp.name == "task"]
        assert len(queries) == 1, [sp.name for _, sp in spans]
        q = queries[0]
        assert q.parent_span_id.hex() == client_span
        assert len(stages) >= 2 and all(s.parent_span_id.hex() == q.span_id.hex() for s in stages)
        stage_ids = {s.span_id.hex() for s in stages}
        assert len(tasks) >= 2
        assert all(svc == "tributary-executor" for svc, _ in tasks)
        assert all(t.parent_span_id.hex() in stage_ids for _, t in tasks), \
            [(t.parent_span_id.hex(), stage_ids) for _, t in tasks]
        # Every stage that ran has its tasks under it, and stage spans cover their tasks.
        for s in stages:
            children = [t for _, t in tasks if t.parent_span_id == s.span_id]
            assert children, s.name
            assert s.start_time_unix_nano <= min(t.start_time_unix_nano for t in children) + 50_000_000
        # Connector reads: one `split` span per split, under the task that read it.
        task_ids = {t.span_id.hex() for _, t in tasks}
        splits = [sp for _, sp in spans if sp.name == "split"]
        assert splits and all(sp.parent_span_id.hex() in task_ids for sp in splits)
        assert all(any(a.key == "catalog" and a.value.string_value == "tpch" for a in sp.attributes)
                   for sp in splits)
        assert by_id[q.span_id.hex()][0] == "tributary-scheduler"
        assert q.start_time_unix_nano <= min(s.start_time_unix_nano for s in stages)
    finally:
        if request.session.testsfailed:
            print(c.logs())
        c.stop()
        server.stop(0)
