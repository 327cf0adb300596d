"""All 22 TPC-H queries on tpch.tiny through Flight SQL on a multi-process cluster, each answer
equal to DuckDB's on the same data: DuckDB reads the rows Tributary's tpch connector generates
(tpchgen; its text columns differ from DuckDB's own dbgen), and runs DuckDB's own query texts."""
import datetime
import decimal
import os

import duckdb
import duckdb_extension_tpch
import pytest

from conftest import connect

TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]


@pytest.fixture(scope="module")
def reference(cluster):
    ext = os.path.join(os.path.dirname(duckdb_extension_tpch.__file__), "extensions", "v1.5.5", "tpch.duckdb_extension")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "allow_unsigned_extensions": True})
    con.sql(f"LOAD '{ext}'")
    queries = dict(con.sql("SELECT query_nr, query FROM tpch_queries()").fetchall())
    conn = connect(cluster.uri)
    with conn.cursor() as cur:
        for t in TABLES:
            cur.execute(f"SELECT * FROM tpch.tiny.{t}")
            table = cur.fetch_arrow_table()
            con.register(f"{t}_arrow", table)
            con.sql(f"CREATE TABLE {t} AS SELECT * FROM {t}_arrow")
    conn.close()
    counts = {t: con.sql(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert counts["lineitem"] == 60_175 and counts["orders"] == 15_000 and counts["nation"] == 25
    return con, queries


def normalise(value):
    if isinstance(value, (decimal.Decimal, float)):
        return float(value)
    return value


def rows_equal(got, expected):
    if len(got) != len(expected):
        return False
    for g, e in zip(got, expected):
        if len(g) != len(e):
            return False
        for a, b in zip(g, e):
            # A decimal answer is exact to its scale (avg of decimal(15,2) is decimal(19,6)
            # in DataFusion, a double in DuckDB): allow one unit in its last place.
            scale = min([x.as_tuple().exponent for x in (a, b) if isinstance(x, decimal.Decimal)] or [0])
            a, b = normalise(a), normalise(b)
            if isinstance(a, float) and isinstance(b, float):
                tolerance = max(1e-9 * max(1.0, abs(a), abs(b)), 10.0 ** scale if scale < 0 else 0.0)
                if abs(a - b) > tolerance:
                    return False
            elif a != b:
                return False
    return True


@pytest.mark.parametrize("number", range(1, 23))
def test_tpch_query_matches_duckdb(cluster, reference, number):
    con, queries = reference
    sql = queries[number]
    expected = con.sql(sql).fetchall()
    conn = connect(cluster.uri)
    try:
        with conn.cursor() as cur:
            cur.execute("USE tpch.tiny")
            cur.execute(sql)
            got = cur.fetchall()
    finally:
        conn.close()
    if "order by" not in sql.lower():
        got, expected = sorted(got, key=repr), sorted(expected, key=repr)
    assert rows_equal(got, expected), f"Q{number}: got {got[:3]}… ({len(got)} rows), expected {expected[:3]}… ({len(expected)} rows)"


def test_explain_distributed_q3_has_stages(cluster, reference):
    _, queries = reference
    conn = connect(cluster.uri)
    try:
        with conn.cursor() as cur:
            cur.execute("USE tpch.tiny")
            explained = {}
            for n, sql in queries.items():
                cur.execute("EXPLAIN (TYPE DISTRIBUTED) " + sql)
                explained[n] = cur.fetchall()
    finally:
        conn.close()
    rows = explained[3]
    stages = [r for r in rows if r[0].startswith("Stage ")]
    assert len(stages) > 1, rows
    text = "\n".join(r[1] for r in rows)
    assert "ShuffleWriterExec" in text and "UnresolvedShuffleExec" in text
    assert "file_type=tpch" in text
    # Every join drawn as it will run: tpch.tiny's small sides broadcast (collected once),
    # the others hash joins over two shuffles; never DataFusion's sort-merge join.
    assert "HashJoinExec: mode=CollectLeft" in text, text
    for n, rows in explained.items():
        text = "\n".join(r[1] for r in rows)
        assert any(r[0].startswith("Stage ") for r in rows), (n, rows)
        assert "SortMergeJoin" not in text, (n, text)
