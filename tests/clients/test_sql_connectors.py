"""The SQL database connectors against the real MariaDB and PostgreSQL servers (and an SQLite
file), through a multi-process cluster: the seed's federated query, pushdown visible in
EXPLAIN and equal to no pushdown, type mapping, parallel splits, writes, and bad inputs."""
import datetime
import decimal
import random
import shutil
import tempfile
import time
from pathlib import Path

import adbc_driver_manager
import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, Cluster, connect, mysql_run, query, running
from seed import question_1

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"
SCHEMA = "tributary_it"

CATALOGS = {
    "mysql": "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/productsdb\n"
             "connection-user=root\nconnection-password=\n",
    "mysql_nopush": "connector.name=mariadb\nconnection-url=jdbc:mariadb://127.0.0.1:3306\n"
                    "connection-user=root\nfilter-pushdown.enabled=false\n",
    "mysql_split": "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306\n"
                   "connection-user=root\nsplit.min-rows=500\n",
    "postgresql": "connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:5432/test\n"
                  "connection-user=postgres\nsplit.min-rows=500\n",
    "postgresql_nopush": "connector.name=postgresql\nconnection-url=postgresql://127.0.0.1/test\n"
                         "connection-user=postgres\nfilter-pushdown.enabled=false\n",
    "postgresql_varchar": "connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:5432/test\n"
                          "connection-user=postgres\nunsupported-type-handling=CONVERT_TO_VARCHAR\n",
    "mysql_down": "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:1/productsdb\n"
                  "connection-user=root\nconnection-password=hunter2\nconnection-timeout=3s\n",
    "mysql_badpass": "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/productsdb\n"
                     "connection-user=root\nconnection-password=not-the-password\n",
}


def pg_run(*statements):
    with psycopg.connect(PG, autocommit=True) as conn:
        with conn.cursor() as cur:
            for s in statements:
                if isinstance(s, tuple):
                    cur.executemany(s[0], s[1])
                else:
                    cur.execute(s)
            return cur.fetchall() if cur.description else None


@pytest.fixture(scope="module")
def sql_cluster(request):
    mysql_run("DROP DATABASE IF EXISTS productsdb", "CREATE DATABASE productsdb",
              f"DROP DATABASE IF EXISTS {SCHEMA}", f"CREATE DATABASE {SCHEMA}")
    pg_run(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE", f"CREATE SCHEMA {SCHEMA}")
    work = Path(tempfile.mkdtemp(prefix="tributary-sql-"))
    etc = work / "etc"
    (etc / "catalog").mkdir(parents=True)
    shutil.copy(REPO / "etc" / "catalog" / "tpch.properties", etc / "catalog")
    catalogs = dict(CATALOGS)
    catalogs["sqlite"] = f"connector.name=sqlite\nconnection-url=jdbc:sqlite:{work / 'it.db'}\n"
    catalogs["sqlite_nopush"] = catalogs["sqlite"] + "filter-pushdown.enabled=false\n"
    for name, text in catalogs.items():
        (etc / "catalog" / f"{name}.properties").write_text(text)
    yield from running(request, etc, work)


@pytest.fixture
def sconn(sql_cluster):
    c = connect(sql_cluster.uri)
    yield c
    c.close()


def arrow(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def failure(conn, sql):
    with pytest.raises(adbc_driver_manager.Error) as err:
        query(conn, sql)
    return err.value.status_code, str(err.value)


# --- the seed's Question 1 -------------------------------------------------------------------

SEED_CREATE_PRODUCTS = """CREATE TABLE mysql.productsdb.products (
      product_id BIGINT,
      product_name VARCHAR,
      price DECIMAL(10,2),
      category VARCHAR
  )"""


def seed_data(work: Path):
    rng = random.Random(7)
    products = [(i, f"product {i}", decimal.Decimal(rng.randint(100, 99999)) / 100,
                 rng.choice(["tools", "toys", "books", "garden"])) for i in range(1, 501)]
    start = datetime.date(2024, 6, 1)
    n = 20_000
    orders = pa.table({
        "order_id": pa.array(range(1, n + 1), pa.int64()),
        "product_id": pa.array([rng.randint(1, 550) for _ in range(n)], pa.int64()),
        "customer_id": pa.array([rng.randint(1, 2000) for _ in range(n)], pa.int64()),
        "quantity": pa.array([rng.randint(1, 20) for _ in range(n)], pa.int32()),
        "order_date": pa.array([start + datetime.timedelta(days=rng.randint(0, 540)) for _ in range(n)],
                               pa.date32()),
    })
    orders_dir = work / "orders"
    orders_dir.mkdir(exist_ok=True)
    pq.write_table(orders.slice(0, n // 2), orders_dir / "part-0.parquet")
    pq.write_table(orders.slice(n // 2), orders_dir / "part-1.parquet")
    return products, orders, orders_dir


def test_seed_question_1_federated_join(sconn, sql_cluster):
    products, orders, orders_dir = seed_data(sql_cluster.work)
    # The seed's DDL, verbatim, creates the MariaDB table; the products arrive through MariaDB.
    query(sconn, SEED_CREATE_PRODUCTS)
    mysql_run(("INSERT INTO products VALUES (%s, %s, %s, %s)", products), database="productsdb")
    # Orders are local Parquet until the Hive connector exists (issue 4).
    query(sconn, f"CREATE EXTERNAL TABLE memory.default.seed_orders STORED AS PARQUET LOCATION '{orders_dir}/'")
    got = arrow(sconn, question_1(orders="memory.default.seed_orders"))

    duck = duckdb.connect()
    duck.register("orders_src", orders)
    duck.register("products_src", pa.table({
        "product_id": pa.array([p[0] for p in products], pa.int64()),
        "product_name": [p[1] for p in products],
        "price": pa.array([p[2] for p in products], pa.decimal128(10, 2)),
        "category": [p[3] for p in products],
    }))
    expected = duck.sql(question_1(orders="orders_src", products="products_src")).arrow()
    if isinstance(expected, pa.RecordBatchReader):
        expected = expected.read_all()
    assert got.num_rows == expected.num_rows > 1000
    assert pa.types.is_decimal(got.schema.field("total_value").type)
    key = ["order_date", "order_id"]
    got_rows = sorted(got.to_pylist(), key=lambda r: [r[k] for k in key])
    exp_rows = sorted(expected.to_pylist(), key=lambda r: [r[k] for k in key])
    assert got_rows == exp_rows
    # ORDER BY order_date DESC holds across the result's partitions.
    dates = got.column("order_date").to_pylist()
    assert dates == sorted(dates, reverse=True)
    # total_value is exact: quantity * price, no float rounding.
    row = got_rows[0]
    price = next(p[2] for p in products if p[1] == row["product_name"])
    assert row["total_value"] == price * row["quantity"]


def test_explain_shows_remote_sql_with_projection(sconn, sql_cluster):
    plan = "\n".join(str(r) for r in query(sconn, "EXPLAIN " + question_1(orders="memory.default.seed_orders")))
    assert "remote_sql=" in plan
    assert "SELECT `product_id`, `product_name`, `price`, `category` FROM `productsdb`.`products`" in plan
    plan = "\n".join(str(r) for r in query(
        sconn, "EXPLAIN SELECT product_name FROM mysql.productsdb.products WHERE price > 100 AND category = 'toys'"))
    assert "SELECT `product_name`, `category` FROM `productsdb`.`products` WHERE (`price` > ?)" in plan \
        or "SELECT `product_name`, `category` FROM `productsdb`.`products` WHERE (`category` = ?) AND (`price` > ?)" in plan, plan


# --- pushdown conformance: the same answers with and without pushdown, on every database ---------

CONFORMANCE_ROWS = [
    (1, 10, "apple", decimal.Decimal("1.50"), datetime.date(2025, 1, 1), 1.5, True),
    (2, 20, "Apple", decimal.Decimal("2.25"), datetime.date(2025, 2, 1), -2.0, False),
    (3, None, "banana", None, datetime.date(2025, 3, 1), None, None),
    (4, 40, None, decimal.Decimal("-4.00"), None, 4.25, True),
    (5, 50, "apple ", decimal.Decimal("5.55"), datetime.date(2024, 12, 31), 0.0, False),
    (6, -60, "cherry%", decimal.Decimal("0.00"), datetime.date(2025, 6, 30), 1e10, True),
]

CONFORMANCE_FILTERS = [
    "i > 15", "i >= 20 AND i < 50", "i = 10 OR i IS NULL", "NOT (i > 15)", "i <> 20",
    "i IN (10, 40, 70)", "i NOT IN (10, 40)", "i BETWEEN 0 AND 45", "i NOT BETWEEN 0 AND 45",
    "i IS NULL", "i IS NOT NULL", "name = 'apple'", "name <> 'apple'", "name IN ('apple', 'cherry%')",
    "name LIKE 'app%'", "name LIKE '%\\%%' ESCAPE '\\'", "name > 'b'", "price > 1.5", "price = 0",
    "price IS NULL", "d >= DATE '2025-01-01'", "d < DATE '2025-02-15' OR d IS NULL", "f > 1.0",
    "flag", "NOT flag", "flag = false", "(i > 10 AND name = 'Apple') OR price < 0",
    "CAST(i AS BIGINT) > 15", "id + 1 > 3",
]


def conformance_table(conn, catalog, schema):
    query(conn, f"DROP TABLE IF EXISTS {catalog}.{schema}.conf")
    query(conn, f"CREATE TABLE {catalog}.{schema}.conf (id BIGINT NOT NULL, i INT, name VARCHAR, "
                f"price DECIMAL(10,2), d DATE, f DOUBLE, flag BOOLEAN)")
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else
                        (f"'{v}'" if isinstance(v, str) else
                         f"DATE '{v}'" if isinstance(v, datetime.date) else
                         ("true" if v else "false") if isinstance(v, bool) else
                         f"CAST({v} AS DECIMAL(10,2))" if isinstance(v, decimal.Decimal) else str(v))
                        for v in row) + ")"
        for row in CONFORMANCE_ROWS)
    query(conn, f"INSERT INTO {catalog}.{schema}.conf VALUES {values}")


@pytest.mark.parametrize("catalog, schema", [
    ("mysql_split", SCHEMA), ("postgresql", SCHEMA), ("sqlite", "main")])
def test_pushdown_equals_no_pushdown(sconn, catalog, schema):
    conformance_table(sconn, catalog, schema)
    nopush = f"{catalog.split('_')[0]}_nopush"
    for where in CONFORMANCE_FILTERS:
        sql = f"SELECT id, i, name, price, d, f, flag FROM {{}}.{schema}.conf WHERE {where} ORDER BY id"
        pushed = query(sconn, sql.format(catalog))
        plain = query(sconn, sql.format(nopush))
        assert pushed == plain, f"{catalog}: WHERE {where}"
    # limit and top-N
    for sql in ["SELECT id FROM {}.%s.conf LIMIT 3" % schema,
                "SELECT id FROM {}.%s.conf ORDER BY price DESC NULLS LAST LIMIT 2" % schema,
                "SELECT count(*), sum(price), min(d), max(name) FROM {}.%s.conf" % schema,
                "SELECT flag, count(*), avg(i) FROM {}.%s.conf GROUP BY flag ORDER BY flag NULLS FIRST" % schema]:
        pushed, plain = query(sconn, sql.format(catalog)), query(sconn, sql.format(nopush))
        assert len(pushed) == len(plain) and (("LIMIT 3" in sql) or pushed == plain), sql
    plan = "\n".join(str(r) for r in query(sconn, f"EXPLAIN SELECT id FROM {catalog}.{schema}.conf WHERE i > 15 LIMIT 2"))
    assert "remote_sql=" in plan and "LIMIT 2" in plan and "params=[15]" in plan, plan
    # Aggregates and top-N the database computes exactly are sent whole; same answers.
    pushed_queries = {
        "SELECT i, count(*), count(f), sum(i), min(d), max(id) FROM {}.%s.conf WHERE id > 1 GROUP BY i ORDER BY i NULLS FIRST": "GROUP BY",
        # DataFusion turns a single DISTINCT into a two-level aggregate: the inner one goes remote.
        "SELECT count(DISTINCT i), sum(id), min(f), max(d) FROM {}.%s.conf": "GROUP BY",
        "SELECT id, i FROM {}.%s.conf ORDER BY i DESC NULLS FIRST, id LIMIT 3": "ORDER BY",
        "SELECT id, d FROM {}.%s.conf WHERE id < 6 ORDER BY d ASC NULLS LAST, id DESC LIMIT 4": "LIMIT 4",
    }
    if catalog != "sqlite":
        pushed_queries["SELECT flag, sum(price), min(price) FROM {}.%s.conf GROUP BY flag ORDER BY flag NULLS FIRST"] = "SUM("
    # Joins of two tables of the same catalog run in the database.
    joins = {
        f"SELECT a.id, b.i, a.d FROM {{0}}.{schema}.conf a JOIN {{0}}.{schema}.conf b ON a.id = b.id "
        f"WHERE a.i > 0 AND b.id < 6 ORDER BY a.id": " JOIN ",
        f"SELECT a.id, b.id FROM {{0}}.{schema}.conf a LEFT JOIN {{0}}.{schema}.conf b ON a.i = b.i "
        f"ORDER BY a.id, b.id": "LEFT JOIN",
    }
    for sql, marker in joins.items():
        assert query(sconn, sql.format(catalog)) == query(sconn, sql.format(nopush)), sql
        plan = "\n".join(str(r) for r in query(sconn, "EXPLAIN " + sql.format(catalog)))
        assert marker in plan and "remote_sql" in plan, plan
    for sql, marker in pushed_queries.items():
        sql = sql % schema
        assert query(sconn, sql.format(catalog)) == query(sconn, sql.format(nopush)), sql
        plan = "\n".join(str(r) for r in query(sconn, "EXPLAIN " + sql.format(catalog)))
        assert marker in plan, plan


# --- type mapping ---------------------------------------------------------------------------------

def test_mysql_types_round_trip(sconn):
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.types",
              f"""CREATE TABLE {SCHEMA}.types (
                    b TINYINT(1), t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, m MEDIUMINT, i INT,
                    iu INT UNSIGNED, g BIGINT, gu BIGINT UNSIGNED, fl FLOAT, db DOUBLE, dc DECIMAL(10,2),
                    wide DECIMAL(38,4), vc VARCHAR(20), tx TEXT, ch CHAR(3), en ENUM('a','b'), bin VARBINARY(4),
                    bl BLOB, dt DATE, tm TIME, dtm DATETIME(6), ts TIMESTAMP(3) NULL, js JSON, geo POINT)""",
              f"""INSERT INTO {SCHEMA}.types VALUES (1, -5, 250, -300, 70000, -2000000000, 4000000000,
                    -9000000000000000000, 18000000000000000000, 1.5, 2.25, 12345678.90,
                    1234567890123456789012345678901234.5678, 'héllo', 'text', 'abc', 'b', x'01ff', x'00',
                    '2025-09-01', '12:34:56', '2025-09-01 12:34:56.123456', '2025-09-01 10:00:00.123',
                    '{{"k": 1}}', POINT(1, 2))""",
              f"INSERT INTO {SCHEMA}.types (b) VALUES (NULL)")
    table = arrow(sconn, f"SELECT * FROM mysql_split.{SCHEMA}.types ORDER BY i NULLS LAST")
    types = {f.name: f.type for f in table.schema}
    assert "geo" not in types  # unsupported: left out (unsupported-type-handling=IGNORE)
    assert types["b"] == pa.bool_() and types["tu"] == pa.int16() and types["iu"] == pa.int64()
    assert types["gu"] == pa.decimal128(20, 0) and types["dc"] == pa.decimal128(10, 2)
    assert types["wide"] == pa.decimal128(38, 4) and types["dtm"] == pa.timestamp("us")
    assert types["ts"] == pa.timestamp("us", tz="UTC")
    row = table.to_pylist()[0]
    assert row["b"] is True and row["t"] == -5 and row["tu"] == 250 and row["m"] == 70000
    assert row["iu"] == 4000000000 and row["g"] == -9000000000000000000
    assert row["gu"] == decimal.Decimal("18000000000000000000")
    assert row["dc"] == decimal.Decimal("12345678.90")
    assert row["wide"] == decimal.Decimal("1234567890123456789012345678901234.5678")
    assert row["vc"] == "héllo" and row["ch"] == "abc" and row["en"] == "b" and row["bin"] == b"\x01\xff"
    assert row["dt"] == datetime.date(2025, 9, 1) and row["tm"] == datetime.time(12, 34, 56)
    assert row["dtm"] == datetime.datetime(2025, 9, 1, 12, 34, 56, 123456)
    assert row["js"].replace(" ", "") == '{"k":1}'
    assert all(v is None for v in table.to_pylist()[1].values())


def test_postgresql_types_round_trip(sconn):
    pg_run(f"DROP TABLE IF EXISTS {SCHEMA}.types",
           f"DROP TYPE IF EXISTS {SCHEMA}.mood",
           f"CREATE TYPE {SCHEMA}.mood AS ENUM ('sad', 'happy')",
           f"""CREATE TABLE {SCHEMA}.types (b BOOLEAN, s SMALLINT, i INTEGER, g BIGINT, r REAL,
                 d DOUBLE PRECISION, n NUMERIC(12,3), big NUMERIC(30,2), free NUMERIC, vc VARCHAR(10),
                 tx TEXT, ch CHAR(3), by BYTEA, dt DATE, tm TIME, ts TIMESTAMP(3), tz TIMESTAMPTZ,
                 js JSONB, u UUID, mo {SCHEMA}.mood, ia INTEGER[], ta TEXT[], iv INTERVAL)""",
           f"""INSERT INTO {SCHEMA}.types VALUES (true, -2, 3, 40000000000, 1.5, 2.5, 123456789.125,
                 1234567890123456789012345678.91, 1.5, 'v', 'text', 'ab', '\\x01ff', '2025-09-01',
                 '01:02:03.5', '2025-09-01 12:00:00.123', '2025-09-01 12:00:00+02', '{{"a": [1]}}',
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '{{1,NULL,3}}', '{{x,y}}', '1 day')""",
           f"INSERT INTO {SCHEMA}.types (b) VALUES (NULL)")
    table = arrow(sconn, f"SELECT * FROM postgresql.{SCHEMA}.types ORDER BY b NULLS LAST")
    types = {f.name: f.type for f in table.schema}
    assert "free" not in types and "iv" not in types  # unbounded NUMERIC, INTERVAL: unsupported
    assert types["n"] == pa.decimal128(12, 3) and types["big"] == pa.decimal128(30, 2)
    assert types["ia"] == pa.list_(pa.int32()) and types["tz"] == pa.timestamp("us", tz="UTC")
    row = table.to_pylist()[0]
    assert row["b"] is True and row["s"] == -2 and row["g"] == 40000000000 and row["r"] == 1.5
    assert row["n"] == decimal.Decimal("123456789.125")
    assert row["big"] == decimal.Decimal("1234567890123456789012345678.91")
    assert row["ch"] == "ab " and row["by"] == b"\x01\xff"
    # char(n) compares without trailing blanks in PostgreSQL: its filters stay in Tributary.
    assert query(sconn, f"SELECT ch FROM postgresql.{SCHEMA}.types WHERE ch = 'ab'") == []
    assert query(sconn, f"SELECT ch FROM postgresql.{SCHEMA}.types WHERE ch = 'ab '") == [("ab ",)] and row["tm"] == datetime.time(1, 2, 3, 500000)
    assert row["tz"] == datetime.datetime(2025, 9, 1, 10, 0, tzinfo=datetime.timezone.utc)
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and row["mo"] == "happy"
    assert row["ia"] == [1, None, 3] and row["ta"] == ["x", "y"]
    assert '"a"' in row["js"]
    assert all(v is None for v in table.to_pylist()[1].values())
    # unsupported-type-handling=CONVERT_TO_VARCHAR reads them as the database's text.
    converted = arrow(sconn, f"SELECT free, iv FROM postgresql_varchar.{SCHEMA}.types ORDER BY b NULLS LAST")
    assert converted.schema.field("iv").type == pa.string()
    assert converted.to_pylist()[0] == {"free": "1.5", "iv": "1 day"}


# --- parallel reads ---------------------------------------------------------------------------------

def test_parallel_splits_read_every_row_once(sconn):
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.big",
              f"CREATE TABLE {SCHEMA}.big (id INT PRIMARY KEY, v BIGINT)",
              (f"INSERT INTO {SCHEMA}.big VALUES (%s, %s)", [(i * 3, i) for i in range(1, 5001)]))
    pg_run(f"DROP TABLE IF EXISTS {SCHEMA}.big",
           f"CREATE TABLE {SCHEMA}.big AS SELECT g * 3 AS id, g::int8 AS v FROM generate_series(1, 5000) g",
           f"ANALYZE {SCHEMA}.big")
    mysql_run(f"ANALYZE TABLE {SCHEMA}.big")
    for catalog, key in (("mysql_split", "split_by=id"), ("postgresql", "split_by=ctid")):
        # Expressions keep the aggregate in Tributary, so the scan itself is split.
        plan = "\n".join(str(r) for r in query(sconn, f"EXPLAIN SELECT sum(v + 0) FROM {catalog}.{SCHEMA}.big"))
        assert key in plan, plan
        assert "1 group" not in plan, plan
        assert query(sconn, f"SELECT count(*), sum(v + 0), count(DISTINCT id + 0) FROM {catalog}.{SCHEMA}.big") == \
            [(5000, 5000 * 5001 // 2, 5000)]
    # The PostgreSQL splits read one exported snapshot; its transaction ends with the query.
    idle = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tributary' " \
           "AND state LIKE 'idle in transaction%'"
    deadline = time.time() + 5
    while pg_run(idle) != [(0,)] and time.time() < deadline:
        time.sleep(0.1)
    assert pg_run(idle) == [(0,)]


# --- writes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("catalog, schema", [("mysql_split", SCHEMA), ("postgresql", SCHEMA), ("sqlite", "main")])
def test_ctas_insert_and_drop(sconn, catalog, schema):
    query(sconn, f"DROP TABLE IF EXISTS {catalog}.{schema}.nation_copy")
    query(sconn, f"CREATE TABLE {catalog}.{schema}.nation_copy AS "
                 f"SELECT n_nationkey, n_name, n_regionkey FROM tpch.tiny.nation")
    query(sconn, f"INSERT INTO {catalog}.{schema}.nation_copy "
                 f"SELECT n_nationkey + 100, n_name, n_regionkey FROM tpch.tiny.nation WHERE n_regionkey = 1")
    assert query(sconn, f"SELECT count(*), sum(n_nationkey) FROM {catalog}.{schema}.nation_copy") == [(30, 300 + 5 * 100 + 1 + 2 + 3 + 17 + 24)]
    assert ("nation_copy",) in query(sconn, f"SHOW TABLES FROM {catalog}.{schema}")
    query(sconn, f"DROP TABLE {catalog}.{schema}.nation_copy")
    assert ("nation_copy",) not in query(sconn, f"SHOW TABLES FROM {catalog}.{schema}")


def test_failed_insert_leaves_nothing(sconn):
    query(sconn, f"DROP TABLE IF EXISTS postgresql.{SCHEMA}.strict")
    pg_run(f"CREATE TABLE {SCHEMA}.strict (id BIGINT, v BIGINT CHECK (v < 20))")
    code, message = failure(sconn, f"INSERT INTO postgresql.{SCHEMA}.strict "
                                   f"SELECT n_nationkey AS id, n_nationkey AS v FROM tpch.tiny.nation")
    assert f"postgresql.{SCHEMA}.strict" in message and "nothing was written" in message, message
    assert pg_run(f"SELECT count(*) FROM {SCHEMA}.strict") == [(0,)]
    # A CTAS whose write fails (PostgreSQL rejects NUL in text) leaves no table behind.
    code, message = failure(sconn, f"CREATE TABLE postgresql.{SCHEMA}.with_nul AS "
                                   f"SELECT n_nationkey, n_name || chr(0) AS n FROM tpch.tiny.nation")
    assert "with_nul" in message and "nothing was written" in message, message
    assert pg_run(f"SELECT count(*) FROM pg_tables WHERE schemaname = '{SCHEMA}' AND tablename = 'with_nul'") == [(0,)]


def test_create_and_drop_schema(sconn):
    mysql_run("DROP DATABASE IF EXISTS tributary_new")
    query(sconn, "CREATE SCHEMA mysql.tributary_new")
    assert ("tributary_new",) in query(sconn, "SHOW SCHEMAS FROM mysql")
    query(sconn, "DROP SCHEMA mysql.tributary_new")
    assert ("tributary_new",) not in query(sconn, "SHOW SCHEMAS FROM mysql")


# --- bad input ----------------------------------------------------------------------------------------

def test_unreachable_database_names_host_and_catalog(sconn):
    code, message = failure(sconn, "SELECT * FROM mysql_down.productsdb.products")
    assert "mysql_down" in message and "127.0.0.1:1" in message, message
    assert "hunter2" not in message
    assert code == adbc_driver_manager.AdbcStatusCode.IO, (code, message)


def test_metadata_of_an_unreachable_database(sconn):
    code, message = failure(sconn, "SHOW SCHEMAS FROM mysql_down")
    assert "mysql_down" in message and "127.0.0.1:1" in message and "hunter2" not in message, message
    # A listing over every catalog shows the unreachable one without schemas (and logs why).
    objects = {o["catalog_name"]: o["catalog_db_schemas"] or []
               for o in sconn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()}
    assert objects["mysql_split"] and not objects["mysql_down"]


def test_wrong_password(sconn):
    code, message = failure(sconn, "SELECT * FROM mysql_badpass.productsdb.products")
    assert "mysql_badpass" in message and "refused the login of user 'root'" in message, message
    assert "not-the-password" not in message


def test_table_and_column_removed_after_planning(sconn):
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.vanishing",
              f"CREATE TABLE {SCHEMA}.vanishing (id INT, gone INT)",
              f"INSERT INTO {SCHEMA}.vanishing VALUES (1, 2)")
    with sconn.cursor() as cur:
        cur.adbc_prepare(f"SELECT id, gone FROM mysql_split.{SCHEMA}.vanishing")
        mysql_run(f"ALTER TABLE {SCHEMA}.vanishing DROP COLUMN gone")
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.execute(f"SELECT id, gone FROM mysql_split.{SCHEMA}.vanishing")
            cur.fetchall()
        assert "gone" in str(err.value), str(err.value)
    mysql_run(f"DROP TABLE {SCHEMA}.vanishing")
    code, message = failure(sconn, f"SELECT * FROM mysql_split.{SCHEMA}.vanishing")
    assert code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND and "vanishing" in message


def test_hostile_identifiers_are_only_names(sconn):
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.keep", f"CREATE TABLE {SCHEMA}.keep (x INT)",
              f"INSERT INTO {SCHEMA}.keep VALUES (7)")
    evil = "evil`; DROP TABLE keep; --"
    query(sconn, f'CREATE TABLE mysql_split.{SCHEMA}."{evil}" ("we`ird; col" BIGINT)')
    query(sconn, f'INSERT INTO mysql_split.{SCHEMA}."{evil}" VALUES (1), (2)')
    assert query(sconn, f'SELECT sum("we`ird; col") FROM mysql_split.{SCHEMA}."{evil}" '
                        f"WHERE \"we`ird; col\" > 0") == [(3,)]
    assert mysql_run(f"SELECT x FROM {SCHEMA}.keep") == ((7,),)
    query(sconn, f'DROP TABLE mysql_split.{SCHEMA}."{evil}"')
    assert mysql_run(f"SELECT x FROM {SCHEMA}.keep") == ((7,),)
    # A filter value that looks like SQL is only a value.
    assert query(sconn, f"SELECT count(*) FROM mysql_split.{SCHEMA}.keep WHERE x = 7 OR "
                        f"CAST(x AS VARCHAR) = '1; DROP TABLE keep'") == [(1,)]


def test_value_that_does_not_fit(sconn):
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.narrow", f"CREATE TABLE {SCHEMA}.narrow (v DECIMAL(4,1))")
    code, message = failure(sconn, f"INSERT INTO mysql_split.{SCHEMA}.narrow SELECT 123456.5")
    assert "narrow" in message or "Decimal" in message or "precision" in message, message
    assert mysql_run(f"SELECT count(*) FROM {SCHEMA}.narrow") == ((0,),)
    # Values the database holds that the mapped type cannot: MariaDB's TIME beyond a day,
    # PostgreSQL's infinite dates. The query fails naming the table (never drops rows).
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.long_time", f"CREATE TABLE {SCHEMA}.long_time (t TIME)",
              f"INSERT INTO {SCHEMA}.long_time VALUES ('838:59:59')")
    code, message = failure(sconn, f"SELECT t FROM mysql_split.{SCHEMA}.long_time")
    assert f"{SCHEMA}.long_time" in message and "column t" in message, message
    pg_run(f"DROP TABLE IF EXISTS {SCHEMA}.forever", f"CREATE TABLE {SCHEMA}.forever (d DATE)",
           f"INSERT INTO {SCHEMA}.forever VALUES ('2025-01-01'), ('infinity')")
    code, message = failure(sconn, f"SELECT d FROM postgresql.{SCHEMA}.forever")
    assert f"{SCHEMA}.forever" in message and "represent" in message, message


def test_mixed_case_remote_names(sconn):
    mysql_run(f"DROP TABLE IF EXISTS {SCHEMA}.MixedCase",
              f"CREATE TABLE {SCHEMA}.MixedCase (Id INT, `Name` VARCHAR(10))",
              f"INSERT INTO {SCHEMA}.MixedCase VALUES (1, 'x')")
    # Shown lower-cased, as Trino does; the one remote name that matches is found.
    assert ("mixedcase",) in query(sconn, f"SHOW TABLES FROM mysql_split.{SCHEMA}")
    assert query(sconn, f"SELECT id, name FROM mysql_split.{SCHEMA}.mixedcase WHERE id = 1") == [(1, "x")]
    mysql_run(f"DROP TABLE {SCHEMA}.MixedCase")
