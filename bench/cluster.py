"""Shared parts of the benchmarks: the Tributary standalone process, the data, the machine."""
import json
import os
import platform
import signal
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = BENCH / "data"
RESULTS = BENCH / "results"
BIN = os.environ.get("TRIBUTARY_BIN") or str(
    Path(os.environ.get("TRIBUTARY_RELEASE_TARGET", Path.home() / ".cache/tributary/target-release")) / "release" / "tributary"
)


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "clients"))
from ports import free_port  # noqa: E402  (one source of ports for tests and benchmarks)


def generate(scale: int, tables: list[str] | None = None) -> Path:
    """Parquet files from tpchgen-cli (identical to dbgen), generated once."""
    out = DATA / f"sf{scale}"
    marker = out / ".done"
    if not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        # Two files per table: every engine can read a table with two scans in parallel.
        args = ["tpchgen-cli", "parquet", "-s", str(scale), f"--output-dir={out}", "--parts=2"]
        if tables:
            args.append(f"--tables={','.join(tables)}")
        subprocess.run(args, check=True, env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"})
        marker.write_text("ok")
    return out


class Standalone:
    """`tributary standalone` with two executors, from the release binary."""

    def __init__(self, executors: int = 2, catalogs: dict[str, str] | None = None,
                 files: dict[str, str] | None = None):
        self.port = free_port()
        self.uri = f"grpc://127.0.0.1:{self.port}"
        etc = Path(tempfile.mkdtemp(prefix="tributary-bench-etc-"))
        (etc / "catalog").mkdir()
        (etc / "catalog" / "tpch.properties").write_text((REPO / "etc/catalog/tpch.properties").read_text())
        for name, text in (catalogs or {}).items():
            (etc / "catalog" / f"{name}.properties").write_text(text)
        for path, text in (files or {}).items():  # other files under etc/ (etc/kafka/*.json)
            (etc / path).parent.mkdir(parents=True, exist_ok=True)
            (etc / path).write_text(text)
        self.log = open(etc / "standalone.log", "wb")
        self.proc = subprocess.Popen([BIN, "standalone", "--etc", str(etc), "--executors", str(executors),
                                      "--flight-sql-addr", f"127.0.0.1:{self.port}",
                                      "--scheduler-addr", f"127.0.0.1:{free_port()}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                conn = self.connect()
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchall()
                conn.close()
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError("tributary standalone did not start")

    def connect(self):
        return flightsql.connect(self.uri, db_kwargs={"username": "bench", "password": "bench"}, autocommit=True)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "commit": commit,
            "tributary_binary": BIN, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def timed(run, runs: int):
    """`run()` `runs` times: (best seconds, every run's seconds, the last run's result)."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        times.append(round(time.perf_counter() - start, 3))
    return min(times), times, result


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(f"wrote {path}")
    return path
