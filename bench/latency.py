"""Small-query latency over Flight SQL: a point query on tpch.tiny, 100 runs after 10 warm-up
runs, through ADBC on one connection; beside the same query in DataFusion in one process on the
same rows. Writes bench/results/latency.json."""
import statistics
import time

import datafusion

from cluster import Standalone, write

SQL = "SELECT n_name FROM tpch.tiny.nation WHERE n_nationkey = 3"
WARMUP, RUNS = 10, 100


def percentiles(samples):
    s = sorted(samples)
    pick = lambda p: s[min(len(s) - 1, int(round(p * (len(s) - 1))))]
    return {"p50_ms": round(pick(0.5) * 1e3, 3), "p90_ms": round(pick(0.9) * 1e3, 3), "p99_ms": round(pick(0.99) * 1e3, 3),
            "mean_ms": round(statistics.mean(s) * 1e3, 3)}


def timed(run):
    for _ in range(WARMUP):
        run()
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def main():
    cluster = Standalone(executors=2)
    try:
        conn = cluster.connect()
        cur = conn.cursor()

        def tributary():
            cur.execute(SQL)
            assert cur.fetchall() == [("CANADA",)]

        tributary_stats = timed(tributary)
        cur.execute("SELECT * FROM tpch.tiny.nation")
        nation = cur.fetch_arrow_table()
        cur.close()
        conn.close()
    finally:
        cluster.stop()
    ctx = datafusion.SessionContext()
    ctx.register_record_batches("nation", [nation.to_batches()])
    local_sql = SQL.replace("tpch.tiny.nation", "nation")
    datafusion_stats = timed(lambda: ctx.sql(local_sql).collect())
    write("latency", {
        "benchmark": f"point query, {WARMUP} warm-up + {RUNS} timed runs, one connection",
        "query": SQL,
        "tributary": {"how": "standalone, 2 executors, ADBC over Flight SQL (prepare + execute + fetch)", **tributary_stats},
        "datafusion": {"how": "DataFusion 55 Python, one process, same 25 rows in memory", **datafusion_stats},
        "ratio_p50_tributary_to_datafusion": round(tributary_stats["p50_ms"] / datafusion_stats["p50_ms"], 2),
        "target": "tributary p50 <= 10 ms",
        "target_met": tributary_stats["p50_ms"] <= 10.0,
    })


if __name__ == "__main__":
    main()
