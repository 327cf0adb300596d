"""Join distribution on a multi-process cluster: each join BROADCAST or PARTITIONED as chosen by
a hint (`/*+ BROADCAST(n) */`, `/*+ SHUFFLE_HASH(n) */`), by the session property
`join_distribution_type`, by statistics, or switched at run time from measured sizes; shown by EXPLAIN (TYPE DISTRIBUTED) (expected) and
EXPLAIN ANALYZE (what ran), with the reason, and every distribution giving the same answer.
A hint beats the session property, which beats the statistics; the adaptive planner re-decides
from measured sizes. Hints that match nothing are
warnings kept with the query, never errors. Joins of three tables or more are ordered by
statistics (`join_reordering_strategy`), shown by EXPLAIN, with the same answer as written."""
import re

import pytest

from conftest import Cluster, connect, etc_with, query
from test_observability import metrics

JOIN = """SELECT {hint} n.n_name, count(*) AS customers, sum(c.c_acctbal) AS balance
FROM tpch.tiny.customer c JOIN tpch.tiny.nation n ON c.c_nationkey = n.n_nationkey
GROUP BY n.n_name ORDER BY n.n_name"""

THREE_WAY = """SELECT {hint} n.n_name, count(*) AS orders, sum(o.o_totalprice) AS total
FROM tpch.tiny.orders o
JOIN tpch.tiny.customer c ON o.o_custkey = c.c_custkey
JOIN tpch.tiny.nation n ON c.c_nationkey = n.n_nationkey
GROUP BY n.n_name ORDER BY n.n_name"""


# Below the ~2.3 kB statistics estimate for the filtered customers (300 rows guessed), above
# what the filter really keeps (a few rows).
ADAPTIVE_THRESHOLD = "1kB"

# Orders joined with the few customers a filter keeps (statistics guess ~300).
SMALL_AFTER_FILTER = ("SELECT count(*), sum(o.o_totalprice) FROM tpch.tiny.orders o JOIN "
                      "(SELECT c_custkey FROM tpch.tiny.customer WHERE c_comment LIKE '%unusual theodolites%') c "
                      "ON o.o_custkey = c.c_custkey")


def join_lines(conn, sql):
    """The `Join N: …` lines of an EXPLAIN's Joins row."""
    rows = query(conn, sql)
    joins = [r[1] for r in rows if r[0].startswith("Joins")]
    assert joins, [r[0] for r in rows]
    return joins[0].splitlines()


def stage_plans(conn, sql):
    """The plans of an EXPLAIN's stages, as one text."""
    return "\n".join(r[1] for r in query(conn, sql) if r[0].startswith("Stage"))


def distribution(line):
    return re.search(r": (BROADCAST|PARTITIONED)", line).group(1)


@pytest.fixture
def session(cluster):
    conn = connect(cluster.uri)
    yield conn
    conn.close()


CASES = [
    # (session's join_distribution_type, hint, distribution, reason)
    ("AUTOMATIC", "", "BROADCAST", "statistics"),
    ("PARTITIONED", "", "PARTITIONED", "session property join_distribution_type = 'PARTITIONED'"),
    ("BROADCAST", "", "BROADCAST", "session property join_distribution_type = 'BROADCAST'"),
    ("PARTITIONED", "/*+ BROADCAST(n) */", "BROADCAST", "hint BROADCAST(n)"),
    ("PARTITIONED", "/*+ MAPJOIN(nation) */", "BROADCAST", "hint MAPJOIN(nation)"),
    ("BROADCAST", "/*+ SHUFFLE_HASH(n) */", "PARTITIONED", "hint SHUFFLE_HASH(n)"),
    ("AUTOMATIC", "/*+ PARTITIONED(c) */", "PARTITIONED", "hint PARTITIONED(c)"),
]


def test_each_distribution_by_each_cause_same_answer(session):
    expected = query(session, JOIN.format(hint=""))
    assert len(expected) == 25
    for distribution_type, hint, want, reason in CASES:
        query(session, f"SET SESSION join_distribution_type = '{distribution_type}'")
        sql = JOIN.format(hint=hint)
        case = f"{distribution_type} {hint}"
        assert query(session, sql) == expected, case
        planned = join_lines(session, "EXPLAIN (TYPE DISTRIBUTED) " + sql)
        assert len(planned) == 1, planned
        assert distribution(planned[0]) == want, (case, planned)
        assert f"reason: {reason}" in planned[0], (case, planned)
        # The stages are the ones the job will have: a broadcast build side in a stage of its
        # own read whole by the join's stage; a partitioned hash join over two shuffles.
        stages = stage_plans(session, "EXPLAIN (TYPE DISTRIBUTED) " + sql)
        if want == "BROADCAST":
            assert "HashJoinExec: mode=CollectLeft" in stages, (case, stages)
            assert "broadcast=true" in stages, (case, stages)
        else:
            assert "HashJoinExec: mode=Partitioned" in stages, (case, stages)
            assert stages.count("partitioning=Hash([c_nationkey") + stages.count(
                "partitioning=Hash([n_nationkey") == 2, (case, stages)
        assert "SortMergeJoin" not in stages, (case, stages)
        ran = join_lines(session, "EXPLAIN ANALYZE " + sql)
        assert len(ran) == 1, ran
        assert distribution(ran[0]) == want, (case, ran)
        assert f"reason: {reason}" in ran[0], (case, ran)
        # What it really read: the 25 nations built (a broadcast side once per executor holding
        # it), the 1500 customers probed.
        built, probed = map(int, re.search(
            r"measured: build side (\d+) rows read, probe side (\d+) rows", ran[0]).groups())
        assert built in (25, 50) and probed == 1500, (case, ran)
    query(session, "RESET SESSION join_distribution_type")


def test_hint_applies_to_its_own_join_only(session):
    expected = query(session, THREE_WAY.format(hint=""))
    query(session, "SET SESSION join_distribution_type = 'PARTITIONED'")
    sql = THREE_WAY.format(hint="/*+ BROADCAST(n) */")
    assert query(session, sql) == expected
    ran = join_lines(session, "EXPLAIN ANALYZE " + sql)
    assert len(ran) == 2, ran
    hinted = [line for line in ran if "hint BROADCAST(n)" in line]
    others = [line for line in ran if "hint" not in line]
    assert len(hinted) == 1 and distribution(hinted[0]) == "BROADCAST", ran
    assert len(others) == 1 and distribution(others[0]) == "PARTITIONED", ran
    assert "session property" in others[0], ran
    query(session, "RESET SESSION join_distribution_type")


def test_unusable_hints_are_warnings_not_errors(session):
    sql = JOIN.format(hint="/*+ BROADCAST(nope) REPARTITION(4) */")
    assert len(query(session, sql)) == 25
    # A preserved (left) side of an outer join cannot be broadcast: the hint is refused.
    outer = ("SELECT /*+ BROADCAST(n) */ count(*) FROM tpch.tiny.nation n "
             "LEFT JOIN tpch.tiny.customer c ON c.c_nationkey = n.n_nationkey")
    assert query(session, outer) == [(1500,)]
    rows = query(session, "SELECT query, warnings FROM system.runtime.queries "
                          "WHERE warnings IS NOT NULL ORDER BY created")
    by_query = {q: w for q, w in rows}
    warnings = by_query[sql]
    assert "BROADCAST(nope) ignored: no joined table or alias is named 'nope'" in warnings
    assert "REPARTITION is not a join hint" in warnings
    assert "cannot broadcast its left side" in by_query[outer]


def test_adaptive_switch_broadcasts_a_build_side_measured_small(session):
    """Statistics put the filtered customers above the broadcast size (an estimate: the filter's
    selectivity is guessed), so the join is expected PARTITIONED; Ballista's adaptive planner
    re-decides it from the sizes measured when the inputs' stages finish and broadcasts it."""
    sql = SMALL_AFTER_FILTER
    expected = query(session, sql)
    query(session, f"SET SESSION join_max_broadcast_table_size = '{ADAPTIVE_THRESHOLD}'")
    try:
        planned = join_lines(session, "EXPLAIN (TYPE DISTRIBUTED) " + sql)
        assert distribution(planned[0]) == "PARTITIONED", planned
        assert "re-decided at run time" in planned[0], planned
        ran = join_lines(session, "EXPLAIN ANALYZE " + sql)
        assert distribution(ran[0]) == "BROADCAST", ran
        assert "adaptive switch: statistics expected PARTITIONED" in ran[0], ran
        assert query(session, sql) == expected
    finally:
        query(session, "RESET SESSION join_max_broadcast_table_size")


# A star around lineitem, written smallest table first.
WRITTEN_SMALL_FIRST = """SELECT s.s_name, count(*) AS lines, sum(p.p_retailprice) AS total
FROM tpch.tiny.supplier s
JOIN tpch.tiny.lineitem l ON l.l_suppkey = s.s_suppkey
JOIN tpch.tiny.part p ON l.l_partkey = p.p_partkey
GROUP BY s.s_name ORDER BY s.s_name"""

# lineitem's row count is estimated (60,000 per 0.01 of scale); the others are exact.
BEST_ORDER = ("l (~60000 rows) JOIN s (~100 rows) JOIN p (~2000 rows) "
              "(statistics; written: s JOIN l JOIN p)")


def sections(conn, sql):
    return {name: plan for name, plan in query(conn, sql)}


def test_join_order_by_statistics(session):
    """Under AUTOMATIC a star's largest table is joined first and the others in order of size,
    whatever order the query names them in; NONE keeps the written order; same answer."""
    query(session, "SET SESSION join_reordering_strategy = 'NONE'")
    try:
        as_written = query(session, WRITTEN_SMALL_FIRST)
        assert "Join order" not in sections(session, "EXPLAIN (TYPE DISTRIBUTED) " + WRITTEN_SMALL_FIRST)
    finally:
        query(session, "RESET SESSION join_reordering_strategy")
    assert len(as_written) == 100 and sum(r[1] for r in as_written) == 60175
    assert query(session, WRITTEN_SMALL_FIRST) == as_written
    planned = sections(session, "EXPLAIN (TYPE DISTRIBUTED) " + WRITTEN_SMALL_FIRST)
    assert planned["Join order"] == BEST_ORDER, planned.get("Join order")
    # Both joins now probe with the larger side and broadcast the smaller.
    joins = planned["Joins (expected; decided at run time)"].splitlines()
    assert len(joins) == 2 and all(": BROADCAST" in j for j in joins), joins
    ran = sections(session, "EXPLAIN ANALYZE " + WRITTEN_SMALL_FIRST)
    assert ran["Join order"] == BEST_ORDER, ran.get("Join order")
    # A chain (orders - customer - nation) stays as written: without distinct counts a smaller
    # table reached through a key that is not its own could multiply rows.
    assert "Join order" not in sections(session, "EXPLAIN (TYPE DISTRIBUTED) " + THREE_WAY.format(hint=""))


def test_bad_join_reordering_strategy_is_named(session):
    import adbc_driver_manager
    with pytest.raises(adbc_driver_manager.Error, match="expected AUTOMATIC, ELIMINATE_CROSS_JOINS or NONE"):
        query(session, "SET SESSION join_reordering_strategy = 'GREEDY'")


BROADCAST_CUSTOMERS = """SELECT {hint} c.c_mktsegment, count(*) AS orders, sum(o.o_totalprice) AS total
FROM tpch.tiny.orders o JOIN tpch.tiny.customer c ON o.o_custkey = c.c_custkey
GROUP BY c.c_mktsegment ORDER BY c.c_mktsegment"""


def executors_counter(cluster, name):
    """`name` summed over the cluster's executors."""
    return sum(metrics(url).get((name, ()), 0) for url in cluster.executor_http)


def counted_run(cluster, session, sql):
    """Runs `sql` (one task per partition: `ballista.scheduler.max_partitions_per_task = 1`);
    its rows, the build sides its tasks built and reused (the executors' counters), and the
    EXPLAIN ANALYZE section of its broadcast join's stage (name, plan)."""
    query(session, "SET SESSION ballista.scheduler.max_partitions_per_task = '1'")
    try:
        builds = executors_counter(cluster, "tributary_executor_broadcast_builds_total")
        reuses = executors_counter(cluster, "tributary_executor_broadcast_reuses_total")
        rows = query(session, sql)
        built = executors_counter(cluster, "tributary_executor_broadcast_builds_total") - builds
        reused = executors_counter(cluster, "tributary_executor_broadcast_reuses_total") - reuses
        ran = sections(session, "EXPLAIN ANALYZE " + sql)
    finally:
        query(session, "RESET SESSION ballista.scheduler.max_partitions_per_task")
    stages = [(name, plan) for name, plan in ran.items()
              if "HashJoinExec" in plan and "mode=CollectLeft" in plan]
    assert len(stages) == 1, ran
    return rows, built, reused, stages[0]


def test_broadcast_build_side_is_built_once_per_executor(cluster, session):
    """One task per partition gives each executor several tasks of the probe stage (the
    orders' 8 splits on 2 executors of 2 slots). The customers, scanned in the probe's stage,
    are still read and built once per executor, the other tasks probe that build (the
    executors' counters, and EXPLAIN ANALYZE's build_input_rows), and the answer is the
    partitioned join's."""
    query(session, "SET SESSION join_distribution_type = 'PARTITIONED'")
    expected = query(session, BROADCAST_CUSTOMERS.format(hint=""))
    query(session, "RESET SESSION join_distribution_type")
    assert len(expected) == 5
    sql = BROADCAST_CUSTOMERS.format(hint="/*+ BROADCAST(c) */")
    rows, built, reused, (name, plan) = counted_run(cluster, session, sql)
    assert rows == expected
    assert "(8 tasks," in name, name
    assert 1 <= built <= len(cluster.executor_http), (built, reused)
    assert built + reused == 8, (built, reused)
    # 1,500 customers, read and built at most once per executor (8 times without sharing).
    build_rows = re.search(r"build_input_rows=([0-9.]+ ?K?)", plan).group(1)
    assert build_rows in ("1500", "1.50 K", "3.00 K"), plan


def test_broadcast_stage_output_is_fetched_once_per_executor(cluster, session):
    """A build side switched to BROADCAST at run time is its own stage's output, read by a
    broadcast reader in every task of the probe stage: fetched and built once per executor."""
    sql = SMALL_AFTER_FILTER
    expected = query(session, sql)
    query(session, f"SET SESSION join_max_broadcast_table_size = '{ADAPTIVE_THRESHOLD}'")
    try:
        rows, built, reused, (name, plan) = counted_run(cluster, session, sql)
    finally:
        query(session, "RESET SESSION join_max_broadcast_table_size")
    assert rows == expected
    assert "ShuffleReaderExec" in plan and "broadcast" in plan.lower(), plan
    tasks = int(re.search(r"\((\d+) tasks,", name).group(1))
    assert tasks > len(cluster.executor_http), name
    assert 1 <= built <= len(cluster.executor_http), (built, reused)
    assert built + reused == tasks, (built, reused, tasks)


# Partitioned joins with one hot key: the probe side's (half of lineitem's rows carry the key 1;
# also as a full join, where the hash table records what every piece's probes matched), or
# the build side's (half of the orders carry the key 1, joined with every line).
SKEWED = {
    "probe side": """SELECT count(*), sum(l.l_quantity), sum(o.o_totalprice)
FROM (SELECT CASE WHEN l_linenumber <= 2 THEN 1 ELSE l_orderkey END AS k, l_quantity FROM tpch.tiny.lineitem) l
JOIN tpch.tiny.orders o ON l.k = o.o_orderkey""",
    "probe side, full join": """SELECT count(*), count(l.k), count(o.o_orderkey), sum(l.l_quantity), sum(o.o_totalprice)
FROM (SELECT CASE WHEN l_linenumber <= 2 THEN 1 ELSE l_orderkey END AS k, l_quantity FROM tpch.tiny.lineitem) l
FULL JOIN tpch.tiny.orders o ON l.k = o.o_orderkey""",
    "build side": """SELECT count(*), sum(l.l_quantity), sum(o.o_totalprice)
FROM tpch.tiny.lineitem l
JOIN (SELECT CASE WHEN o_orderkey % 2 = 0 THEN 1 ELSE o_orderkey END AS k, o_totalprice FROM tpch.tiny.orders) o
ON l.l_orderkey = o.k""",
}


def test_skewed_partitions_of_partitioned_joins_are_split_with_the_same_answer(session):
    """With a hot key, one shuffle partition of a partitioned join holds most of a side's rows.
    The executor running it sees it far above the median of the shuffle its own map tasks wrote
    and joins it in pieces in parallel; EXPLAIN ANALYZE says so, and the answer is the one
    without skew handling."""
    for statement in ("SET SESSION join_distribution_type = 'PARTITIONED'",
                      "SET SESSION hash_partition_count = 8",
                      "SET SESSION skew_join_min_size = '1kB'",
                      "SET SESSION skew_join_factor = 2"):
        query(session, statement)
    try:
        for case, sql in SKEWED.items():
            query(session, "SET SESSION skew_join_enabled = false")
            expected = query(session, sql)
            plain = "\n".join(r[1] for r in query(session, "EXPLAIN ANALYZE " + sql))
            if case.startswith("probe"):
                # The hot task reads most of the probe side: flagged as a skewed stage.
                assert "SKEW:" in plain, (case, plain)
            assert "SKEW HANDLED" not in plain and "skewed_partitions_split" not in plain, (case, plain)
            query(session, "SET SESSION skew_join_enabled = true")
            assert query(session, sql) == expected, case
            analyzed = "\n".join(r[1] for r in query(session, "EXPLAIN ANALYZE " + sql))
            assert "SKEW HANDLED: 1 skewed join partition(s)" in analyzed, (case, analyzed)
            join = next(line for line in analyzed.splitlines() if "HashJoinExec" in line)
            assert "mode=Partitioned" in join and "skewed_partitions_split=1" in join, (case, join)
        # Below the size threshold, nothing is split.
        query(session, "SET SESSION skew_join_min_size = '1GB'")
        analyzed = "\n".join(r[1] for r in query(session, "EXPLAIN ANALYZE " + SKEWED["probe side"]))
        assert "SKEW HANDLED" not in analyzed, analyzed
    finally:
        for name in ("join_distribution_type", "hash_partition_count", "skew_join_min_size",
                     "skew_join_factor", "skew_join_enabled"):
            query(session, f"RESET SESSION {name}")


def test_the_deployment_sets_session_defaults_as_trinos_config_does():
    """Keys of etc/config.properties that Trino reads as the defaults of session properties
    (join-distribution-type, query.max-run-time, …, and Tributary's own properties by the same
    rule, streaming-results): every session starts from them, SHOW SESSION shows them as the
    defaults, as system.metadata.session_properties does; SET SESSION overrides and RESET
    SESSION returns to them."""
    config = "join-distribution-type=PARTITIONED\nquery.max-run-time=1h\nstreaming-results=false\n"
    c = Cluster(etc_with({"config.properties": config}))
    try:
        c.wait_ready()
        conn = connect(c.uri)
        try:
            rows = {r[0]: (r[1], r[2]) for r in query(conn, "SHOW SESSION")}
            assert rows["join_distribution_type"] == ("PARTITIONED", "PARTITIONED")
            assert rows["query_max_run_time"] == ("1h", "1h")
            assert rows["streaming_results"] == ("false", "false")
            # The system table says the same defaults as SHOW SESSION.
            listed = dict(query(conn, "SELECT property_name, default_value FROM system.metadata.session_properties"))
            assert listed["join_distribution_type"] == "PARTITIONED"
            assert listed["streaming_results"] == "false"
            assert listed["join_reordering_strategy"] == "AUTOMATIC"
            explain = "EXPLAIN (TYPE DISTRIBUTED) " + JOIN.format(hint="")
            [line] = join_lines(conn, explain)
            assert distribution(line) == "PARTITIONED", line
            assert len(query(conn, JOIN.format(hint=""))) == 25
            with conn.cursor() as cur:
                # Not streamed: announced once finished, with its row count.
                cur.execute("SELECT o_orderkey FROM tpch.sf1.orders WHERE o_orderkey % 3 = 0")
                assert cur.rowcount == cur.fetch_arrow_table().num_rows > 0
            query(conn, "SET SESSION join_distribution_type = 'BROADCAST'")
            assert distribution(join_lines(conn, explain)[0]) == "BROADCAST"
            query(conn, "RESET SESSION join_distribution_type")
            assert distribution(join_lines(conn, explain)[0]) == "PARTITIONED"
        finally:
            conn.close()
    finally:
        c.stop()
