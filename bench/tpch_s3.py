"""TPC-H SF1 as Parquet on S3 (SeaweedFS on this machine): the 22 queries, best of 3 each, in
one run: Tributary standalone (2 executors) reading a Hive catalog over S3, DuckDB 1.5.5 with
httpfs, and DataFusion 55 (Python) in one process with its S3 object store — the same objects
for all three. Writes bench/results/tpch-s3.json with the sums and the ratios."""
import os
import sys
from pathlib import Path

import datafusion
import duckdb
import duckdb_extension_httpfs
import pyarrow as pa
import pyarrow.parquet as pq
from datafusion.object_store import AmazonS3

from cluster import REPO, Standalone, generate, write
from tpch_sf1 import TABLES, measure, queries

sys.path.insert(0, str(REPO / "tests" / "clients"))
from s3 import ACCESS_KEY, SECRET_KEY, S3Server  # noqa: E402

BUCKET = "tpch"


def sql_type(t: pa.DataType) -> str:
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INT"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    raise ValueError(f"no SQL type for {t}")


def upload(server: S3Server, data: Path) -> dict[str, pa.Schema]:
    server.client.create_bucket(Bucket=BUCKET)
    schemas = {}
    for t in TABLES:
        files = sorted((data / t).glob("*.parquet")) if (data / t).is_dir() else [data / f"{t}.parquet"]
        for f in files:
            server.client.upload_file(str(f), BUCKET, f"sf1/{t}/{f.name}")
        schemas[t] = pq.read_schema(files[0])
    return schemas


def main():
    data = generate(1)
    texts = queries()
    server = S3Server()
    results = {}
    try:
        schemas = upload(server, data)
        host = server.endpoint.removeprefix("http://")

        duck = duckdb.connect(config={"autoinstall_known_extensions": False, "allow_unsigned_extensions": True})
        ext = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / "v1.5.5" / "httpfs.duckdb_extension"
        duck.sql(f"LOAD '{ext}'")
        duck.sql(f"CREATE SECRET s3 (TYPE S3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', ENDPOINT '{host}', "
                 "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
        for t in TABLES:
            duck.sql(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('s3://{BUCKET}/sf1/{t}/*.parquet')")
        results["duckdb"] = measure("duckdb", lambda q: duck.sql(q).fetchall(), texts)
        # DuckDB keeps the objects it read in memory (its external file cache), so its best of 3
        # reads S3 once; measured again without that cache, as every other engine here reads.
        duck.sql("SET enable_external_file_cache = false")
        results["duckdb_uncached"] = measure("duckdb_uncached", lambda q: duck.sql(q).fetchall(), texts)

        ctx = datafusion.SessionContext()
        store = AmazonS3(bucket_name=BUCKET, region="us-east-1", access_key_id=ACCESS_KEY,
                         secret_access_key=SECRET_KEY, endpoint=server.endpoint, allow_http=True)
        ctx.register_object_store("s3://", store, BUCKET)
        for t in TABLES:
            ctx.register_parquet(t, f"s3://{BUCKET}/sf1/{t}/")
        results["datafusion"] = measure("datafusion", lambda q: ctx.sql(q).collect(), texts)

        cluster = Standalone(executors=2, catalogs={"hive": server.catalog(BUCKET)})
        try:
            conn = cluster.connect()
            cur = conn.cursor()
            cur.execute("CREATE SCHEMA IF NOT EXISTS hive.sf1")
            for t in TABLES:
                columns = ", ".join(f"{f.name} {sql_type(f.type)}" for f in schemas[t])
                cur.execute(f"CREATE TABLE hive.sf1.{t} ({columns}) "
                            f"WITH (format = 'PARQUET', external_location = 's3://{BUCKET}/sf1/{t}/')")
            cur.execute("USE hive.sf1")

            def run(q):
                cur.execute(q)
                cur.fetch_arrow_table()

            results["tributary"] = measure("tributary", run, texts)
            cur.close()
            conn.close()
        finally:
            cluster.stop()
    finally:
        server.stop()

    common = set.intersection(*(set(r["per_query_best_s"]) for r in results.values()))
    sums = {k: sum(v["per_query_best_s"][n] for n in common) for k, v in results.items()}
    write("tpch-s3", {
        "benchmark": "TPC-H SF1 on S3, 22 queries, best of 3, sum of best times (queries all engines ran)",
        "data": "tpchgen-cli 4.0.0 parquet, scale factor 1, 2 files per table, on SeaweedFS 4.48 (S3 API, "
                "loopback), the same objects for all engines",
        "tributary": "standalone, 2 executors, Flight SQL via ADBC, hive catalog (file metastore on S3), "
                     "external tables over the objects",
        "peers": "DuckDB 1.5.5 + httpfs (read_parquet over s3://; with its default external file cache, "
                 "which keeps the objects in memory after the first run, and without it), DataFusion 55 (Python) "
                 "with its S3 object store",
        "results": results,
        "queries_compared": sorted(common),
        "sum_best_s_compared": {k: round(v, 3) for k, v in sums.items()},
        "ratio_tributary_to_duckdb": round(sums["tributary"] / sums["duckdb"], 3),
        "ratio_tributary_to_duckdb_uncached": round(sums["tributary"] / sums["duckdb_uncached"], 3),
        "ratio_tributary_to_datafusion": round(sums["tributary"] / sums["datafusion"], 3),
        "target": "tributary <= 1.5x duckdb (httpfs) on S3",
    })


if __name__ == "__main__":
    main()
