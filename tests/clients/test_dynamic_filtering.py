"""Dynamic filtering on a multi-process cluster: the keys a join's selective build side holds,
collected when the query runs, filter its probe side at the source. A Parquet probe scan skips
the row groups outside them (counted: rows read with and without), a MySQL probe side gets them
in its remote SQL; EXPLAIN ANALYZE shows the filter; answers are the same with and without;
`enable_dynamic_filtering` turns it off and `dynamic_filtering_wait_timeout` bounds the wait."""
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, connect, mysql_run, newest_finished, query, running

DB = "tributary_df"
EVENTS = 200_000          # probe rows, item_id 0..199999 in order
ROW_GROUP = 10_000        # 20 row groups
RED = [50_000 + 200 * i for i in range(10)]   # the selective build side's keys: one row group
SALES = 20_000            # MySQL probe rows, nation_key i % 25 (a probe side under one batch,
                          # 8192 rows, gets no filter: it reads as fast as the keys are collected)

JOIN = ("SELECT count(*), sum(e.amount) FROM hive.default.events e "
        "JOIN mysql.{db}.items i ON e.item_id = i.item_id WHERE i.color = 'red'").format(db=DB)
MYSQL_PROBE = ("SELECT n.n_name, count(*), sum(s.qty) FROM mysql.{db}.sales s "
               "JOIN tpch.tiny.nation n ON s.nation_key = n.n_nationkey "
               "WHERE n.n_name IN ('FRANCE', 'INDIA') GROUP BY n.n_name ORDER BY n.n_name").format(db=DB)


@pytest.fixture(scope="module")
def df_cluster(request):
    work = Path(tempfile.mkdtemp(prefix="tributary-df-"))
    events = work / "lake" / "events"
    events.mkdir(parents=True)
    ids = pa.array(range(EVENTS), pa.int64())
    pq.write_table(pa.table({"item_id": ids, "amount": pa.array([i % 97 for i in range(EVENTS)], pa.int64())}),
                   events / "part-0.parquet", row_group_size=ROW_GROUP)
    mysql_run(f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}",
              f"CREATE TABLE {DB}.items (item_id BIGINT PRIMARY KEY, color VARCHAR(10))",
              (f"INSERT INTO {DB}.items VALUES (%s, %s)",
               [(200 * i, "red" if 200 * i in RED else "blue") for i in range(1000)]),
              f"CREATE TABLE {DB}.sales (id INT PRIMARY KEY, nation_key BIGINT, qty INT)",
              (f"INSERT INTO {DB}.sales VALUES (%s, %s, %s)", [(i, i % 25, i % 7) for i in range(SALES)]),
              # Row counts in information_schema (the statistics a build side is chosen by).
              f"ANALYZE TABLE {DB}.items, {DB}.sales")
    etc = work / "etc"
    (etc / "catalog").mkdir(parents=True)
    shutil.copy(REPO / "etc" / "catalog" / "tpch.properties", etc / "catalog")
    (etc / "catalog" / "hive.properties").write_text(
        f"connector.name=hive\nhive.metastore=file\nhive.metastore.catalog.dir=file://{work}/metastore\n"
        "hive.non-managed-table-writes-enabled=true\n")
    (etc / "catalog" / "mysql.properties").write_text(
        "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306\nconnection-user=root\n")
    started = running(request, etc, work)
    cluster = next(started)
    try:
        conn = connect(cluster.uri)
        query(conn, "CREATE SCHEMA IF NOT EXISTS hive.default")
        query(conn, "CREATE TABLE hive.default.events (item_id BIGINT, amount BIGINT) "
                    f"WITH (format = 'PARQUET', external_location = 'file://{events}/')")
        conn.close()
        yield cluster
    finally:
        started.close()
        mysql_run(f"DROP DATABASE IF EXISTS {DB}")


@pytest.fixture
def dconn(df_cluster):
    conn = connect(df_cluster.uri)
    yield conn
    conn.close()


def input_rows(conn, sql):
    """Rows the last run of `sql` read from its sources."""
    return newest_finished(conn, f"query = '{sql.replace(chr(39), chr(39) * 2)}'", "input_rows")[0]


def off_then_on(conn, sql, expected=None):
    """Runs `sql` with dynamic filtering off, then on: both answers must be `expected` (or
    each other); returns the answer and the rows read from the sources without and with."""
    query(conn, "SET SESSION enable_dynamic_filtering = false")
    try:
        answer = query(conn, sql)
        without = input_rows(conn, sql)
    finally:
        query(conn, "RESET SESSION enable_dynamic_filtering")
    if expected is not None:
        assert answer == expected, answer
    assert query(conn, sql) == answer
    return answer, without, input_rows(conn, sql)


def analyzed(conn, sql):
    rows = query(conn, "EXPLAIN ANALYZE " + sql)
    return {name: plan for name, plan in rows}, "\n".join(plan for _, plan in rows)


def test_a_selective_build_side_prunes_the_probe_scans_row_groups(dconn):
    _, without, with_filter = off_then_on(dconn, JOIN, [(len(RED), sum(k % 97 for k in RED))])
    # Without: every event; with: the one row group that holds the red keys. (Both also count
    # the 10 red items MariaDB returns, once per task of the stage the broadcast is read in.)
    assert without >= EVENTS, without
    assert with_filter <= ROW_GROUP + 4 * len(RED), with_filter
    sections, text = analyzed(dconn, JOIN)
    lines = sections["Dynamic filters"].splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("e.item_id from the right side's i.item_id: "
                               f"e.item_id IN (10 values, {RED[0]} to {RED[-1]})"), lines
    scan = next(line for line in text.splitlines() if "DataSourceExec" in line and "events" in line)
    assert f"row_groups_pruned_statistics={EVENTS // ROW_GROUP} total \u2192 1 matched" in scan, scan


def test_collected_keys_also_filter_an_aggregate_joined_on_the_same_key(dconn):
    """TPC-H Q17's shape: the correlated aggregate is joined on the key the red items were
    collected for, so the same keys filter its events scan too, below the aggregate."""
    sql = ("SELECT count(*), sum(e.amount) FROM hive.default.events e "
           f"JOIN mysql.{DB}.items i ON e.item_id = i.item_id WHERE i.color = 'red' AND e.amount >= "
           "(SELECT avg(e2.amount) FROM hive.default.events e2 WHERE e2.item_id = i.item_id)")
    _, without, with_filter = off_then_on(dconn, sql, [(len(RED), sum(k % 97 for k in RED))])
    # Both events scans read every row without; with, each reads the one row group of the keys.
    assert without >= 2 * EVENTS, without
    assert with_filter <= 2 * ROW_GROUP + 4 * len(RED), with_filter
    sections, _ = analyzed(dconn, sql)
    lines = sections["Dynamic filters"].splitlines()
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"__scalar_sq_1.item_id IN (10 values, {RED[0]} to {RED[-1]}): carried through "), lines


def test_a_mysql_probe_side_gets_the_keys_in_its_remote_sql(dconn):
    expected, _, with_filter = off_then_on(dconn, MYSQL_PROBE)
    assert [r[0] for r in expected] == ["FRANCE", "INDIA"] and expected[0][1] == SALES // 25
    # FRANCE and INDIA are nations 6 and 8: only their sales leave MariaDB. (Not 6 and 7:
    # keys that are every integer of their range are sent as the range alone.)
    assert with_filter == 2 * SALES // 25 + 25
    sections, text = analyzed(dconn, MYSQL_PROBE)
    assert "s.nation_key IN (2 values, 6 to 8)" in sections["Dynamic filters"], sections["Dynamic filters"]
    remote = next(line for line in text.splitlines() if "remote_sql=" in line and "sales" in line)
    # The range and the keys (a list this short is written as ORs by DataFusion's simplifier).
    assert "(`nation_key` >= ?) AND (`nation_key` <= ?)" in remote, remote
    assert "((`nation_key` = ?) OR (`nation_key` = ?))" in remote or "`nation_key` IN (?, ?)" in remote, remote
    assert "params=[6, 8, 6, 8]" in remote, remote


def test_an_empty_build_side_leaves_nothing_to_read(dconn):
    sql = (f"SELECT count(*) FROM hive.default.events e WHERE e.item_id IN "
           f"(SELECT item_id FROM mysql.{DB}.items WHERE color = 'green')")
    assert query(dconn, sql) == [(0,)]
    assert input_rows(dconn, sql) == 0
    sections, _ = analyzed(dconn, sql)
    assert "no build keys: the probe side reads nothing" in sections["Dynamic filters"]


def test_a_having_subquery_runs_once_its_keys_standing_in_for_it(dconn):
    """A semi join's build side filtering an aggregate (TPC-H Q18's shape): statistics cannot
    tell its output, so it is collected by its sources' size; its keys, all listed, replace it
    in the job, which then reads the events once (the probe side), not twice."""
    sql = ("SELECT count(*), sum(e.amount) FROM hive.default.events e WHERE e.item_id IN "
           "(SELECT item_id FROM hive.default.events GROUP BY item_id HAVING sum(amount) >= 96)")
    keys = [i for i in range(EVENTS) if i % 97 == 96]
    expected = [(len(keys), 96 * len(keys))]
    _, without, with_filter = off_then_on(dconn, sql, expected)
    assert without >= 2 * EVENTS, without
    assert with_filter <= EVENTS, with_filter
    sections, text = analyzed(dconn, sql)
    line = sections["Dynamic filters"]
    assert f"e.item_id IN ({len(keys)} values, {keys[0]} to {keys[-1]})" in line, line
    assert f"its {len(keys)} distinct keys stand in for the build side" in line, line
    assert "gby=[item_id" not in text, text    # the grouping ran on the scheduler only
    # Bounded by its sources: past the bound it runs in the job, unfiltered.
    query(dconn, f"SET SESSION dynamic_filtering_max_reused_build_rows = {EVENTS - 1}")
    try:
        assert query(dconn, sql) == expected
        assert input_rows(dconn, sql) >= 2 * EVENTS
    finally:
        query(dconn, "RESET SESSION dynamic_filtering_max_reused_build_rows")


def test_a_build_side_slower_than_the_wait_is_not_waited_for(dconn):
    query(dconn, "SET SESSION dynamic_filtering_wait_timeout = '1ms'")
    try:
        assert query(dconn, JOIN) == [(len(RED), sum(k % 97 for k in RED))]
        assert input_rows(dconn, JOIN) >= EVENTS
        sections, _ = analyzed(dconn, JOIN)
        assert "not applied (its keys took longer than dynamic_filtering_wait_timeout" in \
            sections["Dynamic filters"], sections
    finally:
        query(dconn, "RESET SESSION dynamic_filtering_wait_timeout")


def test_bad_settings_are_named(dconn):
    import adbc_driver_manager
    for sql, expected in [
        ("SET SESSION enable_dynamic_filtering = 'sometimes'", "expected true or false"),
        ("SET SESSION dynamic_filtering_wait_timeout = 'soon'", "a duration"),
        ("SET SESSION dynamic_filtering_max_distinct_values = -1", "a non-negative integer"),
        ("SET SESSION dynamic_filtering_max_reused_build_rows = 'many'", "a non-negative integer"),
    ]:
        with pytest.raises(adbc_driver_manager.Error, match=expected):
            query(dconn, sql)
