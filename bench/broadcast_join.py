"""The seed's fourth question: a 1,000,000,000-row table joined with a 10,000-row table. Tributary
chooses the distribution itself (AUTOMATIC: the small side is broadcast), beside the same query
forced PARTITIONED (both sides shuffled), DataFusion in one process and DuckDB, in the same run
on the same Parquet files. Writes bench/results/broadcast-join.json.

Data (generated once into bench/data/join1b by DuckDB): facts(f_key INT uniform over the 10,000
keys, f_amount INT) in 16 files, dims(d_key INT, d_category VARCHAR: 25 categories). The query
joins every fact with its dimension row and sums per category, so all 1e9 rows go through the
join and only 25 rows come out."""
import os
from pathlib import Path

import datafusion
import duckdb

from cluster import DATA, Standalone, timed, write

FACTS = int(os.environ.get("JOIN_FACTS", 1_000_000_000))
DIMS = 10_000
FILES = 16
RUNS = int(os.environ.get("JOIN_RUNS", 2))

QUERY = """SELECT d.d_category, count(*) AS facts, sum(f.f_amount) AS amount
FROM {facts} f JOIN {dims} d ON f.f_key = d.d_key
GROUP BY d.d_category ORDER BY d.d_category"""


def generate() -> Path:
    out = DATA / ("join1b" if FACTS == 1_000_000_000 else f"join{FACTS}")
    marker = out / ".done"
    if marker.exists():
        return out
    (out / "facts").mkdir(parents=True, exist_ok=True)
    (out / "dims").mkdir(parents=True, exist_ok=True)
    db = duckdb.connect()
    per_file = FACTS // FILES
    for n in range(FILES):
        start = n * per_file
        stop = FACTS if n == FILES - 1 else start + per_file
        db.execute(f"""COPY (SELECT CAST(hash(i) % {DIMS} AS INT) AS f_key, CAST(i % 1000 AS INT) AS f_amount
                            FROM range({start}, {stop}) t(i))
                       TO '{out}/facts/part-{n:02}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1048576)""")
    db.execute(f"""COPY (SELECT CAST(i AS INT) AS d_key, 'category ' || (i % 25) AS d_category
                        FROM range({DIMS}) t(i))
                   TO '{out}/dims/part-0.parquet' (FORMAT parquet)""")
    marker.write_text("ok")
    return out


def main():
    data = generate()
    facts_glob, dims_glob = f"{data}/facts/*.parquet", f"{data}/dims/*.parquet"
    results = {}

    db = duckdb.connect()
    duck_sql = QUERY.format(facts=f"read_parquet('{facts_glob}')", dims=f"read_parquet('{dims_glob}')")
    best, runs, expected = timed(lambda: [tuple(r) for r in db.execute(duck_sql).fetchall()], RUNS)
    assert sum(r[1] for r in expected) == FACTS, expected
    results["duckdb"] = {"best_s": best, "runs_s": runs}
    db.close()

    ctx = datafusion.SessionContext()
    ctx.register_parquet("facts", f"{data}/facts/")
    ctx.register_parquet("dims", f"{data}/dims/")
    df_sql = QUERY.format(facts="facts", dims="dims")
    best, runs, rows = timed(lambda: [tuple(r.values()) for r in ctx.sql(df_sql).to_pylist()], RUNS)
    assert rows == expected, (rows, expected)
    results["datafusion"] = {"best_s": best, "runs_s": runs, "version": datafusion.__version__}
    del ctx

    metastore = Path(DATA / "join-metastore")
    cluster = Standalone(executors=2, catalogs={
        "hive": f"connector.name=hive\nhive.metastore=file\nhive.metastore.catalog.dir=file://{metastore}\n",
    })
    try:
        conn = cluster.connect()
        cur = conn.cursor()

        def sql(text):
            cur.execute(text)
            return [tuple(r) for r in cur.fetchall()]

        sql("CREATE SCHEMA IF NOT EXISTS hive.bench")
        sql("DROP TABLE IF EXISTS hive.bench.facts")
        sql("DROP TABLE IF EXISTS hive.bench.dims")
        sql(f"CREATE TABLE hive.bench.facts (f_key INT, f_amount INT) "
            f"WITH (format = 'PARQUET', external_location = 'file://{data}/facts/')")
        sql(f"CREATE TABLE hive.bench.dims (d_key INT, d_category VARCHAR) "
            f"WITH (format = 'PARQUET', external_location = 'file://{data}/dims/')")
        tributary_sql = QUERY.format(facts="hive.bench.facts", dims="hive.bench.dims")
        explain = "\n".join(r[1] for r in sql("EXPLAIN (TYPE DISTRIBUTED) " + tributary_sql))
        chosen = next(line for line in explain.splitlines() if line.startswith("Join "))
        assert ": BROADCAST" in chosen and "reason: statistics" in chosen, chosen
        best, runs, rows = timed(lambda: sql(tributary_sql), RUNS)
        assert rows == expected, (rows, expected)
        results["tributary_automatic"] = {"best_s": best, "runs_s": runs, "explain": chosen}
        sql("SET SESSION join_distribution_type = 'PARTITIONED'")
        explain = "\n".join(r[1] for r in sql("EXPLAIN (TYPE DISTRIBUTED) " + tributary_sql))
        chosen = next(line for line in explain.splitlines() if line.startswith("Join "))
        assert ": PARTITIONED" in chosen, chosen
        best, runs, rows = timed(lambda: sql(tributary_sql), runs=1)
        assert rows == expected, (rows, expected)
        results["tributary_partitioned"] = {"best_s": best, "runs_s": runs, "explain": chosen}
        cur.close()
        conn.close()
    finally:
        cluster.stop()

    automatic = results["tributary_automatic"]["best_s"]
    write("broadcast-join", {
        "benchmark": "1e9-row facts JOIN 10e3-row dims, summed per category (25 rows out); best of "
                     f"{RUNS} (forced PARTITIONED: 1 run)",
        "query": QUERY.format(facts="facts", dims="dims"),
        "data": f"{FACTS:,} facts in {FILES} Parquet files, {DIMS:,} dims, generated by DuckDB; same "
                "files for every engine",
        "tributary": "standalone, 2 executors, release build, Flight SQL via ADBC, hive catalog",
        "results": results,
        "ratios": {
            "partitioned_over_broadcast": round(results["tributary_partitioned"]["best_s"] / automatic, 2),
            "broadcast_over_datafusion": round(automatic / results["datafusion"]["best_s"], 2),
            "broadcast_over_duckdb": round(automatic / results["duckdb"]["best_s"], 2),
        },
        "targets": {"partitioned_over_broadcast": ">= 3", "broadcast_over_datafusion": "<= 1.5"},
    })


if __name__ == "__main__":
    main()
