"""Kafka scan: 10 M JSON messages in the seed's orders shape on a Tansu broker, read by
`SELECT count(*) FROM kafka.default.orders WHERE quantity > 5` on Tributary standalone (the
seed's orders.json description, every message decoded), and, in the same run, by a plain
rdkafka consumer that decodes nothing (connectors/kafka/examples/plain_consumer.rs: the
limit). Reports messages/s and messages per CPU-second (per core) of both, best of 3, and
writes bench/results/kafka-scan.json. KAFKA_BENCH_MESSAGES changes the count."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cluster import REPO, Standalone, write

sys.path.insert(0, str(REPO / "tests" / "clients"))
from kafka import KafkaBroker  # noqa: E402

MESSAGES = int(os.environ.get("KAFKA_BENCH_MESSAGES", 10_000_000))
PARTITIONS = 4
RUNS = 3
TARGET = Path(os.environ.get("TRIBUTARY_RELEASE_TARGET", Path.home() / ".cache/tributary/target-release"))
SEED_ORDERS_JSON = (REPO / "etc" / "kafka" / "orders.json").read_text()


def produce(broker: KafkaBroker):
    p = broker.producer(**{"linger.ms": 50, "batch.num.messages": 10000, "enable.idempotence": False,
                           "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 1_048_576})
    started = time.time()
    for i in range(MESSAGES):
        value = ('{"order_id": %d, "customer_id": %d, "product_id": %d, "quantity": %d, "order_date": "2025-09-%02d"}'
                 % (i, i % 10007, i % 211, 1 + i % 10, 1 + i % 28))
        while True:
            try:
                p.produce("orders", value.encode(), partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.05)
        if i % 100_000 == 0:
            p.poll(0)
    p.flush(600)
    print(f"produced {MESSAGES} messages in {time.time() - started:.1f}s", flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plain(broker: KafkaBroker) -> dict:
    binary = TARGET / "release" / "examples" / "plain_consumer"
    out = subprocess.run([str(binary), broker.bootstrap, "orders"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def tributary(node: Standalone) -> dict:
    conn = node.connect()
    try:
        with conn.cursor() as cur:
            cpu0, t0 = cpu_seconds(node.proc.pid), time.perf_counter()
            cur.execute("SELECT count(*) FROM kafka.default.orders WHERE quantity > 5")
            (count,) = cur.fetchone()
            wall, cpu = time.perf_counter() - t0, cpu_seconds(node.proc.pid) - cpu0
            cur.execute("SELECT count(*) FROM kafka.default.orders")
            (messages,) = cur.fetchone()
    finally:
        conn.close()
    return {"messages": messages, "matching": count, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def rates(r: dict) -> dict:
    return dict(r, messages_per_s=round(r["messages"] / r["wall_s"]),
                messages_per_cpu_s=round(r["messages"] / max(r["cpu_s"], 1e-9)))


def best(runs: list[dict]) -> dict:
    return rates(min(runs, key=lambda r: r["wall_s"]))


def main():
    broker = KafkaBroker()
    try:
        broker.create_topic("orders", PARTITIONS)
        produce(broker)
        node = Standalone(executors=1, catalogs={
            "kafka": f"connector.name=kafka\nkafka.nodes={broker.bootstrap}\nkafka.default-schema=default\n"
                     "kafka.table-names=orders\n"},
            files={"kafka/orders.json": SEED_ORDERS_JSON})
        try:
            plain_runs, tributary_runs = [], []
            for _ in range(RUNS):
                plain_runs.append(plain(broker))
                tributary_runs.append(tributary(node))
                print(plain_runs[-1], tributary_runs[-1], flush=True)
        finally:
            node.stop()
    finally:
        broker.stop()
    p, t = best(plain_runs), best(tributary_runs)
    expected = sum(1 for i in range(MESSAGES) if 1 + i % 10 > 5)
    assert t["messages"] == p["messages"], (t, p)
    result = {
        "benchmark": "kafka-scan",
        "query": "SELECT count(*) FROM kafka.default.orders WHERE quantity > 5",
        "topic": {"messages_produced": MESSAGES, "partitions": PARTITIONS, "broker": "tansu 0.6.0 (memory storage)",
                  "matching_if_all_read": expected},
        "plain_rdkafka_consumer": p,
        "tributary": t,
        "ratio_wall": round(t["messages_per_s"] / p["messages_per_s"], 3),
        "ratio_per_core": round(t["messages_per_cpu_s"] / p["messages_per_cpu_s"], 3),
        "targets": {"decoded_messages_per_cpu_s": ">= 1000000", "of_plain_consumer_rate": ">= 0.5"},
        "runs": {"plain": plain_runs, "tributary": tributary_runs},
    }
    write("kafka-scan", result)


if __name__ == "__main__":
    main()
