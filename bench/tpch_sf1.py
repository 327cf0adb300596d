"""TPC-H SF1: the 22 queries, best of 3 each, on the same Parquet files (tpchgen-cli), in one
run: Tributary standalone (2 executors) over Flight SQL, DataFusion in one process (Python
package 55) and DuckDB. Writes bench/results/tpch-sf1.json with the sums and the ratios."""
import os
import time

import datafusion
import duckdb
import duckdb_extension_tpch

from cluster import Standalone, generate, write

TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
RUNS = 3


def queries() -> dict[int, str]:
    ext = os.path.join(os.path.dirname(duckdb_extension_tpch.__file__), "extensions", "v1.5.5", "tpch.duckdb_extension")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "allow_unsigned_extensions": True})
    con.sql(f"LOAD '{ext}'")
    return dict(con.sql("SELECT query_nr, query FROM tpch_queries()").fetchall())


def best_of(run, sql) -> tuple[float | None, str | None]:
    best = None
    for _ in range(RUNS):
        started = time.perf_counter()
        try:
            run(sql)
        except Exception as e:
            return None, f"{type(e).__name__}: {str(e)[:300]}"
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, None


def measure(name, run, texts) -> dict:
    per_query, failures = {}, {}
    for n, sql in texts.items():
        seconds, error = best_of(run, sql)
        if error:
            failures[n] = error
        else:
            per_query[n] = round(seconds, 4)
        print(f"{name} Q{n}: {seconds if seconds is not None else error}", flush=True)
    return {"per_query_best_s": per_query, "failures": failures, "sum_best_s": round(sum(per_query.values()), 3)}


def main():
    data = generate(1)
    texts = queries()
    results = {}

    duck = duckdb.connect()
    for t in TABLES:
        duck.sql(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}/*.parquet')" if (data / t).is_dir()
                 else f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}.parquet')")
    results["duckdb"] = measure("duckdb", lambda q: duck.sql(q).fetchall(), texts)

    ctx = datafusion.SessionContext()
    for t in TABLES:
        ctx.register_parquet(t, str(data / t) if (data / t).is_dir() else str(data / f"{t}.parquet"))
    results["datafusion"] = measure("datafusion", lambda q: ctx.sql(q).collect(), texts)

    cluster = Standalone(executors=2)
    try:
        conn = cluster.connect()
        cur = conn.cursor()
        for t in TABLES:
            location = f"{data / t}/" if (data / t).is_dir() else str(data / f"{t}.parquet")
            cur.execute(f"CREATE EXTERNAL TABLE memory.default.{t} STORED AS PARQUET LOCATION '{location}'")
        cur.execute("USE memory.default")
        # Extra session settings to compare (e.g. "hash_partition_count=4"), recorded in the results.
        for setting in filter(None, os.environ.get("TRIBUTARY_BENCH_SESSION", "").split(",")):
            name, value = setting.split("=", 1)
            cur.execute(f"SET SESSION {name.strip()} = '{value.strip()}'")

        def run(q):
            cur.execute(q)
            cur.fetch_arrow_table()

        results["tributary"] = measure("tributary", run, texts)
        cur.close()
        conn.close()
    finally:
        cluster.stop()

    common = set(results["tributary"]["per_query_best_s"]) & set(results["datafusion"]["per_query_best_s"]) & set(results["duckdb"]["per_query_best_s"])
    sums = {k: sum(v["per_query_best_s"][n] for n in common) for k, v in results.items()}
    write("tpch-sf1", {
        "benchmark": "TPC-H SF1, 22 queries, best of 3, sum of best times (queries all engines ran)",
        "data": "tpchgen-cli 4.0.0 parquet, scale factor 1, same files for all engines",
        "tributary": "standalone, 2 executors, Flight SQL via ADBC, tables by CREATE EXTERNAL TABLE",
        "tributary_session": os.environ.get("TRIBUTARY_BENCH_SESSION", ""),
        "results": results,
        "queries_compared": sorted(common),
        "sum_best_s_compared": {k: round(v, 3) for k, v in sums.items()},
        "ratio_tributary_to_datafusion": round(sums["tributary"] / sums["datafusion"], 3),
        "ratio_tributary_to_duckdb": round(sums["tributary"] / sums["duckdb"], 3),
        "target": "tributary <= 1.3x datafusion",
    })


if __name__ == "__main__":
    main()
