"""The Kafka connector against a real Kafka-protocol broker (Tansu) through a multi-process
cluster: the seed's Question 2 verbatim (kafka.properties, etc/kafka/orders.json, both
queries) on a topic with several partitions, hidden internal columns, the join with products
in MariaDB, corrupt/empty/oversized messages, offset and time pushdown shown by read counts,
description files picked up while running, csv and raw decoders, and clear errors for a
broker that is down, a missing topic and a bad description file."""
import datetime
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import adbc_driver_manager
import pymysql
import pytest

from conftest import REPO, connect, query, running
from kafka import KafkaBroker

MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")

# The seed's description file, verbatim (as shipped in etc/).
SEED_ORDERS_JSON = (REPO / "etc" / "kafka" / "orders.json").read_text()

MIXED_JSON = {
    "tableName": "mixed", "topicName": "mixed",
    "key": {"dataFormat": "raw", "fields": [{"name": "key_id", "type": "integer", "mapping": "0:4", "dataFormat": "INT"}]},
    "message": {"dataFormat": "json", "fields": [
        {"name": "id", "type": "bigint"},
        {"name": "note", "type": "varchar"},
        {"name": "city", "type": "varchar", "mapping": "customer/address/city"},
        {"name": "placed", "type": "timestamp", "mapping": "placed", "dataFormat": "iso8601"},
    ]},
}

ORDERS = 240
BASE_TS = int(datetime.datetime(2025, 9, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000)


def order(i: int) -> dict:
    rng = random.Random(i)
    return {"order_id": i, "customer_id": rng.randint(1, 50), "product_id": rng.randint(1, 20),
            "quantity": rng.randint(1, 10), "order_date": f"2025-09-{1 + i % 28:02d}"}


@pytest.fixture(scope="module")
def broker():
    b = KafkaBroker()
    try:
        b.create_topic("orders", 3)
        orders = [order(i) for i in range(1, ORDERS + 1)]
        placed = b.produce("orders", [(json.dumps(o).encode(), None, None, BASE_TS + 1000 * i, i % 3)
                                      for i, o in enumerate(orders)])
        b.orders = [dict(o, _partition_id=p, _offset=off, _timestamp=ts)
                    for o, (p, off, ts) in zip(orders, placed)]
        yield b
    finally:
        b.stop()


def kafka_etc(broker: KafkaBroker, work: Path) -> Path:
    etc = work / "etc"
    (etc / "catalog").mkdir(parents=True)
    (etc / "kafka").mkdir()
    # The seed's kafka.properties, with the test broker for broker1/broker2.
    (etc / "catalog" / "kafka.properties").write_text(
        "connector.name=kafka\n"
        f"kafka.nodes={broker.bootstrap}\n"
        "kafka.default-schema=default\n"
        "kafka.table-names=orders,customers\n")
    # librdkafka settings: a fetch size far below the big test message, and one message per
    # produce request for INSERTs (Tansu's high-water mark counts only the first message of
    # the last batch).
    (etc / "kafka-client.properties").write_text("fetch.message.max.bytes=65536\nbatch.num.messages=1\n")
    (etc / "catalog" / "kafka_split.properties").write_text(
        f"connector.name=kafka\nkafka.nodes={broker.bootstrap}\nkafka.messages-per-split=7\n"
        "kafka.table-description-dir=etc/kafka\nkafka.hide-internal-columns=false\n"
        "kafka.config.resources=etc/kafka-client.properties\n")
    down = socket_port_closed()
    (etc / "catalog" / "kafka_down.properties").write_text(
        f"connector.name=kafka\nkafka.nodes=127.0.0.1:{down}\nkafka.table-names=orders\n"
        "kafka.connect-timeout=2s\n")
    (etc / "catalog" / "mysql.properties").write_text(
        "connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/kafkashop\n"
        "connection-user=root\nconnection-password=\n")
    (etc / "kafka" / "orders.json").write_text(SEED_ORDERS_JSON)
    (etc / "kafka" / "mixed.json").write_text(json.dumps(MIXED_JSON))
    return etc


def socket_port_closed() -> int:
    from ports import free_port
    return free_port()


@pytest.fixture(scope="module")
def kafka_cluster(request, broker):
    db = pymysql.connect(**MYSQL, autocommit=True)
    with db.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS kafkashop")
        cur.execute("CREATE DATABASE kafkashop")
        cur.execute("CREATE TABLE kafkashop.products (product_id BIGINT PRIMARY KEY, product_name VARCHAR(100), "
                    "category VARCHAR(50), price DECIMAL(10,2))")
        cur.executemany("INSERT INTO kafkashop.products VALUES (%s, %s, %s, %s)",
                        [(i, f"product {i}", ["tools", "toys", "food"][i % 3], f"{i * 1.25:.2f}")
                         for i in range(1, 21)])
    db.close()
    work = Path(tempfile.mkdtemp(prefix="tributary-kafka-"))
    # Relative description directories resolve against the directory holding etc/.
    yield from running(request, kafka_etc(broker, work), work)


@pytest.fixture
def kconn(kafka_cluster):
    c = connect(kafka_cluster.uri)
    yield c
    c.close()


def update(conn, sql) -> int:
    """Runs a statement as an update (Flight SQL's update path); rows affected."""
    with conn.cursor() as cur:
        cur.executemany(sql, None)
        return cur.rowcount


def plan_text(conn, sql) -> str:
    return "\n".join(str(r[-1]) for r in query(conn, sql))


def scan_rows(conn, sql) -> int:
    """Messages the Kafka scan read, from EXPLAIN ANALYZE's metrics of its DataSourceExec."""
    analyzed = plan_text(conn, "EXPLAIN ANALYZE " + sql)
    scans = [line for line in analyzed.splitlines() if "DataSourceExec" in line and "file_type=kafka" in line]
    assert scans, analyzed
    return sum(int(line.split("output_rows=")[1].split(",")[0].split("]")[0]) for line in scans)


def test_seed_query_with_filter(broker, kconn):
    rows = query(kconn, """SELECT order_id, customer_id, product_id, quantity, order_date
FROM kafka.default.orders
WHERE quantity > 5""")
    expected = sorted((o["order_id"], o["customer_id"], o["product_id"], o["quantity"], o["order_date"])
                      for o in broker.orders if o["quantity"] > 5)
    assert sorted(rows) == expected and len(expected) > 50


def test_seed_query_ordered_by_timestamp(broker, kconn):
    rows = query(kconn, """SELECT order_id, quantity, _partition_id, _offset, _timestamp
FROM kafka.default.orders
ORDER BY _timestamp DESC""")
    assert len(rows) == ORDERS
    assert len({r[2] for r in rows}) == 3   # several partitions
    expected = sorted(broker.orders, key=lambda o: -o["_timestamp"])
    got = [(r[0], r[1], r[2], r[3], int(r[4].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000))
           for r in rows]
    assert got == [(o["order_id"], o["quantity"], o["_partition_id"], o["_offset"], o["_timestamp"])
                   for o in expected]


def test_internal_columns_are_hidden_but_selectable(kconn, broker):
    with kconn.cursor() as cur:
        cur.execute("SELECT * FROM kafka.default.orders LIMIT 1")
        assert [d[0] for d in cur.description] == ["order_id", "customer_id", "product_id", "quantity", "order_date"]
        cur.fetchall()
    described = [r[0] for r in query(kconn, "DESCRIBE kafka.default.orders")]
    assert described == ["order_id", "customer_id", "product_id", "quantity", "order_date"]
    # Qualified and joined wildcards too.
    with kconn.cursor() as cur:
        cur.execute("SELECT o.*, p.product_name FROM kafka.default.orders o "
                    "JOIN mysql.kafkashop.products p ON o.product_id = p.product_id LIMIT 1")
        assert [d[0] for d in cur.description][:5] == described
        cur.fetchall()
    rows = query(kconn, "SELECT _message, _message_length, _partition_offset, _offset, _message_corrupt, _key "
                        "FROM kafka.default.orders WHERE order_id = 7")
    msg, length, offset, offset_alias, corrupt, key = rows[0]
    assert json.loads(msg) == order(7) and length == len(msg) and offset == offset_alias and corrupt is False
    assert key is None
    # With kafka.hide-internal-columns=false they are part of SELECT * (the alias _offset stays hidden).
    with kconn.cursor() as cur:
        cur.execute("SELECT * FROM kafka_split.default.orders LIMIT 1")
        names = [d[0] for d in cur.description]
        cur.fetchall()
    assert "_partition_id" in names and "_timestamp" in names and "_offset" not in names


def test_join_with_products_in_mariadb(broker, kconn):
    rows = query(kconn, """SELECT o.order_id, p.product_name, p.category, o.quantity * p.price AS total_value
FROM kafka.default.orders o
JOIN mysql.kafkashop.products p ON o.product_id = p.product_id
WHERE o.quantity > 5
ORDER BY o.order_id""")
    expected = [(o["order_id"], f"product {o['product_id']}", ["tools", "toys", "food"][o["product_id"] % 3],
                 round(o["quantity"] * o["product_id"] * 1.25, 2))
                for o in sorted(broker.orders, key=lambda o: o["order_id"]) if o["quantity"] > 5]
    assert [(r[0], r[1], r[2], float(r[3])) for r in rows] == expected


def test_splits_cover_every_message_once(broker, kconn):
    # 7 messages per split: many splits over both executors, each offset read exactly once.
    rows = query(kconn, "SELECT _partition_id, _partition_offset, order_id FROM kafka_split.default.orders")
    assert sorted(rows) == sorted((o["_partition_id"], o["_offset"], o["order_id"]) for o in broker.orders)
    explained = plan_text(kconn, "EXPLAIN SELECT count(*) FROM kafka_split.default.orders")
    assert "p0/0-7" in explained and "file_type=kafka" in explained


def test_offset_and_partition_filters_read_only_their_range(broker, kconn):
    sql = ("SELECT order_id FROM kafka.default.orders "
           "WHERE _partition_id = 1 AND _partition_offset >= 10 AND _partition_offset < 20")
    rows = query(kconn, sql)
    expected = sorted(o["order_id"] for o in broker.orders if o["_partition_id"] == 1 and 10 <= o["_offset"] < 20)
    assert sorted(r[0] for r in rows) == expected and len(expected) == 10
    assert scan_rows(kconn, sql) == 10
    assert "p1/10-20" in plan_text(kconn, "EXPLAIN " + sql)
    # IN lists and OR of ranges, through the _offset alias.
    sql = "SELECT count(*) FROM kafka.default.orders WHERE _partition_id IN (0, 2) AND (_offset < 3 OR _offset BETWEEN 50 AND 51)"
    assert query(kconn, sql) == [(10,)]
    assert scan_rows(kconn, sql) == 10
    # LIMIT stops reading early.
    assert len(query(kconn, "SELECT order_id FROM kafka.default.orders LIMIT 5")) == 5
    assert scan_rows(kconn, "SELECT order_id FROM kafka.default.orders LIMIT 5") <= 15


def test_timestamp_filter_reads_from_the_broker_offset(broker, kconn, kafka_cluster):
    # Tansu looks offsets up by receive time: stamp messages at send time, in two bursts.
    broker.create_topic("events", 2)
    (kafka_cluster.etc / "kafka" / "events.json").write_text(json.dumps({
        "tableName": "events", "topicName": "events",
        "message": {"dataFormat": "csv", "fields": [
            {"name": "id", "type": "bigint", "mapping": "0"},
            {"name": "kind", "type": "varchar", "mapping": "1"},
            {"name": "amount", "type": "decimal(10,2)", "mapping": "2"}]}}))
    early = broker.produce("events", [(f"{i},early,{i}.25".encode(), None, None, None, i % 2) for i in range(30)])
    time.sleep(1.5)
    cutoff = int(time.time() * 1000)
    time.sleep(0.2)
    late = broker.produce("events", [(f"{i},late,{i}.50".encode(), None, None, None, i % 2) for i in range(100, 120)])
    assert min(ts for _, _, ts in late) > cutoff > max(ts for _, _, ts in early)
    stamp = datetime.datetime.fromtimestamp(cutoff / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    sql = f"SELECT id, kind, amount FROM kafka.default.events WHERE _timestamp >= TIMESTAMP '{stamp}'"
    rows = query(kconn, sql)
    assert sorted((r[0], r[1], str(r[2])) for r in rows) == [(i, "late", f"{i}.50") for i in range(100, 120)]
    assert scan_rows(kconn, sql) == 20
    assert query(kconn, "SELECT count(*) FROM kafka.default.events") == [(50,)]


def test_corrupt_empty_and_oversized_messages(broker, kconn):
    broker.create_topic("mixed", 1)
    # Larger than the kafka_split catalog's fetch size (kafka.config.resources), below
    # Tansu's 1 MB message limit.
    big_note = "x" * (900 * 1024)
    messages = [
        (json.dumps({"id": 1, "note": "ok", "customer": {"address": {"city": "Oslo"}},
                     "placed": "2025-09-01T10:00:00Z"}).encode(), (1).to_bytes(4, "big")),
        (b'{"id": 2, "note": "truncated', (2).to_bytes(4, "big")),                        # corrupt JSON
        (b"", (3).to_bytes(4, "big")),                                                     # empty
        (None, (4).to_bytes(4, "big")),                                                    # tombstone
        (json.dumps({"id": 5, "note": big_note}).encode(), (5).to_bytes(4, "big")),          # oversized
        (json.dumps({"id": "five", "note": "bad type"}).encode(), (6).to_bytes(4, "big")),   # wrong type
        (json.dumps({"id": 7, "placed": "not a date"}).encode(), b"\x00"),                 # bad date, short key
        (json.dumps({"id": 8, "note": "headers"}).encode(), (8).to_bytes(4, "big"), [("trace", b"abc"), ("trace", b"def")]),
    ]
    broker.produce("mixed", messages)
    rows = query(kconn, "SELECT _partition_offset, id, note, city, placed, _message_corrupt, key_id, _key_corrupt, "
                        "_message_length FROM kafka.default.mixed ORDER BY _partition_offset")
    assert len(rows) == len(messages)
    by_offset = {r[0]: r[1:] for r in rows}
    assert by_offset[0][:6] == (1, "ok", "Oslo", datetime.datetime(2025, 9, 1, 10), False, 1)
    assert by_offset[1][:5] == (None, None, None, None, True) and by_offset[1][5] == 2
    assert by_offset[2][:5] == (None, None, None, None, False) and by_offset[2][7] == 0
    assert by_offset[3][:5] == (None, None, None, None, False)
    assert by_offset[4][0] == 5 and by_offset[4][1] == big_note and by_offset[4][4] is False
    assert by_offset[4][7] > 900 * 1024
    assert by_offset[5][:5] == (None, None, None, None, True)
    assert by_offset[6][:5] == (None, None, None, None, True) and by_offset[6][5:7] == (None, True)
    assert by_offset[7][:2] == (8, "headers") and by_offset[7][4] is False
    headers = query(kconn, "SELECT _headers FROM kafka.default.mixed WHERE _partition_offset = 7")[0][0]
    assert dict(headers) == {"trace": [b"abc", b"def"]}
    assert query(kconn, "SELECT count(*) FROM kafka.default.mixed WHERE _message_corrupt") == [(3,)]
    # The same through a catalog whose librdkafka fetch size is far below the big message.
    assert query(kconn, "SELECT count(*), max(_message_length), count(id) FROM kafka_split.default.mixed") == [
        (len(messages), by_offset[4][7], 3)]


def test_description_files_are_read_while_running(broker, kconn, kafka_cluster):
    broker.create_topic("clicks", 1)
    broker.produce("clicks", [(i.to_bytes(8, "big") + f"page{i}".encode(),) for i in range(5)])
    with pytest.raises(adbc_driver_manager.Error) as e:
        query(kconn, "SELECT * FROM kafka.default.clicks")
    assert "clicks" in str(e.value)
    (kafka_cluster.etc / "kafka" / "clicks.json").write_text(json.dumps({
        "tableName": "clicks", "topicName": "clicks",
        "message": {"dataFormat": "raw", "fields": [
            {"name": "n", "type": "bigint", "mapping": "0:8", "dataFormat": "LONG"},
            {"name": "page", "type": "varchar", "mapping": "8"}]}}))
    rows = query(kconn, "SELECT n, page FROM kafka.default.clicks ORDER BY n")
    assert rows == [(i, f"page{i}") for i in range(5)]
    assert ("clicks",) in query(kconn, "SHOW TABLES FROM kafka.default")


def test_bad_description_file_is_named(kconn, kafka_cluster):
    path = kafka_cluster.etc / "kafka" / "broken.json"
    path.write_text('{"tableName": "broken", "message": {"dataFormat": "json", "fields": '
                    '[{"name": "a", "type": "array(bigint)"}]}}')
    try:
        with pytest.raises(adbc_driver_manager.Error) as e:
            query(kconn, "SELECT * FROM kafka.default.broken")
        assert "broken.json" in str(e.value) and "array(bigint)" in str(e.value)
        # Other tables keep working.
        assert query(kconn, "SELECT count(*) FROM kafka.default.orders") == [(ORDERS,)]
    finally:
        path.unlink()


def test_missing_topic_and_broker_down_fail_fast_with_names(kconn):
    with pytest.raises(adbc_driver_manager.Error) as e:
        query(kconn, "SELECT _message FROM kafka.default.customers")
    text = str(e.value)
    assert "kafka" in text and "'customers'" in text and "does not exist" in text, text
    started = time.time()
    with pytest.raises(adbc_driver_manager.Error) as e:
        query(kconn, "SELECT count(*) FROM kafka_down.default.orders")
    text = str(e.value)
    assert time.time() - started < 30
    assert "kafka_down" in text and "'orders'" in text and "127.0.0.1:" in text, text


def test_insert_encodes_messages_with_the_description(broker, kconn, kafka_cluster):
    from confluent_kafka import Consumer, TopicPartition
    broker.create_topic("big_orders", 2)
    (kafka_cluster.etc / "kafka" / "big_orders.json").write_text(json.dumps({
        "tableName": "big_orders", "topicName": "big_orders",
        "key": {"dataFormat": "raw", "fields": [
            {"name": "order_id", "type": "bigint", "mapping": "0:8", "dataFormat": "LONG"}]},
        "message": {"dataFormat": "json", "fields": [
            {"name": "product", "type": "varchar", "mapping": "product/name"},
            {"name": "total", "type": "decimal(12,2)", "mapping": "total"},
            {"name": "day", "type": "date", "mapping": "day", "dataFormat": "iso8601"},
            {"name": "placed", "type": "timestamp", "mapping": "placed", "dataFormat": "milliseconds-since-epoch"}]}}))
    # kafka_split shows its internal columns (hide-internal-columns=false), so the INSERT names
    # the described ones, as in Trino.
    inserted = update(kconn, """INSERT INTO kafka_split.default.big_orders (order_id, product, total, day, placed)
SELECT o.order_id, p.product_name, o.quantity * p.price, DATE '2025-09-02', TIMESTAMP '2025-09-02 10:30:00'
FROM kafka.default.orders o JOIN mysql.kafkashop.products p ON o.product_id = p.product_id
WHERE o.quantity > 8""")
    big = sorted((o for o in broker.orders if o["quantity"] > 8), key=lambda o: o["order_id"])
    assert inserted == len(big)
    rows = query(kconn, "SELECT order_id, product, total, day, placed, _key_corrupt, _message_corrupt "
                        "FROM kafka_split.default.big_orders ORDER BY order_id")
    assert [(r[0], r[1], str(r[2]), r[3], r[4], r[5], r[6]) for r in rows] == [
        (o["order_id"], f"product {o['product_id']}", f"{o['quantity'] * o['product_id'] * 1.25:.2f}",
         datetime.date(2025, 9, 2), datetime.datetime(2025, 9, 2, 10, 30), False, False) for o in big]
    # Read back independently: the key is the 8-byte big-endian id, the value nested JSON.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check", "enable.auto.commit": False})
    consumer.assign([TopicPartition("big_orders", p, 0) for p in range(2)])
    seen = {}
    deadline = time.time() + 30
    while len(seen) < len(big) and time.time() < deadline:
        m = consumer.poll(1)
        if m is not None and m.error() is None:
            seen[int.from_bytes(m.key(), "big")] = json.loads(m.value())
    consumer.close()
    first = big[0]
    assert seen[first["order_id"]] == {"product": {"name": f"product {first['product_id']}"},
                                       "total": f"{first['quantity'] * first['product_id'] * 1.25:.2f}",
                                       "day": "2025-09-02", "placed": 1756809000000}
    # CSV: quoting survives the round trip; a row's _partition_id picks the partition.
    assert update(kconn, "INSERT INTO kafka.default.events (id, kind, amount, _partition_id) "
                         "VALUES (999, 'inserted, \"quoted\"', 1.5, 1)") == 1
    # Without a column list: the visible (described) columns, as in Trino.
    assert update(kconn, "INSERT INTO kafka.default.events VALUES (1000, 'plain', 2)") == 1
    assert query(kconn, "SELECT kind, amount FROM kafka.default.events WHERE id = 1000") == [("plain", 2)]
    rows = query(kconn, "SELECT kind, amount, _partition_id FROM kafka.default.events WHERE id = 999")
    assert [(r[0], str(r[1]), r[2]) for r in rows] == [('inserted, "quoted"', "1.50", 1)]
    with pytest.raises(adbc_driver_manager.Error) as e:
        query(kconn, "INSERT OVERWRITE kafka.default.events SELECT 1, 'x', 1.0")
    assert "append-only" in str(e.value) or "OVERWRITE" in str(e.value).upper()


def test_avro_messages_from_another_writer_and_from_insert(broker, kconn, kafka_cluster):
    import io
    import fastavro
    from confluent_kafka import Consumer, TopicPartition
    schema = {"type": "record", "name": "Order", "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
            {"name": "name", "type": ["null", "string"], "default": None}]}},
        {"name": "quantity", "type": "int"},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
    # dataSchema is relative to the description file's directory.
    (kafka_cluster.etc / "kafka" / "avro_orders.avsc").write_text(json.dumps(schema))
    (kafka_cluster.etc / "kafka" / "avro_orders.json").write_text(json.dumps({
        "tableName": "avro_orders", "topicName": "avro_orders",
        "message": {"dataFormat": "avro", "dataSchema": "avro_orders.avsc", "fields": [
            {"name": "order_id", "type": "bigint"},
            {"name": "name", "type": "varchar", "mapping": "customer/name"},
            {"name": "quantity", "type": "integer"},
            {"name": "placed", "type": "timestamp"}]}}))
    parsed = fastavro.parse_schema(schema)

    def container(record) -> bytes:
        buf = io.BytesIO()
        fastavro.writer(buf, parsed, [record])
        return buf.getvalue()

    placed = datetime.datetime(2025, 9, 1, 12, 0, tzinfo=datetime.timezone.utc)
    broker.create_topic("avro_orders", 1)
    broker.produce("avro_orders", [
        (container({"order_id": 1, "customer": {"name": "Ada"}, "quantity": 3, "placed": placed}),),
        (container({"order_id": 2, "customer": {"name": None}, "quantity": 9, "placed": placed}),),
        (b"Obj\x01 not an avro container",),
    ])
    rows = query(kconn, "SELECT order_id, name, quantity, placed, _message_corrupt FROM kafka.default.avro_orders "
                        "ORDER BY _partition_offset")
    naive = placed.replace(tzinfo=None)
    assert rows == [(1, "Ada", 3, naive, False), (2, None, 9, naive, False), (None, None, None, None, True)]
    # INSERT writes containers any Avro reader reads.
    assert update(kconn, "INSERT INTO kafka.default.avro_orders "
                         "VALUES (3, 'Zed', 4, TIMESTAMP '2025-09-02 08:00:00')") == 1
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "avro-check", "enable.auto.commit": False})
    consumer.assign([TopicPartition("avro_orders", 0, 3)])
    message = None
    deadline = time.time() + 30
    while message is None and time.time() < deadline:
        m = consumer.poll(1)
        if m is not None and m.error() is None:
            message = m.value()
    consumer.close()
    (record,) = list(fastavro.reader(io.BytesIO(message)))
    assert record == {"order_id": 3, "customer": {"name": "Zed"}, "quantity": 4,
                      "placed": datetime.datetime(2025, 9, 2, 8, 0, tzinfo=datetime.timezone.utc)}
    assert query(kconn, "SELECT name FROM kafka.default.avro_orders WHERE order_id = 3") == [("Zed",)]
