"""Full scan of TPC-H lineitem SF1 (6 M rows, 16 columns) out of the same PostgreSQL and
MariaDB servers, in rows/s, in one run:
  - Tributary standalone (2 executors) reading the table through its SQL catalogs (parallel
    splits), aggregating every column inside Tributary;
  - DuckDB with its postgres_scanner / mysql_scanner extensions, the same query;
  - the databases' own fastest export to /dev/null as the limit: PostgreSQL's
    `COPY (SELECT * …) TO STDOUT (FORMAT binary)`, MariaDB's `mysql --quick` text protocol;
    and the CPU seconds PostgreSQL's backend spends on that COPY (from /proc): the bound any
    reader on the same cores meets.
Best of 3 each. Writes bench/results/sql-scan.json."""
import os
import subprocess
import time
from pathlib import Path

import duckdb
import duckdb_extension_mysql_scanner
import duckdb_extension_postgres_scanner
import psycopg
import pymysql

from cluster import Standalone, generate, write

ROWS = 6_001_215
RUNS = 3
SCHEMA = "tributary_bench"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
# Every column is read and used; the expressions keep any engine from answering from metadata.
QUERY = """SELECT count(*), sum(l_orderkey + l_partkey + l_suppkey + l_linenumber),
  sum(l_quantity + l_extendedprice + l_discount + l_tax),
  max(l_returnflag || l_linestatus || l_shipinstruct || l_shipmode || l_comment),
  max(l_shipdate), max(l_commitdate), max(l_receiptdate)
FROM {table}"""
LINEITEM_DDL = """(l_orderkey BIGINT NOT NULL, l_partkey BIGINT, l_suppkey BIGINT, l_linenumber INT NOT NULL,
  l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2), l_tax DECIMAL(15,2),
  l_returnflag VARCHAR(1), l_linestatus VARCHAR(1), l_shipdate DATE, l_commitdate DATE, l_receiptdate DATE,
  l_shipinstruct VARCHAR(25), l_shipmode VARCHAR(10), l_comment VARCHAR(44), PRIMARY KEY (l_orderkey, l_linenumber))"""


def duck():
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "allow_unsigned_extensions": True})
    con.sql("SET enable_progress_bar = false")
    for module, name in ((duckdb_extension_postgres_scanner, "postgres_scanner"), (duckdb_extension_mysql_scanner, "mysql_scanner")):
        con.load_extension(os.path.join(os.path.dirname(module.__file__), "extensions", "v1.5.5", f"{name}.duckdb_extension"))
    return con


def load(parquet: Path):
    """Loads lineitem into both servers once (the row count tells whether it is there)."""
    with psycopg.connect(PG_DSN, autocommit=True) as pg:
        have = pg.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'lineitem'", (SCHEMA,)).fetchone()[0]
        if not have or pg.execute(f"SELECT count(*) FROM {SCHEMA}.lineitem").fetchone()[0] != ROWS:
            pg.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            pg.execute(f"CREATE SCHEMA {SCHEMA}")
            pg.execute(f"CREATE TABLE {SCHEMA}.lineitem {LINEITEM_DDL}")
            con = duck()
            con.sql(f"ATTACH '{PG_DSN}' AS pg (TYPE postgres)")
            con.sql(f"INSERT INTO pg.{SCHEMA}.lineitem SELECT * FROM read_parquet('{parquet}/**/*.parquet')")
            pg.execute(f"VACUUM ANALYZE {SCHEMA}.lineitem")
    my = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True, local_infile=True)
    with my.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
        cur.execute(f"SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{SCHEMA}' AND TABLE_NAME = 'lineitem'")
        have = cur.fetchone()[0] and (cur.execute(f"SELECT count(*) FROM {SCHEMA}.lineitem") or cur.fetchone()[0] == ROWS)
        if not have:
            csv = parquet.parent / "lineitem.csv"
            duck().sql(f"COPY (SELECT * FROM read_parquet('{parquet}/**/*.parquet')) TO '{csv}' (HEADER false, DELIMITER '|')")
            cur.execute(f"DROP TABLE IF EXISTS {SCHEMA}.lineitem")
            cur.execute(f"CREATE TABLE {SCHEMA}.lineitem {LINEITEM_DDL}")
            cur.execute(f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE {SCHEMA}.lineitem FIELDS TERMINATED BY '|'")
            cur.execute(f"ANALYZE TABLE {SCHEMA}.lineitem")
            csv.unlink()
    my.close()


def best(run):
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a local process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(seconds):
    return {"seconds": round(seconds, 3), "rows_per_second": round(ROWS / seconds)}


def main():
    data = generate(1, ["lineitem"]) / "lineitem"
    load(data)
    catalogs = {
        "postgresql": "connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:5432/test\nconnection-user=postgres\n",
        "mysql": "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306\nconnection-user=root\n",
    }
    results = {}
    cluster = Standalone(executors=2, catalogs=catalogs)
    try:
        conn = cluster.connect()
        cur = conn.cursor()

        def tributary(catalog):
            def run():
                cur.execute(QUERY.format(table=f"{catalog}.{SCHEMA}.lineitem"))
                assert cur.fetchall()[0][0] == ROWS
            return run

        for catalog in ("postgresql", "mysql"):
            tributary(catalog)()  # warm-up (connections, metadata)
            results[catalog] = {"tributary": rate(best(tributary(catalog)))}
            print(catalog, results[catalog], flush=True)
        cur.close()
        conn.close()
    finally:
        cluster.stop()

    con = duck()
    con.sql(f"ATTACH '{PG_DSN}' AS pg (TYPE postgres, READ_ONLY)")
    con.sql(f"ATTACH 'host=127.0.0.1 user=root port=3306 database={SCHEMA}' AS my (TYPE mysql, READ_ONLY)")
    for catalog, table in (("postgresql", f"pg.{SCHEMA}.lineitem"), ("mysql", f"my.{SCHEMA}.lineitem")):
        results[catalog]["duckdb"] = rate(best(lambda: con.sql(QUERY.format(table=table)).fetchall()))

    backend_cpu = []

    def pg_copy():
        with psycopg.connect(PG_DSN) as pg, pg.cursor() as c:
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            before = process_cpu(pid)
            with c.copy(f"COPY (SELECT * FROM {SCHEMA}.lineitem) TO STDOUT (FORMAT binary)") as copy:
                for _ in copy:
                    pass
            backend_cpu.append(process_cpu(pid) - before)
    results["postgresql"]["copy_binary_to_devnull"] = rate(best(pg_copy))
    # The server's own cost: with it on the same cores, no reader can beat this bound.
    cpu = min(backend_cpu)
    results["postgresql"]["copy_binary_backend_cpu_s"] = round(cpu, 2)
    results["postgresql"]["rows_per_second_bound_on_these_cores"] = round(ROWS / (cpu / (os.cpu_count() or 1)))

    def mysql_dump():
        with open(os.devnull, "wb") as null:
            subprocess.run(["mysql", "-h127.0.0.1", "-uroot", "--quick", "-e", f"SELECT * FROM {SCHEMA}.lineitem"],
                           stdout=null, check=True)
    results["mysql"]["mysql_client_to_devnull"] = rate(best(mysql_dump))

    targets = {"postgresql": 1_600_000, "mysql": 1_200_000}
    for catalog, r in results.items():
        t = r["tributary"]["rows_per_second"]
        r["ratio_to_duckdb"] = round(t / r["duckdb"]["rows_per_second"], 3)
        r["target_rows_per_second"] = targets[catalog]
        r["meets_target"] = t >= targets[catalog] and t >= r["duckdb"]["rows_per_second"]
    write("sql-scan", {"benchmark": "TPC-H SF1 lineitem full scan from PostgreSQL 15 and MariaDB 10.11 on this machine",
                       "query": QUERY, "rows": ROWS, "runs": f"best of {RUNS}", "results": results})
    for catalog, r in results.items():
        print(catalog, r)


if __name__ == "__main__":
    main()
