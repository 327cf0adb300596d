"""The seed's data at the W2 scale, shared by the benchmarks of the seed's question: 10 M
orders as Parquet on S3 (13 monthly year=/month= directories, September 2024 to September
2025) and 100 K products in MariaDB (database w2products)."""
import datetime
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql

ORDERS = 10_000_000
PRODUCTS = 100_000
BUCKET = "w2-orders"
MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")

CREATE_ORDERS = ("CREATE TABLE hive.default.orders (order_id BIGINT, product_id BIGINT, "
                 "customer_id BIGINT, quantity INT, order_date DATE) "
                 f"WITH (format = 'PARQUET', external_location = 's3a://{BUCKET}/orders/')")
MYSQL_CATALOG = ("connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/w2products\n"
                 "connection-user=root\nconnection-password=\n")


def months():
    return [datetime.date(2024 + (8 + i) // 12, (8 + i) % 12 + 1, 1) for i in range(13)]


def upload_orders(server):
    rng = np.random.default_rng(11)
    per_month = ORDERS // len(months())
    first = 1
    for month in months():
        n = per_month if month != months()[-1] else ORDERS - per_month * (len(months()) - 1)
        days = rng.integers(0, 28, n)
        table = pa.table({
            "order_id": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "product_id": pa.array(rng.integers(1, PRODUCTS + 1, n, dtype=np.int64)),
            "customer_id": pa.array(rng.integers(1, 1_000_000, n, dtype=np.int64)),
            "quantity": pa.array(rng.integers(1, 50, n, dtype=np.int32)),
            "order_date": pa.array(np.datetime64(month.isoformat()) + days.astype("timedelta64[D]")),
        })
        table = table.set_column(4, "order_date", table["order_date"].cast(pa.date32()))
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=256 * 1024)
        server.put(BUCKET, f"orders/year={month.year}/month={month.month}/part-0.parquet", buf.getvalue())
        first += n


def load_products():
    db = pymysql.connect(**MYSQL, autocommit=True)
    with db.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS w2products")
        cur.execute("CREATE DATABASE w2products")
        cur.execute("CREATE TABLE w2products.products (product_id BIGINT PRIMARY KEY, "
                    "product_name VARCHAR(100), price DECIMAL(10,2), category VARCHAR(50))")
        rows = [(i, f"product {i}", f"{1 + (i * 37) % 50000 / 100:.2f}", f"category {i % 40}")
                for i in range(1, PRODUCTS + 1)]
        for start in range(0, len(rows), 5000):
            cur.executemany("INSERT INTO w2products.products VALUES (%s, %s, %s, %s)",
                            rows[start:start + 5000])
    db.close()
