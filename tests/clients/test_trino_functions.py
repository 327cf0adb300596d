"""Trino's functions in queries over Flight SQL on the multi-process cluster: each query as a
Trino user writes it (if, year, date_diff, date_add, date_format, count_if, max_by, …), run
in stages on the executors, and its answer equal to DuckDB's own functions on the same rows."""
import adbc_driver_manager
import duckdb
import pytest

from conftest import connect, query
from test_errors import status_of


@pytest.fixture(scope="module")
def reference(cluster):
    """DuckDB with tpch.tiny's orders and lineitem as Tributary generates them."""
    con = duckdb.connect()
    conn = connect(cluster.uri)
    with conn.cursor() as cur:
        for t in ("orders", "lineitem"):
            cur.execute(f"SELECT * FROM tpch.tiny.{t}")
            con.register(f"{t}_arrow", cur.fetch_arrow_table())
            con.sql(f"CREATE TABLE {t} AS SELECT * FROM {t}_arrow")
    conn.close()
    return con


CASES = [
    (
        "SELECT year(o_orderdate) AS y, quarter(o_orderdate) AS q, count_if(o_orderpriority = '1-URGENT') AS urgent, "
        "max_by(o_orderkey, o_totalprice) AS dearest, min_by(o_orderkey, o_totalprice) AS cheapest "
        "FROM tpch.tiny.orders GROUP BY year(o_orderdate), quarter(o_orderdate) ORDER BY y, q",
        "SELECT year(o_orderdate) AS y, quarter(o_orderdate) AS q, count_if(o_orderpriority = '1-URGENT'), "
        "arg_max(o_orderkey, o_totalprice), arg_min(o_orderkey, o_totalprice) "
        "FROM orders GROUP BY 1, 2 ORDER BY y, q",
    ),
    (
        "SELECT if(o_totalprice > 200000, 'large', 'small') AS size, count(*) AS n "
        "FROM tpch.tiny.orders GROUP BY 1 ORDER BY 1",
        "SELECT CASE WHEN o_totalprice > 200000 THEN 'large' ELSE 'small' END AS size, count(*) "
        "FROM orders GROUP BY 1 ORDER BY 1",
    ),
    (
        "SELECT l_shipmode, count(*) AS late, max(date_diff('day', l_shipdate, l_receiptdate)) AS longest "
        "FROM tpch.tiny.lineitem WHERE date_diff('day', l_commitdate, l_receiptdate) > 20 "
        "GROUP BY l_shipmode ORDER BY l_shipmode",
        "SELECT l_shipmode, count(*), max(datediff('day', l_shipdate, l_receiptdate)) "
        "FROM lineitem WHERE datediff('day', l_commitdate, l_receiptdate) > 20 "
        "GROUP BY l_shipmode ORDER BY l_shipmode",
    ),
    (
        "SELECT count(*) FROM tpch.tiny.orders "
        "WHERE o_orderdate >= date_add('month', -3, DATE '1995-01-31') AND day_of_week(o_orderdate) = 7",
        "SELECT count(*) FROM orders "
        "WHERE o_orderdate >= DATE '1995-01-31' - INTERVAL 3 MONTH AND isodow(o_orderdate) = 7",
    ),
    (
        "SELECT date_format(o_orderdate, '%Y/%m') AS month, count(*) FROM tpch.tiny.orders "
        "WHERE year(o_orderdate) = 1996 GROUP BY 1 ORDER BY 1",
        "SELECT strftime(o_orderdate, '%Y/%m') AS month, count(*) FROM orders "
        "WHERE year(o_orderdate) = 1996 GROUP BY 1 ORDER BY 1",
    ),
    (
        "SELECT o_orderstatus, date_diff('month', min(o_orderdate), max(o_orderdate)) AS span, "
        "format_datetime(min(o_orderdate), 'yyyy-MM-dd') AS first "
        "FROM tpch.tiny.orders GROUP BY o_orderstatus ORDER BY 1",
        "SELECT o_orderstatus, datediff('month', min(o_orderdate), max(o_orderdate)) "
        "- CASE WHEN day(max(o_orderdate)) < day(min(o_orderdate)) THEN 1 ELSE 0 END, "
        "strftime(min(o_orderdate), '%Y-%m-%d') FROM orders GROUP BY o_orderstatus ORDER BY 1",
    ),
]


@pytest.mark.parametrize("trino, duck", CASES)
def test_trino_functions_answer_as_duckdbs_on_the_cluster(conn, reference, trino, duck):
    got = [tuple(r) for r in query(conn, trino)]
    expected = [tuple(r) for r in reference.sql(duck).fetchall()]
    assert got == expected, trino


def test_distributed_plans_hold_datafusions_functions(conn):
    rows = query(conn, "EXPLAIN SELECT count_if(year(o_orderdate) = 1996) FROM tpch.tiny.orders")
    text = "\n".join(" ".join(str(c) for c in r) for r in rows)
    assert "count(CASE WHEN" in text, text
    # year(x) = 1996 as DataFusion's date_part, whose preimage is a range of x: a predicate
    # that file statistics and the SQL connectors' pushdown understand.
    assert 'o_orderdate >= Date32("1996-01-01") AND tpch.tiny.orders.o_orderdate < Date32("1997-01-01")' in text, text
    assert typeof(conn, "year(o_orderdate)") == "bigint"
    assert typeof(conn, "o_totalprice") == "decimal(15,2)"
    assert typeof(conn, "o_orderdate") == "date"


def typeof(conn, expr):
    [(name,)] = query(conn, f"SELECT typeof({expr}) FROM tpch.tiny.orders LIMIT 1")
    return name


@pytest.mark.parametrize("sql, expected", [
    ("SELECT date_add('fortnight', 1, o_orderdate) FROM tpch.tiny.orders", "date_add: unknown unit 'fortnight'"),
    ("SELECT date_format(o_orderdate, '%D') FROM tpch.tiny.orders", "%D is not supported"),
    ("SELECT date_diff('day', o_orderdate) FROM tpch.tiny.orders", "function date_diff expects (unit, timestamp1, timestamp2)"),
])
def test_misused_functions_are_invalid_arguments_naming_the_mistake(conn, sql, expected):
    code, message = status_of(conn, sql)
    assert code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT, message
    assert expected in message


NATION_JSON = (
    "SELECT n_nationkey, '{\"nation\": {\"key\": ' || CAST(n_nationkey AS varchar) || ', \"name\": \"' "
    "|| n_name || '\"}, \"tags\": [' || CASE WHEN n_nationkey % 2 = 0 THEN '\"even\"' ELSE '\"odd\", 7' END "
    "|| ']}' AS doc FROM tpch.tiny.nation"
)


def test_json_functions_run_on_the_executors(conn):
    """JSON text made per row on the executors, read with Trino's JSON functions there (the
    codec carries them to the executors by name)."""
    rows = query(conn, "SELECT n_nationkey, json_extract_scalar(doc, '$.nation.key'), "
                       "json_extract_scalar(doc, '$[\"nation\"].name'), json_extract(doc, '$.tags'), "
                       "json_array_length(json_extract(doc, '$.tags')), "
                       "json_array_contains(json_extract(doc, '$.tags'), 'even'), json_size(doc, '$.nation'), "
                       f"json_extract_scalar(doc, '$.tags[1]') FROM ({NATION_JSON}) ORDER BY n_nationkey")
    names = dict(query(conn, "SELECT n_nationkey, n_name FROM tpch.tiny.nation"))
    assert len(rows) == 25
    for key, extracted, name, tags, length, even, size, second in rows:
        assert extracted == str(key) and name == names[key]
        assert tags == ('["even"]' if key % 2 == 0 else '["odd",7]')
        assert length == (1 if key % 2 == 0 else 2) and even == (key % 2 == 0) and size == 2
        assert second == (None if key % 2 == 0 else "7")
    [(count,)] = query(conn, f"SELECT count(*) FROM ({NATION_JSON}) WHERE json_extract_scalar(doc, '$.tags[0]') = 'odd'")
    assert count == 12


@pytest.mark.parametrize("sql, expected", [
    (f"SELECT json_extract_scalar(doc, 'nation.key') FROM ({NATION_JSON})", "invalid JSON path 'nation.key'"),
    ("SELECT json_parse(n_name) FROM tpch.tiny.nation", "json_parse: cannot convert value to JSON"),
])
def test_json_mistakes_are_named(conn, sql, expected):
    _, message = status_of(conn, sql)
    assert expected in message
