"""Memory limits and spill (etc/config.properties: query.max-memory-per-node, spill-enabled,
max-spill-per-node) on a 2-executor cluster: 32 concurrent queries, some needing more memory
than their limit allows for a hash join (which cannot spill): those fail with
RESOURCE_EXHAUSTED naming the limit and the operator, every other query gets its right
answer, no process dies; a sort and an aggregation larger than the limit succeed by spilling,
and the spilled bytes are reported (EXPLAIN ANALYZE, executor metrics). A session may lower
its limit; without spilling the same sort fails cleanly."""
import re
import time
import urllib.request
from pathlib import Path

import adbc_driver_manager
import pytest

from conftest import Background, Cluster, connect, etc_with as etc_copy, query, running

LIMIT = "32MB"
# A hash join whose build side (1.5M order comments) is far above 32MB per node: broadcast, so
# every node holds all of it whatever the tasks' placement (partitioned, a node may hold one
# quarter at a time, under the limit, when the other queries keep its other slots busy).
TOO_BIG = ("SELECT count(*) FROM tpch.sf1.orders a JOIN tpch.sf1.orders b "
           "ON a.o_comment = b.o_comment")
TOO_BIG_SESSION = ["SET SESSION join_distribution_type = 'BROADCAST'"]
# A sort of all 1.5M comments (a window over one ordered partition) and an aggregation with
# 1.5M groups: both larger than the limit, both able to spill.
BIG_SORT = ("SELECT count(*), min(rn), max(rn) FROM (SELECT row_number() OVER "
            "(ORDER BY o_comment) rn FROM tpch.sf1.orders)")
BIG_AGGREGATION = ("SELECT count(*) FROM (SELECT o_comment, count(*) AS n FROM tpch.sf1.orders "
                   "GROUP BY o_comment)")
SMALL = [
    ("SELECT count(*) FROM tpch.tiny.lineitem", [(60175,)]),
    ("SELECT n_name FROM tpch.tiny.nation WHERE n_nationkey = 7", [("GERMANY",)]),
    ("SELECT count(*) FROM tpch.tiny.orders JOIN tpch.tiny.customer ON o_custkey = c_custkey",
     [(15000,)]),
    ("SELECT r_name, count(*) FROM tpch.tiny.nation JOIN tpch.tiny.region "
     "ON n_regionkey = r_regionkey GROUP BY r_name ORDER BY r_name",
     [("AFRICA", 5), ("AMERICA", 5), ("ASIA", 5), ("EUROPE", 5), ("MIDDLE EAST", 5)]),
]


def etc_with(config: str) -> Path:
    return etc_copy({"config.properties": config})


@pytest.fixture(scope="module")
def mem_cluster(request):
    yield from running(request, etc_with(f"query.max-memory-per-node={LIMIT}\nspill-enabled=true\n"
                                         "max-spill-per-node=8GB\nmemory.heap-headroom-per-node=1GB\n"))


def exceeded(error):
    """Whether a query failed for its memory limit, as clients see it."""
    return (isinstance(error, adbc_driver_manager.Error)
            and "(ResourceExhausted;" in str(error)  # the gRPC status
            and "Query exceeded per-node memory limit of 32.00MB (query.max-memory-per-node)"
            in str(error))


def executor_metric(cluster, name):
    total = 0.0
    for http in cluster.executor_http:
        with urllib.request.urlopen(f"{http}/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


def test_32_concurrent_queries_large_ones_fail_others_succeed(mem_cluster):
    runs = []
    for i in range(32):
        if i % 8 == 0:
            runs.append(("big", Background(mem_cluster.uri, TOO_BIG, session=TOO_BIG_SESSION)))
        elif i == 5:
            runs.append(("sort", Background(mem_cluster.uri, BIG_SORT)))
        elif i == 13:
            runs.append(("aggregation", Background(mem_cluster.uri, BIG_AGGREGATION)))
        else:
            sql, expected = SMALL[i % len(SMALL)]
            runs.append((expected, Background(mem_cluster.uri, sql)))
    for kind, run in runs:
        run.join(900)
        if kind == "big":
            assert exceeded(run.error), f"{run.error!r} {run.rows}"
            assert "Operator: HashJoinInput" in str(run.error)
        elif kind == "sort":
            assert run.error is None, run.error
            assert run.rows == [(1500000, 1, 1500000)]
        elif kind == "aggregation":
            assert run.error is None, run.error
            assert run.rows[0][0] > 1_400_000
        else:
            assert run.error is None, run.error
            assert run.rows == kind
    # No process was killed.
    for name, p in mem_cluster.procs:
        assert p.poll() is None, f"{name} exited with {p.returncode}"
    conn = connect(mem_cluster.uri)
    try:
        codes = query(conn, "SELECT error_code, count(*) FROM system.runtime.queries "
                            "WHERE query LIKE '%a.o_comment = b.o_comment%' "
                            "AND query NOT LIKE '%system.runtime%' GROUP BY error_code")
        assert codes == [("EXCEEDED_LOCAL_MEMORY_LIMIT", 4)], codes
    finally:
        conn.close()
    # Every reservation was given back.
    deadline = time.time() + 30
    while executor_metric(mem_cluster, "tributary_executor_memory_reserved_bytes") and time.time() < deadline:
        time.sleep(0.5)
    assert executor_metric(mem_cluster, "tributary_executor_memory_reserved_bytes") == 0
    assert executor_metric(mem_cluster, "tributary_executor_memory_peak_bytes") > 0


def spilled(explained):
    return sum(int(n) for n in re.findall(r"spilled: (\d+) bytes", explained))


def test_sort_and_aggregation_spill_and_say_so(mem_cluster):
    before = executor_metric(mem_cluster, "tributary_executor_spilled_bytes_total")
    conn = connect(mem_cluster.uri)
    try:
        for sql in (BIG_SORT, BIG_AGGREGATION):
            rows = query(conn, f"EXPLAIN ANALYZE {sql}")
            text = "\n".join(r[1] for r in rows)
            assert spilled(text) > 0, text
        assert query(conn, BIG_SORT) == [(1500000, 1, 1500000)]
        # Memory in use shows per query and per task (the query's peak on an executor).
        peaks = query(conn, "SELECT peak_memory_bytes FROM system.runtime.queries "
                            f"WHERE query = '{BIG_SORT}'")
        assert peaks and peaks[-1][0] > 1 << 20, peaks
        assert peaks[-1][0] <= 32 << 20, peaks
        tasks = query(conn, "SELECT max(t.peak_memory_bytes) FROM system.runtime.tasks t "
                            "JOIN system.runtime.queries q ON t.query_id = q.query_id "
                            f"WHERE q.query = '{BIG_SORT}'")
        assert tasks[0][0] > 1 << 20, tasks
    finally:
        conn.close()
    assert executor_metric(mem_cluster, "tributary_executor_spilled_bytes_total") > before


def test_a_session_may_lower_its_limit(mem_cluster):
    conn = connect(mem_cluster.uri)
    try:
        sql = "SELECT count(*) FROM tpch.tiny.orders a JOIN tpch.tiny.orders b ON a.o_comment = b.o_comment"
        expected = query(conn, sql)
        assert expected[0][0] >= 15000
        query(conn, "SET SESSION query_max_memory_per_node = '64kB'")
        with pytest.raises(adbc_driver_manager.Error) as err:
            query(conn, sql)
        assert "(ResourceExhausted;" in str(err.value)
        assert "(session property query_max_memory_per_node)" in str(err.value)
        # Above the node's limit it has no effect: the node's limit holds.
        query(conn, "SET SESSION query_max_memory_per_node = '10GB'")
        with pytest.raises(adbc_driver_manager.Error) as err:
            query(conn, TOO_BIG)
        assert exceeded(err.value), str(err.value)
    finally:
        conn.close()


def test_without_spill_a_large_sort_fails_cleanly():
    c = Cluster(etc_with(f"query.max-memory-per-node={LIMIT}\nspill-enabled=false\n"), executors=1)
    try:
        c.wait_ready()
        conn = connect(c.uri)
        try:
            with pytest.raises(adbc_driver_manager.Error) as err:
                query(conn, BIG_SORT)
            assert "(ResourceExhausted;" in str(err.value), str(err.value)
            assert "query.max-memory-per-node" in str(err.value)
            assert query(conn, SMALL[0][0]) == SMALL[0][1]
        finally:
            conn.close()
        for name, p in c.procs:
            assert p.poll() is None, f"{name} exited"
    finally:
        c.stop()
